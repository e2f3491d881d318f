package main

import "testing"

// TestLiveFlagsAreNamedAsInHelp: every setting SIGHUP may change is listed
// by the name --help shows (a flag's first name, not a former one), so a
// reader of liveFlags finds it in --help; a misspelt entry would silently
// make its limit need a restart.
func TestLiveFlagsAreNamedAsInHelp(t *testing.T) {
	idx := indexFlags(serveCommand().Flags)
	for name := range liveFlags {
		p, ok := idx.primary[name]
		if !ok {
			t.Errorf("liveFlags names %q, which is no flag of serve", name)
			continue
		}
		if p != name {
			t.Errorf("liveFlags names %q by a former name; --help shows it as %q", name, p)
		}
	}
}

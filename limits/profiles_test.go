package limits

import (
	"os"
	"strings"
	"testing"
)

// documentPresets are the limits document's three presets, copied from it
// (not from Profiles), flag by flag.
var documentPresets = map[string]map[string]string{
	"production": {
		"max-header-size-bytes": "4096", "max-header-count": "50", "max-header-name-bytes": "128", "max-header-value-bytes": "2048",
		"max-body-size-bytes": "1048576", "max-body-buffer-bytes": "524288",
		"max-connections-per-ip": "50", "max-connections": "5000", "max-in-flight-requests": "5000",
		"max-requests-per-second-global": "10000", "max-requests-per-second-per-client": "100", "max-memory-percent": "80",
	},
	"development": {
		"max-header-size-bytes": "16384", "max-header-count": "200", "max-body-size-bytes": "104857600",
		"max-in-flight-requests": "100000", "max-requests-per-second-global": "0", "max-requests-per-second-per-client": "0",
		"max-requests-per-second-per-route": "0",
	},
	"high-traffic": {
		"max-header-size-bytes": "8192", "max-header-count": "100", "max-body-size-bytes": "10485760",
		"max-connections-per-ip": "200", "max-connections-per-route": "5000", "max-connections": "50000",
		"max-in-flight-requests": "50000", "max-in-flight-requests-per-worker": "5000",
		"max-requests-per-second-global": "100000", "max-requests-per-second-per-client": "1000",
	},
}

// effective returns the value of flag once profile name is applied to the
// defaults, with the flags in explicit given on the command line.
func effective(t *testing.T, name string, explicit map[string]bool) func(flag string) string {
	t.Helper()
	h, err := HTTPProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	k := Defaults()
	if err := ApplyProfile(&k, name, func(f string) bool { return explicit[f] }); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := k.Validate(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return func(flag string) string {
		if v := h.Value(flag); v != "" {
			return v
		}
		return k.Value(flag)
	}
}

// named reports whether the document's preset sets the row, by its name or
// one of its aliases (the document's names are the flags' former names).
func named(preset map[string]string, l Limit) bool {
	for _, n := range append([]string{l.Flag}, l.Aliases...) {
		if _, ok := preset[n]; ok {
			return true
		}
	}
	return false
}

func TestProfilesSetExactlyTheDocumentsPresets(t *testing.T) {
	for name, want := range documentPresets {
		t.Run(name, func(t *testing.T) {
			value := effective(t, name, nil)
			for flag, v := range want {
				if got := value(flag); got != v {
					t.Errorf("--%s = %s, the document's %s preset says %s", flag, got, name, v)
				}
			}
			// Everything the preset does not name keeps its default.
			for _, tbl := range [][]Limit{Table, HTTPTable} {
				for _, l := range tbl {
					if named(want, l) || l.Flag == "limits-profile" {
						continue
					}
					if got := value(l.Flag); got != l.Default {
						t.Errorf("--%s = %s, not named by the preset, want the default %s", l.Flag, got, l.Default)
					}
				}
			}
		})
	}
}

func TestNoProfileKeepsTheDefaultsAndExplicitFlagsWin(t *testing.T) {
	value := effective(t, NoProfile, nil)
	for _, tbl := range [][]Limit{Table, HTTPTable} {
		for _, l := range tbl {
			if got := value(l.Flag); got != l.Default {
				t.Errorf("no profile: --%s = %s, want the default %s", l.Flag, got, l.Default)
			}
		}
	}
	k := Defaults()
	k.MaxConnections = 7 // given on the command line
	if err := ApplyProfile(&k, "production", func(f string) bool { return f == "max-connections" }); err != nil {
		t.Fatal(err)
	}
	if k.MaxConnections != 7 || k.MaxConnectionsPerIP != 50 {
		t.Fatalf("explicit --max-connections 7 under production: %d, per-ip %d", k.MaxConnections, k.MaxConnectionsPerIP)
	}
	if _, err := HTTPProfile("turbo"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

const (
	profilesBegin = "<!-- profiles:begin (generated from limits.Profiles: go test ./limits -run TestREADME -update) -->\n"
	profilesEnd   = "<!-- profiles:end -->"
)

// TestREADMEProfilesTableMatchesProfiles keeps README's table of presets
// equal to Profiles.
func TestREADMEProfilesTableMatchesProfiles(t *testing.T) {
	const path = "../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, profilesBegin), strings.Index(doc, profilesEnd)
	if i < 0 || j < i {
		t.Fatal("README.md lacks the profiles table markers")
	}
	want := ProfilesMarkdown()
	if doc[i+len(profilesBegin):j] == want {
		return
	}
	if !*update {
		t.Fatal("README.md's profiles table is out of date; run: go test ./limits -run TestREADME -update")
	}
	doc = doc[:i+len(profilesBegin)] + want + doc[j:]
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

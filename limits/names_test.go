package limits

import "testing"

// TestNamesAreFlags: the names refusals and logs use are the flags as
// --help shows them (a row's Flag, not an alias), and a published label
// that differs from its flag is one of that flag's former names.
func TestNamesAreFlags(t *testing.T) {
	rows := map[string]Limit{}
	for _, tbl := range [][]Limit{Table, HTTPTable} {
		for _, l := range tbl {
			rows[l.Flag] = l
		}
	}
	for _, tt := range []struct{ name, label string }{
		{RequestMemoryBytes, "memory-limit-bytes"},
		{RequestMemoryPerIPPercent, "memory-limit-per-ip-percent"},
		{MaxProcessMemoryBytes, "max-memory-bytes"},
		{MaxInFlightPerEventLoop, "max-in-flight-requests-per-worker"},
		{"max-in-flight-requests", "max-in-flight-requests"},
	} {
		l, ok := rows[tt.name]
		if !ok {
			t.Errorf("%q is no limit's flag (renamed again? an alias?)", tt.name)
			continue
		}
		if got := Label(tt.name); got != tt.label {
			t.Errorf("Label(%q) = %q, want %q (label values are what dashboards select on)", tt.name, got, tt.label)
		}
		if tt.label == tt.name {
			continue
		}
		former := false
		for _, a := range l.Aliases {
			former = former || a == tt.label
		}
		if !former {
			t.Errorf("--%s: its label %q is not one of its aliases %v", tt.name, tt.label, l.Aliases)
		}
	}
	for flag := range publishedLabels {
		if _, ok := rows[flag]; !ok {
			t.Errorf("publishedLabels names %q, which is no limit's flag", flag)
		}
	}
}

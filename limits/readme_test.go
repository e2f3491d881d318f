package limits

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README.md's limits table from limits.Table")

const (
	beginMarker = "<!-- limits:begin (generated from limits.Table: go test ./limits -run TestREADME -update) -->\n"
	endMarker   = "<!-- limits:end -->"
)

// TestREADMELimitsTableMatchesTable keeps the README's tuning table equal
// to the one table of limits.
func TestREADMELimitsTableMatchesTable(t *testing.T) {
	const path = "../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the limits table markers")
	}
	header := "| flag | default | unit | protects | what clients see when it trips | metric |\n|---|---|---|---|---|---|\n"
	want := header + MarkdownRows(Table) + MarkdownRows(HTTPTable)
	got := doc[i+len(beginMarker) : j]
	if got == want {
		return
	}
	if !*update {
		t.Fatalf("README.md's limits table is out of date; run: go test ./limits -run TestREADME -update")
	}
	doc = doc[:i+len(beginMarker)] + want + doc[j:]
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}

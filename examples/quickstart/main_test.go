package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestQuickstartWorksOnAFreshServer runs README's franz-go snippet against
// a fresh server: it must produce and read back without any topic made
// beforehand (it used to fail with UNKNOWN_TOPIC_OR_PARTITION and hide it).
func TestQuickstartWorksOnAFreshServer(t *testing.T) {
	srv := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := run(ctx, srv.KafkaAddr(), "quickstart")
	if err != nil {
		t.Fatal(err)
	}
	if got != "hello" {
		t.Fatalf("read back %q, want hello", got)
	}
}

// TestReadmeShowsTheQuickstart: README's Go snippet is this file's, line
// for line, so what the README shows is what the test runs.
func TestReadmeShowsTheQuickstart(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	body := s[strings.Index(s, "// README:begin\n")+len("// README:begin\n") : strings.Index(s, "\t// README:end")]
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if !strings.Contains(string(readme), strings.Join(lines, "\n")) {
		t.Fatalf("README.md does not show examples/quickstart's snippet:\n%s", strings.Join(lines, "\n"))
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/floodgate/floodgate/internal/testproc"
)

// TestBenchAttackCLI runs `floodgate bench attack` briefly: --list names
// every attack, a run prints the Markdown table (a broken bound is an
// error naming how many runs broke one), and a selection that matches
// nothing is refused.
func TestBenchAttackCLI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the floodgate binary under attack")
	}
	out, err := runBenchCLI(t, "attack", "--list")
	if err != nil || !strings.Contains(out, "http-abandoned-body") || !strings.Contains(out, "kafka-trickled-frame-many-ips") {
		t.Fatalf("--list: %v\n%s", err, out)
	}
	out, err = runBenchCLI(t, "attack", "--floodgate", testproc.Binary(t), "--only", "kafka-garbage",
		"--baseline", "300ms", "--duration", "700ms", "--watch", "1s")
	if err != nil && !strings.Contains(err.Error(), "broke a bound") {
		t.Fatalf("bench attack: %v\n%s", err, out)
	}
	if !strings.Contains(out, "| attack | server |") || !strings.Contains(out, "| kafka-garbage | floodgate |") {
		t.Fatalf("no result table:\n%s", out)
	}
	if _, err := runBenchCLI(t, "attack", "--only", "no-such-attack"); err == nil || !strings.Contains(err.Error(), "no attack matches") {
		t.Fatalf("--only matching nothing: %v", err)
	}
}

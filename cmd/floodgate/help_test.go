package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestHelpIsShortAndGrouped runs the real binary's --help: every line fits
// 100 characters, no line shows two defaults, and every flag of serve is
// listed under a category heading (with its aliases shown).
func TestHelpIsShortAndGrouped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := floodgateBinary(t)
	help := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).Output() // stdout: the help, not log lines
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}} {
		for i, line := range strings.Split(help(args...), "\n") {
			if len(line) > 100 {
				t.Errorf("%v line %d is %d characters: %q", args, i+1, len(line), line)
			}
			if strings.Count(line, "(default:") > 1 {
				t.Errorf("%v line %d shows two defaults: %q", args, i+1, line)
			}
		}
	}

	// Where each flag is listed: the heading above it.
	category := map[string]string{}
	aliasShown := map[string]bool{}
	heading := ""
	for _, line := range strings.Split(help("serve", "--help"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--"):
			name, _, _ := strings.Cut(strings.TrimPrefix(trimmed, "--"), " ")
			name = strings.TrimSuffix(name, ",")
			category[name] = heading
		case strings.HasPrefix(trimmed, "alias "):
			for _, a := range strings.Split(strings.TrimPrefix(trimmed, "alias "), ", ") {
				aliasShown[strings.TrimPrefix(a, "--")] = true
			}
		case strings.HasPrefix(line, "   ") && trimmed != "" && !strings.Contains(trimmed, "  "):
			heading = trimmed
		case strings.HasSuffix(trimmed, ":"): // NAME:, OPTIONS:, ...
			heading = ""
		}
	}
	for _, f := range serveCommand().Flags {
		names := f.Names()
		cf, ok := f.(cli.CategorizableFlag)
		if !ok || cf.GetCategory() == "" {
			t.Errorf("--%s has no category", names[0])
			continue
		}
		if got := category[names[0]]; got != cf.GetCategory() {
			t.Errorf("--%s is listed under %q, want its category %q", names[0], got, cf.GetCategory())
		}
		for _, a := range names[1:] {
			if !aliasShown[a] {
				t.Errorf("--%s: alias --%s is not shown", names[0], a)
			}
		}
	}
}

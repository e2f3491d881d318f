package main

import (
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVersionPrintsVersionCommitAndGo: `floodgate --version` and
// `floodgate version` print the -X main.version/main.commit stamps and
// the Go version, and a running server exposes the same in
// floodgate_build_info.
func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	bin := t.TempDir() + "/floodgate"
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-test -X main.commit=abc123",
		"-o", bin, "github.com/floodgate/floodgate/cmd/floodgate").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "floodgate v1.2.3-test (commit abc123, " + runtime.Version() + ")"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("floodgate %v: %v", args, err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("floodgate %v printed %q, want %q", args, got, want)
		}
	}
}

// TestBuildInfoGauge: /metrics of the test-built binary has one
// floodgate_build_info series with value 1 and the Go version.
func TestBuildInfoGauge(t *testing.T) {
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir())
	_, body, err := get(p.http, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^floodgate_build_info\{version="[^"]+",commit="[^"]+",goversion="` + regexp.QuoteMeta(runtime.Version()) + `"\} 1$`)
	if n := len(re.FindAllString(body, -1)); n != 1 {
		t.Fatalf("%d floodgate_build_info series with value 1, want 1:\n%s", n, body)
	}
}

// TestSIGHUPKeepsServing: SIGHUP (three of them) does not end the process
// (it used to exit 129); it logs that a reload was asked for and /health
// still answers 200.
func TestSIGHUPKeepsServing(t *testing.T) {
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir())
	for i := 0; i < 3; i++ {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "reload requested") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload log line after SIGHUP:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.alive(t)
	if code, body, err := get(p.http, "/health"); err != nil || code != 200 {
		t.Fatalf("/health after SIGHUP: %d %q %v\n%s", code, body, err, p.stderr.String())
	}
	p.alive(t)
}

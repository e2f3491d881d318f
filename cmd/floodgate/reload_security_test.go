package main

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPChangesTheSASLAndTLSTimeoutsLive: the SASL and TLS handshake
// bounds are read at every use, so a reload applies them: after the file
// lowers --sasl-authentication-timeout from 20 s to 300 ms, a new
// connection that never authenticates is closed within the new timeout
// plus one reaper period scheduled under the old one (it was kept 20 s:
// the reload called these start-time settings).
func TestSIGHUPChangesTheSASLAndTLSTimeoutsLive(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	if out, err := floodgateUser(t, "alice-pw\n", "add", "alice", "--data-dir", dir); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	path := writeConfig(t, "sasl-authentication-timeout: 20s\n")
	p := startFloodgate(t, 4096, "--data-dir", dir, "--sasl-mechanisms", "SCRAM-SHA-256", "--auth-required", "--config", path)
	if err := os.WriteFile(path, []byte("sasl-authentication-timeout: 300ms\nsasl-failed-authentication-delay: 50ms\n"+
		"max-tls-handshakes: 77\ntls-handshake-timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, "reload done")
	out := p.stderr.String()
	for _, flag := range []string{"sasl-authentication-timeout", "sasl-failed-authentication-delay", "max-tls-handshakes", "tls-handshake-timeout"} {
		if !strings.Contains(out, "limit="+flag+" ") {
			t.Errorf("the reload did not apply --%s:\n%s", flag, out)
		}
	}
	c, err := net.DialTimeout("tcp", p.kafka, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a silent connection after the reload: %v after %v, want EOF (closed by the lowered timeout)", err, time.Since(start))
	}
	// The reaper's next check was scheduled under the old values (a
	// quarter of 20 s, at most 5 s): the first close may wait for it.
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a silent connection was closed after %v, want 300 ms plus at most one reaper period", d)
	}
	t.Logf("a silent connection opened after the reload was closed after %v (20 s before the reload)", time.Since(start).Round(time.Millisecond))
	p.alive(t)
}

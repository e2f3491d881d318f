package compat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// floodgateBinary builds cmd/floodgate once per test run.
func floodgateBinary(t *testing.T) string { return testproc.Binary(t) }

// startBinary runs `floodgate serve` on 127.0.0.1:0 until the test ends and
// returns the Kafka address it bound (read from the line
// --print-listen-addresses prints, so no parallel package can take the port first); it advertises that
// address too, since serve derives the advertised port from the listener.
func startBinary(t *testing.T) string {
	t.Helper()
	bin := floodgateBinary(t)
	args := append([]string{"serve"}, testproc.ListenArgs...)
	cmd := exec.Command(bin, append(args,
		"--data-dir", t.TempDir(), // the default storage (on disk), fresh per test
		"--event-loops", "2",
		"--log-level", "warn")...)
	var stderr testproc.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start floodgate: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	addr, _, err := testproc.ListenAddrs(&stderr, exited, 20*time.Second)
	if err == nil && !waitListening(addr, exited, 20*time.Second) {
		err = fmt.Errorf("floodgate logged %s but does not accept there:\n%s", addr, stderr.String())
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("floodgate did not stop on SIGTERM within 15s")
		}
		if out := strings.TrimSpace(stderr.String()); out != "" {
			t.Logf("floodgate output (--log-level warn):\n%s", out)
		}
	})
	return addr
}

func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// runTool runs a short-lived client command and fails the test on a non-zero
// exit, showing its output.
func runTool(t *testing.T, dir, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// procMember is a group member running as a child process that prints
// "PARTITION OFFSET VALUE" per record and commits and leaves on SIGTERM.
type procMember struct {
	what   string
	cmd    *exec.Cmd
	stderr *testproc.Buffer
	exited chan struct{}
	lines  chan struct{} // closed when stdout is drained
	badMu  sync.Mutex
	bad    []string
}

func startProcMember(t *testing.T, what, dir, name string, out chan<- rec, prog string, args ...string) *procMember {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := &procMember{what: what, cmd: cmd, stderr: &testproc.Buffer{}, exited: make(chan struct{}), lines: make(chan struct{})}
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	go func() {
		defer close(m.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 3)
			p, err1 := strconv.Atoi(f[0])
			var o int64
			var err2 error
			if len(f) == 3 {
				o, err2 = strconv.ParseInt(f[1], 10, 64)
			}
			if len(f) != 3 || err1 != nil || err2 != nil {
				m.badMu.Lock()
				m.bad = append(m.bad, sc.Text())
				m.badMu.Unlock()
				continue
			}
			out <- rec{member: name, partition: int32(p), offset: o, value: f[2]}
		}
	}()
	go func() {
		<-m.lines
		_ = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-m.exited:
		default:
			_ = cmd.Process.Kill()
			<-m.exited
		}
	})
	return m
}

func (m *procMember) close(t *testing.T) {
	t.Helper()
	select {
	case <-m.exited:
		t.Fatalf("%s exited early (%v):\n%s", m.what, m.cmd.ProcessState, m.stderr.String())
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		t.Fatalf("%s did not exit within 20s of SIGTERM:\n%s", m.what, m.stderr.String())
	}
	if !m.cmd.ProcessState.Success() {
		t.Fatalf("%s: %v:\n%s", m.what, m.cmd.ProcessState, m.stderr.String())
	}
	if e := strings.TrimSpace(m.stderr.String()); e != "" {
		t.Logf("%s stderr:\n%s", m.what, e)
	}
	if len(m.bad) > 0 {
		t.Fatalf("%s printed unexpected lines: %q\nstderr:\n%s", m.what, m.bad, m.stderr.String())
	}
}

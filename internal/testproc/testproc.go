// Package testproc holds what tests need to run the real floodgate binary
// as a child process: one build per test binary, the loopback addresses the child bound,
// and an output buffer the child's writer and the test can share.
package testproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// build is the binary built once per test process.
var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds cmd/floodgate once per test process and returns its path
// (in a temporary directory of its own).
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "floodgate-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "floodgate")
		out, err := exec.Command("go", "build", "-o", build.path, "github.com/floodgate/floodgate/cmd/floodgate").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/floodgate: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// listening matches the line `floodgate serve --print-listen-addresses`
// prints on stdout once both listeners are bound, and the "floodgate
// listening" line it logs at info (text and JSON formats).
var listening = regexp.MustCompile(`floodgate listening"?[ ,].*?"?kafka"?[=:]"?([^"\s,]+)"?.*?"?http"?[=:]"?([^"\s,]+)`)

// ListenAddrs waits until out holds the "floodgate listening" line of a child
// started with `--kafka-listen 127.0.0.1:0 --http-listen 127.0.0.1:0
// --print-listen-addresses` (ListenArgs) and
// returns the Kafka and HTTP addresses the kernel gave it. The child binds
// the ports itself, so no other test can take them between a look-up and the
// bind. It gives up when exited is closed (the child died) or after timeout.
func ListenAddrs(out *Buffer, exited <-chan struct{}, timeout time.Duration) (kafka, http string, err error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], nil
		}
		select {
		case <-exited:
			if m := listening.FindStringSubmatch(out.String()); m != nil {
				return m[1], m[2], nil
			}
			return "", "", fmt.Errorf("floodgate exited before it listened:\n%s", out)
		case <-deadline.C:
			return "", "", fmt.Errorf("floodgate did not log its listen addresses within %v:\n%s", timeout, out)
		case <-tick.C:
		}
	}
}

// ListenArgs are the serve flags that make the child bind two free loopback
// ports itself and print them for ListenAddrs, at any log level.
var ListenArgs = []string{"--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--print-listen-addresses"}

// Buffer collects a child process's output; its writer goroutine and the
// test may use it at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Main runs a package's tests and then removes the binary Binary built:
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.path != "" {
		_ = os.RemoveAll(filepath.Dir(build.path))
	}
	os.Exit(code)
}

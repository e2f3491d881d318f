// Package testproc holds what tests need to run the real floodgate binary
// as a child process: one build per test binary, free loopback addresses,
// and an output buffer the child's writer and the test can share.
package testproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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

// FreeAddr returns a 127.0.0.1 host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	var p int
	fmt.Sscan(port, &p)
	return p
}

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

package gateway

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// smallBufferListener listens on 127.0.0.1 with a receive buffer of
// rcvbuf bytes, set before the handshake so the window is small from the
// start: a sender's socket fills and takes large frames only in part. It
// closes when the test ends.
func smallBufferListener(t *testing.T, rcvbuf int) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

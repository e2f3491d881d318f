package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/loopback"
)

// smallBufferListener listens on 127.0.0.1 with a receive buffer of
// rcvbuf bytes, set before the handshake so the window is small from the
// start: a sender's socket fills and takes large frames only in part. It
// closes when the test ends.
func smallBufferListener(t *testing.T, rcvbuf int) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: loopback.ReceiveBuffer(rcvbuf)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// connectedUpstream returns a connection to the broker at addr once it is
// up (senders write inline only then), closed when the test ends.
func connectedUpstream(t *testing.T, addr string) *upstreamConn {
	t.Helper()
	u := newUpstream(1, addr, dialer{timeout: time.Second}, 20*time.Second, nil, nil, nil)
	t.Cleanup(func() { u.close(errUpstreamClosed) })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		u.mu.Lock()
		up := u.raw != nil
		u.mu.Unlock()
		if up {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatal("upstream connection not up after 5 s")
		}
	}
}

// Package loopback helps tests and benchmarks that start servers of their
// own on 127.0.0.1: free ports, and sockets with a small receive window.
package loopback

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// FreePortRange returns the first of n consecutive ports on 127.0.0.1 that
// were free a moment ago (the gateway's per-broker listeners need a range).
func FreePortRange(n int) (int, error) {
	for base := 20000 + int(time.Now().UnixNano()%20000); base+n <= 60000; base += n {
		ok := true
		var lns []net.Listener
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports on 127.0.0.1", n)
}

// ReceiveBuffer is a net.Dialer or net.ListenConfig Control function that
// sets the socket's receive buffer to n bytes before it connects (or
// listens), so the window is small from the start: a test's client that
// does not read leaves a large answer on the server's side, and a
// server's socket takes a large frame only in part.
func ReceiveBuffer(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); err != nil {
			return err
		}
		return serr
	}
}

package gateway

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// answeringBroker accepts connections and answers every frame with an
// empty answer carrying its correlation id.
func answeringBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var head [4]byte
				for {
					if _, err := io.ReadFull(c, head[:]); err != nil {
						return
					}
					f := make([]byte, binary.BigEndian.Uint32(head[:]))
					if _, err := io.ReadFull(c, f); err != nil {
						return
					}
					if _, err := c.Write([]byte{0, 0, 0, 4, f[4], f[5], f[6], f[7]}); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamWriteAfterIdleOutlivesTheWritersDeadline: the writer
// goroutine bounds its writes with a deadline of the request timeout; a
// request sent once the connection has been idle for longer than that is
// written by its sender (one non-blocking writev) and must still go out.
// Before, the writer's deadline stayed on the socket: every such write
// failed with "i/o timeout", closing the connection and failing its
// requests (retriable errors to the clients, a reconnect per idle spell).
func TestUpstreamWriteAfterIdleOutlivesTheWritersDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	u := newUpstream(1, answeringBroker(t), dialer{timeout: time.Second}, timeout, nil, nil, nil)
	defer u.close(errUpstreamClosed)
	send := func(i int) error {
		frame := make([]byte, 8) // api key, version, correlation id (overwritten)
		got := make(chan error, 1)
		if err := u.send(frame, nil, true, 5*time.Second, func(_ []byte, err error) { got <- err }); err != nil {
			return err
		}
		select {
		case err := <-got:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d: no answer", i)
			return nil
		}
	}
	// The first request is queued before the dial ends: the writer
	// goroutine writes it, under its deadline.
	if err := send(0); err != nil {
		t.Fatalf("first request: %v", err)
	}
	for i := 1; i <= 2; i++ {
		time.Sleep(2 * timeout) // idle past the writer's deadline
		if err := send(i); err != nil {
			t.Fatalf("request %d after %v idle: %v", i, 2*timeout, err)
		}
	}
	if u.isDead() {
		t.Fatal("the connection failed")
	}
}

package gateway

import (
	"net"
	"testing"
	"time"
)

// deafBroker accepts connections and never reads from them, with a small
// receive buffer: a large frame written to it stays partly unwritten.
func deafBroker(t *testing.T) string {
	t.Helper()
	ln := smallBufferListener(t, 16<<10)
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamFailureAnswersOnlyOnceNoWriteReadsTheFrame: the loop reuses
// a Produce frame as soon as its request is answered (loop/framepool.go),
// so a failed upstream connection must not answer a request while a write
// may still be reading its frame — the sender's own writev, or the writer
// goroutine's blocked batch. Each case fails the connection in the middle
// of such a write; the request's callback must find no write under way.
// Before fail waited for writes to end, the callback ran during the write.
func TestUpstreamFailureAnswersOnlyOnceNoWriteReadsTheFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// timeout is the request's; partial runs in the sender after a
		// writev the socket took in part, batch in the writer after its
		// write returned (nil: nothing).
		timeout time.Duration
		partial func(u *upstreamConn)
		batch   func()
	}{
		{
			name:    "connection closed during the sender's writev",
			timeout: 20 * time.Second,
			partial: func(u *upstreamConn) {
				go u.close(errClientGone)
				time.Sleep(150 * time.Millisecond) // the write is still "under way"
			},
		},
		{
			name:    "request timed out during the writer's blocked write",
			timeout: 300 * time.Millisecond,
			batch: func() {
				time.Sleep(150 * time.Millisecond) // the writer is slow to let go
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := connectedUpstream(t, deafBroker(t))
			if tt.partial != nil {
				u.afterPartialWrite = func() { tt.partial(u) }
			}
			u.afterBatchWrite = tt.batch
			frame := make([]byte, 16<<20) // far more than the socket buffers take
			type answer struct {
				err     error
				writing bool
			}
			got := make(chan answer, 1)
			err := u.send(frame, nil, true, tt.timeout, func(_ []byte, err error) {
				u.mu.Lock()
				writing := u.writing
				u.mu.Unlock()
				clear(frame[:4096]) // what the loop's reuse would do to it
				got <- answer{err, writing}
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case a := <-got:
				if a.err == nil {
					t.Fatal("the request was answered; want a failure")
				}
				if a.writing {
					t.Fatalf("the request was failed (%v) while a write was still reading its frame", a.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the request was not failed within 10 s")
			}
		})
	}
}

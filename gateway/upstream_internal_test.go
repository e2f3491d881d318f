package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowBroker accepts one connection, reads frames slowly (so the sender's
// socket fills and writes come out partial), checks each frame's bytes and
// that every sender's frames arrive in the order they were sent, and
// answers each with its correlation id.
func slowBroker(t *testing.T, errs chan<- error) string {
	t.Helper()
	ln := smallBufferListener(t, 32<<10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		next := map[uint32]uint32{}
		var head [4]byte
		read := 0
		for {
			if _, err := io.ReadFull(c, head[:]); err != nil {
				return
			}
			f := make([]byte, binary.BigEndian.Uint32(head[:]))
			if _, err := io.ReadFull(c, f); err != nil {
				return
			}
			if len(next) == 0 { // stall once: the sender's socket buffers fill up
				time.Sleep(300 * time.Millisecond)
			}
			if read += len(f); read > 64<<10 {
				read = 0
				time.Sleep(time.Millisecond)
			}
			sender, seq := binary.BigEndian.Uint32(f[8:]), binary.BigEndian.Uint32(f[12:])
			if seq != next[sender] {
				report(errs, fmt.Errorf("sender %d: frame %d arrived, want %d", sender, seq, next[sender]))
				return
			}
			next[sender]++
			if !bytes.Equal(f[16:], filler(int(sender), int(seq), len(f))) {
				report(errs, fmt.Errorf("sender %d frame %d: bytes corrupted", sender, seq))
				return
			}
			resp := []byte{0, 0, 0, 4, f[4], f[5], f[6], f[7]}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamConnKeepsEachSendersOrderThroughPartialWrites: senders on
// several goroutines (as pool workers are) write large frames to an
// upstream that reads slowly: writes in the sender, partial writes handed
// to the writer goroutine and queued frames must reach the broker whole,
// each sender's in the order it sent them, and every answer must reach
// its own request.
func TestUpstreamConnKeepsEachSendersOrderThroughPartialWrites(t *testing.T) {
	t.Parallel()
	errs := make(chan error, 16)
	u := newUpstream(1, slowBroker(t, errs), dialer{timeout: time.Second}, 20*time.Second, nil, nil, nil)
	defer u.close(errUpstreamClosed)
	var partial atomic.Int32
	u.afterPartialWrite = func() {
		partial.Add(1)
		time.Sleep(2 * time.Millisecond) // others queue behind the frame's rest
	}
	const senders, frames = 4, 30
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			var waits []func() bool
			for seq := 0; seq < frames; seq++ {
				f := make([]byte, 16+64<<10+rng.IntN(960<<10))
				binary.BigEndian.PutUint32(f[8:], uint32(s))
				binary.BigEndian.PutUint32(f[12:], uint32(seq))
				copy(f[16:], filler(s, seq, len(f)))
				done := make(chan int32, 1)
				err := u.send(f, nil, true, 20*time.Second, func(resp []byte, err error) {
					if err != nil {
						report(errs, err)
						done <- -1
						return
					}
					done <- int32(binary.BigEndian.Uint32(resp[4:]))
				})
				if err != nil {
					report(errs, err)
					return
				}
				sent := int32(binary.BigEndian.Uint32(f[4:])) // set by send, in this goroutine
				check := func() bool {
					if got := <-done; got != sent {
						report(errs, fmt.Errorf("the answer for correlation id %d reached request %d", got, sent))
						return false
					}
					return true
				}
				if seq%2 == 1 { // pipelined, and waiting for the answer now and then
					if !check() {
						return
					}
				} else {
					waits = append(waits, check)
				}
			}
			for _, check := range waits {
				if !check() {
					return
				}
			}
		}(s)
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if partial.Load() == 0 {
		t.Fatal("no write was partial: the test did not test that")
	}
	t.Logf("%d senders' writes were partial", partial.Load())
	if u.isDead() {
		t.Fatal("connection failed")
	}
}

// report passes on the first errors without ever blocking the caller (a
// callback of the connection or the broker).
func report(errs chan<- error, err error) {
	select {
	case errs <- err:
	default:
	}
}

// pattern is the bytes frames are filled with, from an offset of their own.
var pattern = func() []byte {
	p := make([]byte, 2<<20)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}()

// filler is what frame seq of sender holds after its 16-byte head.
func filler(sender, seq, size int) []byte {
	off := (sender + seq + 16) & 255
	return pattern[off : off+size-16]
}

package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestOutFrameWritesEachByteOnceFromAnyOffset: a frame in pieces is
// resumed after a partial write from the exact byte the socket stopped
// at, whichever piece it is in (including a boundary between two).
func TestOutFrameWritesEachByteOnceFromAnyOffset(t *testing.T) {
	tests := []struct {
		name   string
		pieces []int // the frame's first piece, then the rest
	}{
		{"one piece", []int{11}},
		{"two pieces", []int{7, 5}},
		{"doubling pieces", []int{8, 8, 16, 32, 3}},
		{"an empty piece", []int{6, 0, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f outFrame
			var want []byte
			for i, n := range tt.pieces {
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(i*40 + j + 1)
				}
				if i == 0 {
					f.frame = b
				} else {
					f.more = append(f.more, b)
				}
			}
			binary.BigEndian.PutUint32(f.prefix[:], uint32(f.size()-4))
			want = append(want, f.prefix[:]...)
			want = append(want, f.frame...)
			for _, b := range f.more {
				want = append(want, b...)
			}
			if f.size() != len(want) {
				t.Fatalf("size %d, want %d", f.size(), len(want))
			}
			for skip := 0; skip <= len(want); skip++ {
				f.skip = skip
				if got := bytes.Join(f.appendTo(nil), nil); !bytes.Equal(got, want[skip:]) {
					t.Fatalf("after %d bytes written: %v left to write, want %v", skip, got, want[skip:])
				}
			}
		})
	}
}

// slowReadingBroker reads request frames slowly through a small receive buffer
// (so writes of a megabyte are taken in part and continued by the writer
// goroutine), hands each frame to check and answers it with its
// correlation id.
func slowReadingBroker(t *testing.T, check func(frame []byte)) string {
	t.Helper()
	ln := smallBufferListener(t, 16<<10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			var head [4]byte
			if _, err := io.ReadFull(c, head[:]); err != nil {
				return
			}
			frame := make([]byte, binary.BigEndian.Uint32(head[:]))
			for got := 0; got < len(frame); {
				n, err := c.Read(frame[got:min(got+32<<10, len(frame))])
				if err != nil {
					return
				}
				got += n
				time.Sleep(100 * time.Microsecond)
			}
			check(frame)
			var answer [8]byte
			binary.BigEndian.PutUint32(answer[:], 4)
			copy(answer[4:], frame[4:8])
			if _, err := c.Write(answer[:]); err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// TestPiecesWrittenWholeBeforeTheAnswer: frames of 1 MB in the pieces the
// loop keeps them in (64 KiB, 64 KiB, 128 KiB, ...), sent at once by six
// senders on one upstream connection to a broker that reads slowly, so
// they are written in part inline and continued by the writer goroutine:
// each must reach the broker byte for byte, and no answer may come while
// a write still reads the frame's pieces — each callback overwrites its
// pieces as the loop's reuse of the pool buffers would, and a piece
// written after that reaches the broker changed.
func TestPiecesWrittenWholeBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	const senders, size = 6, 1 << 20
	content := func(id, i int) byte { // byte 8, after the correlation id, names the frame
		if i == 8 {
			return byte(id)
		}
		return byte(id*31 + i*7 + i>>9)
	}
	var mu sync.Mutex
	var bad []string
	addr := slowReadingBroker(t, func(frame []byte) {
		id := int(frame[8])
		for i := 8; i < len(frame); i++ {
			if frame[i] != content(id, i) {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("frame %d: byte %d of %d is %#x, want %#x", id, i, len(frame), frame[i], content(id, i)))
				mu.Unlock()
				return
			}
		}
		if len(frame) != size {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("frame %d: %d bytes, want %d", id, len(frame), size))
			mu.Unlock()
		}
	})
	u := connectedUpstream(t, addr)
	errs := make(chan error, senders)
	for id := 0; id < senders; id++ {
		whole := make([]byte, size)
		for i := range whole {
			whole[i] = content(id, i)
		}
		// The loop's pieces: the first of 64 KiB, then each as large as
		// all before it.
		var pieces [][]byte
		for off, n := 0, 64<<10; off < size; off, n = off+n, max(off+n, 64<<10) {
			pieces = append(pieces, whole[off:min(off+n, size)])
		}
		go func() {
			err := u.send(pieces[0], pieces[1:], true, 20*time.Second, func(_ []byte, err error) {
				u.mu.Lock()
				writing := u.writing
				u.mu.Unlock()
				if writing && err != nil {
					err = fmt.Errorf("failed while a write was under way: %w", err)
				}
				for _, p := range pieces {
					clear(p) // what reusing the pool buffers would do
				}
				errs <- err
			})
			if err != nil {
				errs <- err
			}
		}()
	}
	for i := 0; i < senders; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d frames answered in 20 s", i, senders)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d frames reached the broker changed; first: %s", len(bad), bad[0])
	}
}

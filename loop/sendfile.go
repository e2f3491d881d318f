package loop

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
)

// Zero-copy Fetch. A Fetch answered from disk leaves its partitions'
// records in the segment files (kafka.FileFetchResponse): the frame is
// encoded without them (the header, the partition headers), and the output
// queue holds the encoded pieces with an empty entry where each file
// section goes, in order. The writer sends the pieces with writev(2) and
// the sections with sendfile(2) straight from the page cache to the
// socket, so the records never pass through user space and nothing else
// is written between the pieces of one answer (the queue is in request
// order). gnet never writes to floodgate's sockets (its outbound buffer
// stays empty), so the descriptor is floodgate's to write.
//
// A full socket (EAGAIN, in the middle of a section or not) parks the
// connection like any other: the park goroutine resumes the section where
// it stopped, under --send-timeout. What a slow or parked consumer holds is
// the header bytes (charged to the budget) and the sections: a pinned
// segment file and two offsets each, never a copy of the records. The
// sections held are bounded by the segment-file descriptor budget
// (storage.FileCache); beyond it the broker reads by copy, as before.

// fileAnswer is the file sections of one answer and where they go in its
// encoded bytes.
type fileAnswer struct {
	cuts []int
	secs []kafka.PartitionSection
}

// release lets go of the sections of an answer that will not be written.
func (fa *fileAnswer) release() {
	if fa == nil {
		return
	}
	for i := range fa.secs {
		if s := fa.secs[i].Section; s != nil {
			s.Release()
			fa.secs[i].Section = nil
		}
	}
}

// fileOut is the file sections of a connection's queued output, one per
// empty entry of the output queue, in order. Owned by whoever writes the
// connection's output (the event loop, or the park goroutine).
type fileOut struct {
	q    []kafka.FileSection
	sent int64 // bytes of q[0] written
}

// releaseAll lets go of every queued section (the connection closed).
func (fo *fileOut) releaseAll() {
	if fo == nil {
		return
	}
	for i, s := range fo.q {
		s.Release()
		fo.q[i] = nil
	}
	fo.q, fo.sent = fo.q[:0], 0
}

// queueFiles puts an answer with file sections on the output queue: its
// encoded bytes cut at the sections, an empty entry for each section. The
// last piece of bytes owns the buffer (and returns it to the pool once
// written); each piece releases its own bytes of the budget charge.
func (c *conn) queueFiles(buf *[]byte, fa *fileAnswer) {
	if c.files == nil {
		c.files = &fileOut{}
	}
	b := *buf
	prev, owner := 0, -1
	for i, cut := range fa.cuts {
		if cut > prev {
			c.out = append(c.out, b[prev:cut:cut])
			c.outBufs = append(c.outBufs, nil)
			owner = len(c.out) - 1
		}
		c.out = append(c.out, b[cut:cut:cut])
		c.outBufs = append(c.outBufs, nil)
		c.files.q = append(c.files.q, fa.secs[i].Section)
		fa.secs[i].Section = nil
		prev = cut
	}
	if prev < len(b) {
		c.out = append(c.out, b[prev:])
		c.outBufs = append(c.outBufs, nil)
		owner = len(c.out) - 1
	}
	// A frame starts with its length and correlation id, before any
	// section: there is always a piece of bytes.
	c.outBufs[owner] = buf
}

// sendFile writes the file section at the head of the output queue with
// sendfile(2), without blocking; blocked reports a full socket with some
// of it left (resumed from where it stopped).
func (c *conn) sendFile(fd int) (blocked bool, err error) {
	fo := c.files
	if ps, ok := fo.q[0].(*pipeSection); ok {
		return c.sendPipe(fd, ps)
	}
	in, off, n := fo.q[0].Span()
	for fo.sent < n {
		o := off + fo.sent
		w, err := unix.Sendfile(fd, in, &o, int(min(n-fo.sent, 1<<30)))
		c.sentFromFile(w)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return true, nil
		case err != nil:
			return false, fmt.Errorf("sendfile: %w", err)
		case w == 0:
			return false, fmt.Errorf("sendfile at %d: %w", o, io.ErrUnexpectedEOF)
		}
	}
	c.popFile()
	return false, nil
}

// sendFileBlocking writes up to writeChunk bytes of the file section at the
// head of the output queue to a parked socket, waiting (until deadline)
// for room.
func (c *conn) sendFileBlocking(nc net.Conn, deadline time.Time) error {
	if ps, ok := c.files.q[0].(*pipeSection); ok {
		return c.sendPipeBlocking(nc, ps, deadline)
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("sendfile: %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("sendfile: %w", err)
	}
	_ = nc.SetWriteDeadline(deadline)
	fo := c.files
	in, off, n := fo.q[0].Span()
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		o := off + fo.sent
		w, e := unix.Sendfile(int(fd), in, &o, int(min(n-fo.sent, writeChunk)))
		for e == unix.EINTR {
			w, e = unix.Sendfile(int(fd), in, &o, int(min(n-fo.sent, writeChunk)))
		}
		c.sentFromFile(w)
		switch {
		case e == unix.EAGAIN:
			return false // wait for room (or the deadline)
		case e != nil:
			serr = fmt.Errorf("sendfile: %w", e)
		case w == 0:
			serr = fmt.Errorf("sendfile at %d: %w", o, io.ErrUnexpectedEOF)
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if fo.sent == n {
		c.popFile()
	}
	return err
}

// sentFromFile counts w bytes of the head file section as sent (nothing
// when w is not positive): the section's progress and the byte counters.
func (c *conn) sentFromFile(w int) {
	if w <= 0 {
		return
	}
	c.files.sent += int64(w)
	c.loop.s.met.bytesOut.Add(w)
	c.loop.s.met.sendfileOut.Add(w)
}

// popFile drops the section written whole (and its empty entry) from the
// head of the output queue.
func (c *conn) popFile() {
	fo := c.files
	fo.q[0].Release()
	m := copy(fo.q, fo.q[1:])
	fo.q[m] = nil
	fo.q, fo.sent = fo.q[:m], 0
	k := copy(c.out, c.out[1:])
	copy(c.outBufs, c.outBufs[1:])
	c.out[k], c.outBufs[k] = nil, nil
	c.out, c.outBufs = c.out[:k], c.outBufs[:k]
}

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

// sendFile writes the section at the head of the output queue (a file
// section, or a pipe section of splice.go) without blocking; blocked
// reports a full socket with some of it left (resumed from where it
// stopped).
func (c *conn) sendFile(fd int) (blocked bool, err error) {
	for c.files.headLeft() > 0 {
		switch err := c.sendSome(fd, 1<<30); {
		case err == unix.EAGAIN:
			return true, nil
		case err != nil:
			return false, err
		}
	}
	c.popFile()
	return false, nil
}

// sendFileBlocking writes up to writeChunk bytes of the section at the
// head of the output queue to a parked socket, waiting (until deadline)
// for room.
func (c *conn) sendFileBlocking(nc net.Conn, deadline time.Time) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("zero-copy write: %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("zero-copy write: %w", err)
	}
	_ = nc.SetWriteDeadline(deadline)
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = c.sendSome(int(fd), writeChunk)
		return serr != unix.EAGAIN // else wait for room (or the deadline)
	})
	if err == nil {
		err = serr
	}
	if c.files.headLeft() == 0 {
		c.popFile()
	}
	return err
}

// sendSome writes up to max bytes of the section at the head of the
// output queue to fd with one sendfile(2), or splice(2) for a pipe section
// (retried on EINTR), without blocking, and counts what it wrote. The
// error is unix.EAGAIN itself for a full socket; a section that ends
// before its length is io.ErrUnexpectedEOF.
func (c *conn) sendSome(fd int, max int64) error {
	w, err := c.writeHeadOnce(fd, max)
	for err == unix.EINTR {
		w, err = c.writeHeadOnce(fd, max)
	}
	switch {
	case err == unix.EAGAIN:
		return err
	case err != nil:
		return c.files.headErr(err)
	case w == 0:
		return c.files.headErr(io.ErrUnexpectedEOF)
	}
	return nil
}

// writeHeadOnce makes one write call of sendSome and counts its bytes.
func (c *conn) writeHeadOnce(fd int, max int64) (int, error) {
	fo := c.files
	if ps, ok := fo.q[0].(*pipeSection); ok {
		return ps.spliceTo(fd, max)
	}
	in, off, n := fo.q[0].Span()
	o := off + fo.sent
	w, err := unix.Sendfile(fd, in, &o, int(min(n-fo.sent, max)))
	c.sentFromFile(w)
	return w, err
}

// headLeft returns the bytes of the head section not written yet.
func (fo *fileOut) headLeft() int64 {
	if ps, ok := fo.q[0].(*pipeSection); ok {
		return ps.n - ps.sent
	}
	_, _, n := fo.q[0].Span()
	return n - fo.sent
}

// headErr wraps err, a failed write of the head section, with the call
// and where in the section it stopped.
func (fo *fileOut) headErr(err error) error {
	if ps, ok := fo.q[0].(*pipeSection); ok {
		return fmt.Errorf("splice to client after %d bytes: %w", ps.sent, err)
	}
	_, off, _ := fo.q[0].Span()
	return fmt.Errorf("sendfile at %d: %w", off+fo.sent, err)
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

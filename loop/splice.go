package loop

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
)

// Zero-copy relay of forwarded answers. A raw handler (the gateway) that
// implements SpliceRawKafkaHandler is given, for a Fetch from a plaintext
// client, a SpliceResponder: it may answer with the frame's first bytes in
// user space and the rest in a pipe, which it filled with splice(2) from
// the upstream socket. The loop queues the head bytes and the pipe as a
// section next to the file sections of zero-copy Fetch from disk
// (sendfile.go): the same empty entry in the output queue, written in
// turn with splice(2) from the pipe to the client socket (non-blocking on
// the loop; from the park goroutine with the send deadline), released once
// written, and dropped with the connection. The bytes in the pipe are
// charged to the client's share of the memory budget from the moment they
// are spliced in (Hold) until written (each splice out releases its bytes)
// or dropped (the rest is released with the pipe).

// Pipe is a pipe holding the rest of an answer frame, given to the loop by
// SpliceResponder.RespondSpliced.
type Pipe interface {
	// ReadFD returns the pipe's read end.
	ReadFD() int
	// Done gives the pipe back, called exactly once; left is the bytes
	// still in it (0 once every byte was spliced out), which its owner
	// must drain or close the pipe for.
	Done(left int64)
}

// SpliceResponder answers one forwarded Fetch: in bytes (Respond, as
// ServeRaw's respond) or with the frame's head in bytes and its rest in a
// pipe (RespondSpliced). Exactly one of Respond and RespondSpliced is
// called, once.
type SpliceResponder interface {
	// Respond is ServeRaw's respond.
	Respond(resp []byte)
	// Hold charges n bytes put into a pipe for this answer to the
	// client's share of the memory budget (forced, as an answer read into
	// memory is: the request was fitted to ClientConn.FetchRoom).
	Hold(n int64)
	// Unhold returns n bytes charged by Hold that will not be given to
	// RespondSpliced (the answer failed while being spliced in).
	Unhold(n int64)
	// RespondSpliced answers with head (the frame's first bytes: length
	// prefix, correlation id and what follows up to the pipe) and n bytes
	// in p, all of them charged by Hold. The loop owns head, p and the
	// charge from here.
	RespondSpliced(head []byte, p Pipe, n int64)
}

// SpliceRawKafkaHandler is a RawKafkaHandler that may answer a Fetch from
// a plaintext client through a pipe. The loop calls ServeRawSplice instead
// of ServeRaw for those.
type SpliceRawKafkaHandler interface {
	RawKafkaHandler
	// ServeRawSplice is ServeRaw for a Fetch from a plaintext client,
	// answered through sr.
	ServeRawSplice(cl ClientConn, h *kafka.Header, frame []byte, sr SpliceResponder)
}

// pipeSection is a Pipe in the output queue: a kafka.FileSection for
// queueFiles and the release paths, sent by splice(2) instead of
// sendfile(2) (sendSome tells them apart).
type pipeSection struct {
	c    *conn
	p    Pipe
	n    int64 // bytes in the pipe when queued
	sent int64 // bytes spliced out
}

// Span returns the pipe's read end and the bytes it holds.
func (ps *pipeSection) Span() (int, int64, int64) { return ps.p.ReadFD(), 0, ps.n }

// Release gives the pipe back with what is left in it, and releases that
// part of the charge (what was sent was released as it went).
func (ps *pipeSection) Release() {
	left := ps.n - ps.sent
	if left > 0 {
		ps.c.loop.s.budget.ReleaseFor(ps.c.share, left)
	}
	ps.p.Done(left)
}

// Respond is respondRaw (SpliceResponder).
func (r *kafkaRequest) Respond(resp []byte) { r.respondRaw(resp) }

// Hold charges n bytes in a pipe to the client's share (SpliceResponder).
func (r *kafkaRequest) Hold(n int64) { r.c.loop.s.budget.ForceFor(r.c.share, n) }

// Unhold returns n bytes charged by Hold (SpliceResponder).
func (r *kafkaRequest) Unhold(n int64) { r.c.loop.s.budget.ReleaseFor(r.c.share, n) }

// RespondSpliced queues head and the n bytes in p (SpliceResponder).
func (r *kafkaRequest) RespondSpliced(head []byte, p Pipe, n int64) {
	c := r.c
	ps := &pipeSection{c: c, p: p, n: n}
	if !r.claim() {
		ps.Release()
		return
	}
	defer r.unref()
	r.done()
	s := c.loop.s
	s.met.spliced.Inc()
	r.chargeFetchBytesN(int64(len(head)) + n)
	if r.throttle > 0 {
		setFetchThrottleHead(head, r.hdr.APIVersion, int32(r.throttle.Milliseconds()))
	}
	buf := s.bufs.get()
	*buf = append(*buf, head...)
	c.forceOut(buf)
	c.completeFiles(r.seq, buf, &fileAnswer{cuts: []int{len(*buf)}, secs: []kafka.PartitionSection{{Section: ps}}})
}

// setFetchThrottleHead sets throttle_time_ms in the first bytes of a Fetch
// answer (length, correlation id, the header's tags from v12, then the
// throttle) when they hold it; an answer whose header carries tags is
// left as it is.
func setFetchThrottleHead(head []byte, version int16, ms int32) {
	off := 8
	if version >= 12 {
		if len(head) <= off || head[off] != 0 {
			return
		}
		off++
	}
	if version < 1 || len(head) < off+4 {
		return
	}
	binary.BigEndian.PutUint32(head[off:], uint32(ms))
}

// spliceTo makes one splice(2) of up to max bytes from the pipe to fd,
// without blocking, and counts what it moved (sendSome's write for a pipe
// section).
func (ps *pipeSection) spliceTo(fd int, max int64) (int, error) {
	w, err := unix.Splice(ps.p.ReadFD(), nil, fd, nil, int(min(ps.n-ps.sent, max)), unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	ps.c.sentFromPipe(ps, int(w))
	return int(w), err
}

// sentFromPipe counts w bytes of a pipe section as sent: its progress, its
// charge released, the byte counters.
func (c *conn) sentFromPipe(ps *pipeSection, w int) {
	if w <= 0 {
		return
	}
	ps.sent += int64(w)
	s := c.loop.s
	s.budget.ReleaseFor(c.share, int64(w))
	s.met.bytesOut.Add(w)
	s.met.splicedOut.Add(w)
}

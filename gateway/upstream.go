package gateway

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
)

// errUpstreamClosed fails requests pending on a connection that broke.
var errUpstreamClosed = errors.New("upstream connection closed")

// errUpstreamTimeout fails a request the upstream did not answer in time.
var errUpstreamTimeout = errors.New("upstream request timed out")

// errClientGone fails the requests of a client that disconnected: its
// dedicated upstream connection is closed with them. Nobody is waiting for
// the answer, so nothing is logged.
var errClientGone = errors.New("client disconnected")

// maxUpstreamFrame bounds a response frame read from upstream.
const maxUpstreamFrame = 1 << 30

// responseFunc receives a whole response frame (length prefix included) or
// an error.
type responseFunc func(frame []byte, err error)

type pendingReq struct {
	cb    responseFunc
	timer *time.Timer
	// spl, when set, may take the answer through a pipe (splice.go)
	// instead of cb.
	spl *spliceTo
}

// outFrame is a request frame waiting for the writer. The frame is the
// loop's: valid until the request is answered, then reused for another
// request (loop/framepool.go), so no answer or failure is delivered while
// a write may still read it (see fail); written, when set, is called once
// the bytes are on the socket or failed (Produce acks=0, which has no
// answer to wait for).
type outFrame struct {
	prefix  [4]byte
	frame   []byte
	more    [][]byte // the frame's further pieces (loop.ChunkedRawKafkaHandler), nil for one
	skip    int      // bytes of prefix, frame and more already written
	written func()
}

// appendTo appends what is left to write of f to bufs.
func (f *outFrame) appendTo(bufs [][]byte) [][]byte {
	skip := f.skip
	add := func(b []byte) {
		if skip >= len(b) {
			skip -= len(b)
			return
		}
		bufs = append(bufs, b[skip:])
		skip = 0
	}
	add(f.prefix[:])
	add(f.frame)
	for _, b := range f.more {
		add(b)
	}
	return bufs
}

// size is the bytes f writes in all: prefix, frame and pieces.
func (f *outFrame) size() int {
	n := len(f.prefix) + len(f.frame)
	for _, b := range f.more {
		n += len(b)
	}
	return n
}

// upstreamConn is one connection to an upstream broker. Requests are
// pipelined with correlation ids of its own: send writes a frame itself
// only when nothing else is being written and the socket takes it without
// waiting (one non-blocking writev; plain TCP only, never over TLS);
// otherwise it queues the frame (or its rest) for a writer goroutine, which
// connects the first time (dial, TLS and SASL when configured: dialer) and
// writes everything queued with one writev. A reader goroutine matches
// responses to the pending map. So neither a dial nor a slow upstream ever
// holds the caller (a pool worker), and the common case costs no goroutine
// switch. Any error (or a request timing out) closes the connection and
// fails every pending request, so nothing waits forever.
//
// What it holds is bounded by what the loop lets clients have in flight:
// every queued or pending entry is a request whose frame is still charged
// to the memory budget and counted by --max-inflight-requests.
type upstreamConn struct {
	node    int32
	addr    string
	timeout time.Duration // write deadline
	// dialed reports the outcome of the dial to the broker's pool (dial
	// backoff, readiness); nil for control connections.
	dialed func(error)
	// broke is told when the connection fails for a reason other than
	// being closed by floodgate (nil for control connections).
	broke func()

	wake chan struct{} // capacity 1: the writer has work or must stop

	mu      sync.Mutex
	nc      net.Conn        // nil until dialled (and authenticated)
	raw     syscall.RawConn // nc's, for non-blocking writes; nil over TLS
	writing bool            // a sender or the writer is writing
	// idle is signalled (on mu) when writing turns false: fail waits for
	// it before failing requests whose frames a write may still read.
	idle    *sync.Cond
	queue   []outFrame
	pending map[int32]*pendingReq
	corr    int32
	dead    bool
	// retired: the broker moved; no new requests, closed once those sent
	// are answered (retire). Atomic so that the reader checks it per answer
	// without the lock; set under mu, with pending.
	retired atomic.Bool
	clients int // client connections assigned (guarded by the pool's lock)

	// buffer returns a buffer of n bytes to read an answer into (the
	// loop's pools, Config.ResponseBuffer), nil to allocate one.
	buffer func(n int) []byte
	// pipes relays large Fetch answers to plaintext clients (splice.go);
	// nil: every answer is read into a buffer.
	pipes *pipePool

	// waiting counts the outstanding waiting requests (long polls, group
	// joins) on a long-poll connection, and on a client's own connection
	// those it sent while the pool had room (forward.go upstreamFor).
	waiting atomic.Int32

	// afterPartialWrite, when set (tests only), runs after a sender's write
	// that the socket took only in part, before the rest is queued: it
	// widens the moment in which other senders queue frames behind it.
	afterPartialWrite func()
	// afterBatchWrite, when set (tests only), runs in the writer goroutine
	// after a batch's write returned, before it lets go of the batch.
	afterBatchWrite func()
}

// dialer opens upstream connections: TCP, or TLS with --upstream-tls, then
// SASL with --upstream-sasl-mechanism. Every kind of upstream connection (a
// client's own, a shared one, a long-poll one, the control connections of
// start-up and refresh) is opened by it, in the connection's writer
// goroutine, before any frame queued on the connection is written.
type dialer struct {
	timeout time.Duration // bounds the connect and the TLS handshake
	tls     *tls.Config   // nil: plaintext
	sasl    sasl.Mechanism
	// authTimeout bounds the SASL exchange (the request timeout: the
	// upstream is answering requests by then).
	authTimeout time.Duration
}

// connect returns a connection to the broker at addr ready for client
// frames. A failed authentication fails it like a failed dial.
func (d dialer) connect(node int32, addr string) (net.Conn, error) {
	nc, err := dialNet(addr, d.timeout, d.tls)
	if err != nil {
		return nil, fmt.Errorf("dial upstream broker %d at %s: %w", node, addr, err)
	}
	if d.sasl != nil {
		if err := authenticate(nc, addr, d.sasl, d.authTimeout); err != nil {
			closeConn(nc)
			return nil, fmt.Errorf("authenticate to upstream broker %d at %s with %s: %w", node, addr, d.sasl.Name(), err)
		}
	}
	return nc, nil
}

// closeConn closes an upstream connection. A TLS connection's socket is
// closed without a close_notify alert: crypto/tls may wait up to 5 s to
// write one into a full socket, and the caller may hold a broker pool's
// lock; a Kafka broker needs no alert.
func closeConn(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	_ = nc.Close()
}

// newUpstream returns a connection to addr that dials (and sets up TLS and
// SASL) in its own goroutine.
func newUpstream(node int32, addr string, d dialer, reqTimeout time.Duration, buffer func(int) []byte, dialed func(error), broke func()) *upstreamConn {
	return newUpstreamPipes(node, addr, d, reqTimeout, buffer, nil, dialed, broke)
}

// newUpstreamPipes is newUpstream relaying large Fetch answers through
// pipes (nil: never).
func newUpstreamPipes(node int32, addr string, d dialer, reqTimeout time.Duration, buffer func(int) []byte, pipes *pipePool, dialed func(error), broke func()) *upstreamConn {
	u := &upstreamConn{node: node, addr: addr, timeout: reqTimeout, buffer: buffer, pipes: pipes, dialed: dialed, broke: broke,
		wake: make(chan struct{}, 1), pending: map[int32]*pendingReq{}}
	u.idle = sync.NewCond(&u.mu)
	go u.writeLoop(d)
	return u
}

// isDead reports whether the connection failed or was retired: either
// way it takes no new requests.
func (u *upstreamConn) isDead() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dead || u.retired.Load()
}

// retire takes the connection out of use (its broker moved to another
// address): new requests are refused (errUpstreamClosed, and the sender
// picks another connection), and it is closed as soon as no request sent
// on it waits for an answer.
func (u *upstreamConn) retire() {
	u.mu.Lock()
	u.retired.Store(true)
	drained := len(u.pending) == 0
	u.mu.Unlock()
	if drained {
		u.fail(errUpstreamClosed)
	}
}

// drained reports whether no request sent on the connection waits for an
// answer.
func (u *upstreamConn) drained() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending) == 0
}

// send queues a request frame (after its length prefix) and calls cb with
// the response, or, when expectResponse is false (Produce acks=0), calls
// cb(nil, nil) once the frame is written. The frame's correlation id is
// overwritten. It never blocks on the network; errUpstreamClosed means the
// connection was already broken and cb will not be called.
func (u *upstreamConn) send(frame []byte, more [][]byte, expectResponse bool, timeout time.Duration, cb responseFunc) error {
	return u.sendSplice(frame, more, expectResponse, timeout, cb, nil)
}

// sendSplice is send for a request whose answer may also be relayed
// through a pipe to spl (nil: never).
func (u *upstreamConn) sendSplice(frame []byte, more [][]byte, expectResponse bool, timeout time.Duration, cb responseFunc, spl *spliceTo) error {
	u.mu.Lock()
	if u.dead || u.retired.Load() {
		u.mu.Unlock()
		return errUpstreamClosed
	}
	u.corr++
	corr := u.corr
	binary.BigEndian.PutUint32(frame[4:], uint32(corr))
	of := outFrame{frame: frame, more: more}
	binary.BigEndian.PutUint32(of.prefix[:], uint32(of.size()-len(of.prefix)))
	if expectResponse {
		p := &pendingReq{cb: cb, spl: spl}
		p.timer = time.AfterFunc(timeout, func() { u.expire(corr) })
		u.pending[corr] = p
	} else {
		of.written = func() { cb(nil, nil) }
	}
	if u.writing || len(u.queue) > 0 || u.raw == nil {
		u.queue = append(u.queue, of)
		u.mu.Unlock()
		u.signal()
		return nil
	}
	u.writing = true
	raw := u.raw
	u.mu.Unlock()
	u.writeNow(raw, &of)
	return nil
}

// writeNow writes a frame in the caller with one non-blocking writev; what
// the socket does not take at once is left to the writer goroutine, in
// front of anything queued meanwhile.
func (u *upstreamConn) writeNow(raw syscall.RawConn, of *outFrame) {
	var bufs [8][]byte // a frame in pieces has one per doubling: more is rare
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), of.appendTo(bufs[:0]))
		return true // one attempt: never wait for the socket
	})
	if err == nil {
		err = werr
	}
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		err = nil
	}
	of.skip += max(n, 0)
	done := of.skip == of.size()
	if !done && n > 0 && u.afterPartialWrite != nil {
		u.afterPartialWrite()
	}
	u.mu.Lock()
	u.writing = false
	u.idle.Broadcast()
	if u.dead && err == nil && !done {
		err = errUpstreamClosed // failed meanwhile: the writer is gone
	}
	if err == nil && !done {
		u.queue = slices.Insert(u.queue, 0, *of)
	}
	more := len(u.queue) > 0
	u.mu.Unlock()
	// Once writing is off: the callback answers the request, and an
	// answer lets the loop reuse the frame (and may close the connection,
	// whose fail waits for writing to be off).
	if (done || err != nil) && of.written != nil {
		of.written()
	}
	if err != nil {
		u.fail(fmt.Errorf("write to upstream broker %d: %w", u.node, err))
		return
	}
	if more {
		u.signal()
	}
}

func (u *upstreamConn) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// writeLoop connects (dial, TLS, SASL), starts the reader and writes what
// send queues. Until connect returns, senders only queue: no client frame
// reaches the broker before the connection is authenticated.
func (u *upstreamConn) writeLoop(d dialer) {
	nc, err := d.connect(u.node, u.addr)
	if u.dialed != nil {
		u.dialed(err)
	}
	if err != nil {
		u.fail(err)
		return
	}
	u.mu.Lock()
	if u.dead {
		u.mu.Unlock()
		closeConn(nc)
		return
	}
	u.nc = nc
	// Senders write inline only to a plain TCP socket: over TLS every byte
	// must go through crypto/tls (the writer goroutine's nc.Write).
	if tc, ok := nc.(*net.TCPConn); ok {
		u.raw, _ = tc.SyscallConn()
	}
	u.mu.Unlock()
	go u.readLoop(nc)

	var batch []outFrame
	var bufs net.Buffers
	for range u.wake {
		u.mu.Lock()
		if u.dead {
			// A sender may still be writing: its flag is its own.
			batch, u.queue = u.queue, batch[:0]
			u.mu.Unlock()
			finishWritten(batch)
			return
		}
		if u.writing {
			u.mu.Unlock()
			continue // a sender is writing; it wakes us for what it leaves
		}
		batch, u.queue = u.queue, batch[:0]
		u.writing = len(batch) > 0
		u.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		bufs = bufs[:0]
		for i := range batch {
			bufs = batch[i].appendTo(bufs)
		}
		_ = nc.SetWriteDeadline(time.Now().Add(u.timeout))
		w := bufs // WriteTo consumes its receiver
		_, err := w.WriteTo(nc)
		// Clear the deadline before writing turns off: a sender's inline
		// writev (raw.Write) fails at once on a socket whose deadline has
		// passed, so a deadline left behind would break the connection at
		// the first inline write after an idle spell longer than it.
		_ = nc.SetWriteDeadline(time.Time{})
		if u.afterBatchWrite != nil {
			u.afterBatchWrite()
		}
		clear(bufs) // let the frames go
		u.mu.Lock()
		u.writing = false
		u.idle.Broadcast()
		more := len(u.queue) > 0
		u.mu.Unlock()
		finishWritten(batch) // once writing is off, as in writeNow
		if err != nil {
			u.fail(fmt.Errorf("write to upstream broker %d: %w", u.node, err))
			return
		}
		if more {
			u.signal()
		}
	}
}

// finishWritten tells acks=0 senders their frames are gone and drops the
// batch's references.
func finishWritten(batch []outFrame) {
	for i := range batch {
		if batch[i].written != nil {
			batch[i].written()
		}
		batch[i] = outFrame{}
	}
}

// expire fails a request that got no answer in time and closes the
// connection: Kafka answers in order, so everything behind it is stuck too.
func (u *upstreamConn) expire(corr int32) {
	u.mu.Lock()
	_, ok := u.pending[corr]
	u.mu.Unlock()
	if ok {
		u.fail(errUpstreamTimeout)
	}
}

// fail closes the connection and fails every pending request with err.
func (u *upstreamConn) fail(err error) {
	u.mu.Lock()
	if u.dead {
		u.mu.Unlock()
		return
	}
	u.dead = true
	pending := u.pending
	u.pending = map[int32]*pendingReq{}
	queued := u.queue
	u.queue = nil
	nc := u.nc
	u.mu.Unlock()
	if nc != nil {
		closeConn(nc)
	}
	// A write under way (a sender's writev, the writer's batch) may still
	// be reading frames of the requests failed below, which the loop
	// reuses once they are answered: wait for it to end (closing nc ends a
	// blocked one at once; a sender's writev never blocks). Whoever writes
	// turns writing off before calling fail itself.
	u.mu.Lock()
	for u.writing {
		u.idle.Wait()
	}
	u.mu.Unlock()
	u.signal() // the writer notices and ends
	if u.broke != nil && !errors.Is(err, errClientGone) && !errors.Is(err, errGatewayClosed) && !errors.Is(err, errUpstreamClosed) {
		u.broke()
	}
	finishWritten(queued)
	for _, p := range pending {
		p.timer.Stop()
		p.cb(nil, err)
	}
}

// close ends the connection, failing what is pending with cause.
func (u *upstreamConn) close(cause error) { u.fail(cause) }

func (u *upstreamConn) readLoop(nc net.Conn) {
	// Read straight from the socket: a buffered reader (32 KiB) measured
	// slower for consume through the gateway (medians 87 vs 104 MB/s, 100 B
	// records), its copy of each response's first bytes costing more than
	// the system calls it saves.
	rd := nc
	var rc syscall.RawConn // for splice(2): plain TCP only
	if tc, ok := nc.(*net.TCPConn); ok && u.pipes != nil {
		rc, _ = tc.SyscallConn()
	}
	var head [spliceHead]byte
	for {
		if u.retired.Load() && u.drained() {
			u.fail(errUpstreamClosed) // retired, and its last answer is in
			return
		}
		if _, err := io.ReadFull(rd, head[:8]); err != nil {
			u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if n < 4 || n > maxUpstreamFrame {
			u.fail(fmt.Errorf("upstream broker %d sent a frame of %d bytes", u.node, n))
			return
		}
		corr := int32(binary.BigEndian.Uint32(head[4:8]))
		var frame []byte
		if rc != nil && n >= minSpliced && kafka.LengthSize+n-spliceHead <= u.pipes.size {
			u.mu.Lock()
			p := u.pending[corr]
			u.mu.Unlock()
			if p != nil && p.spl != nil {
				if pp := u.pipes.get(p.spl.client, p.spl.ip); pp != nil {
					f, out := u.spliceAnswer(nc, rc, &head, n, p, pp)
					switch out {
					case spliceFailed:
						return
					case spliceDone:
						continue
					}
					frame = f
				}
			}
		}
		if frame == nil {
			frame = u.answerBuffer(kafka.LengthSize + n)
			copy(frame, head[:8])
			if _, err := io.ReadFull(rd, frame[8:]); err != nil {
				u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
				return
			}
		}
		u.mu.Lock()
		p, ok := u.pending[corr]
		delete(u.pending, corr)
		u.mu.Unlock()
		if !ok {
			continue // expired already (a pooled buffer goes to the GC)
		}
		p.timer.Stop()
		p.cb(frame, nil)
	}
}

// answerBuffer returns a buffer of n bytes for an answer: from the loop's
// pools when it is large (a Fetch answer, up to megabytes: allocating and
// zeroing each one, then collecting it, was a fifth of floodgate's CPU
// consuming through the gateway), else allocated. Ownership: the buffer is
// handed to the pending request's callback and from there, rewritten in
// place, to the loop's respond, which returns it to the pools once it is
// written to the client. Every other path (an answer the gateway decodes,
// rewrites into a new frame or drops) leaves it to the GC: nothing in the
// gateway returns a buffer, so none is returned while still read.
func (u *upstreamConn) answerBuffer(n int) []byte {
	if u.buffer != nil {
		if b := u.buffer(n); b != nil {
			return b
		}
	}
	return make([]byte, n)
}

package loop

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// slot holds the response to one request until it is its turn to be written.
type slot struct {
	buf  *[]byte // nil with done set: no response is due (acks=0)
	done bool
}

// conn is floodgate's state of one client connection. It outlives the gnet
// connection when the connection is parked and re-registered.
type conn struct {
	s     *Server
	kind  listenerKind
	ip    netip.Addr
	ipStr string // ip.String(), computed once
	loop  *loopState
	tag   int32  // the Kafka listener's tag (BootstrapTag for the main one)
	id    uint64 // unique per server, for handlers that keep per-connection state

	// Owned by the event loop (or by the park goroutine while parked).
	gc           gnet.Conn
	prev, next   *conn
	listed       bool
	lastActive   int64
	counted      bool   // counted in the loop's per-IP map
	parking      bool   // the next OnClose is a park, not a close
	lingering    bool   // write side shut after the last response; reading until EOF
	closeReason  string // why floodgate closed it
	carry        []byte // bytes taken from gnet when parked, read first
	out          [][]byte
	outBufs      []*[]byte
	outOff       int
	pendingJob   job // a job the full pool refused; the park goroutine submits it
	throttle     time.Time
	memWaited    bool      // waited for the budget once: refuse next time
	memWaitUntil time.Time // end of that wait
	// share is what the connection's IP holds of the memory budget (set
	// when the connection is admitted); every charge of this connection
	// counts in it.
	share *limits.Share
	// rx charges the input bytes held for this connection and not yet
	// handed to a request: a frame or head still arriving, and the carry.
	rx limits.Charge
	// inFrame: a Kafka frame (frameHdr) is arriving, copied out of the
	// input into frameBuf as it arrives (or discarded when refused).
	inFrame  bool
	frameHdr kafka.Header // its header, checked when it started
	// frameBuf holds the frame's bytes so far (after the length prefix);
	// it grows by doubling up to the frame's length, never ahead of the
	// bytes by more than that, and frameCharge charges its capacity.
	frameBuf    []byte
	frameCharge limits.Charge
	xfer        transfer // the time bound of that frame or of an HTTP body
	discard     discardState
	http        *httpConnState

	// A connection's requests are handed to their handler one after the
	// other, in arrival order, as Kafka does (an idempotent producer's
	// pipelined batches must be appended in sequence); only one of them is
	// in the pool at a time. Handlers that wait (long-poll Fetch, JoinGroup)
	// return at once and answer later, so this holds no worker.
	execMu    sync.Mutex
	executing bool
	execQ     []job

	wakePending atomic.Bool
	closeReq    atomic.Pointer[string] // set by closeAsync
	signal      chan struct{}          // wakes the park goroutine; made at the first park (guarded by mu)

	// Shared with workers: guarded by mu.
	mu      sync.Mutex
	parked  bool
	closed  bool
	nextSeq uint64
	headSeq uint64
	// closeAfter, when set, closes the connection once the response of
	// request closeAfter-1 is written (HTTP Connection: close).
	closeAfter uint64
	slots      []slot
}

// discardState tracks an oversize (or refused) frame being skipped.
type discardState struct {
	left   int64
	seq    uint64
	hdr    kafka.Header
	code   int16
	skim   *kafka.ProduceSkimmer
	fixed  kmsg.Response // answer with this instead of an error shape
	active bool
}

func newConn(s *Server, kind listenerKind, ip netip.Addr) *conn {
	return &conn{s: s, kind: kind, ip: ip, ipStr: ip.String(), slots: make([]slot, 4)}
}

// isClosed reports whether the connection closed for good.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// pending returns requests dispatched whose responses are not yet written.
func (c *conn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.nextSeq - c.headSeq)
}

// reserveSeq allocates the next response slot, in request order.
func (c *conn) reserveSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(c.nextSeq-c.headSeq) == len(c.slots) {
		grown := make([]slot, 2*len(c.slots))
		for s := c.headSeq; s < c.nextSeq; s++ {
			grown[s&uint64(len(grown)-1)] = c.slots[s&uint64(len(c.slots)-1)]
		}
		c.slots = grown
	}
	seq := c.nextSeq
	c.nextSeq++
	c.s.inflight.Add(1)
	return seq
}

// complete stores the encoded response of request seq (nil: none due) and
// wakes whoever writes for this connection. The caller has charged buf to
// the connection's share (chargeOut); from here the output queue owns
// that charge. Safe from any goroutine; called once per seq.
func (c *conn) complete(seq uint64, buf *[]byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.s.inflight.Add(-1)
		c.dropBuf(buf)
		return
	}
	c.slots[seq&uint64(len(c.slots)-1)] = slot{buf: buf, done: true}
	head := seq == c.headSeq
	parked, gc, signal := c.parked, c.gc, c.signal
	c.mu.Unlock()
	if !head {
		return
	}
	if parked || gc == nil {
		select { // a nil signal (never parked) takes the default
		case signal <- struct{}{}:
		default:
		}
		return
	}
	if c.wakePending.CompareAndSwap(false, true) {
		_ = gc.Wake(nil)
	}
}

// dropBuf returns a response buffer that will not be written.
func (c *conn) dropBuf(buf *[]byte) {
	if buf != nil {
		c.s.budget.ReleaseFor(c.share, int64(len(*buf)))
		c.s.bufs.put(buf)
	}
}

// chargeOut charges an encoded response to the connection's share of the
// budget; false when it does not fit (the caller answers smaller).
func (c *conn) chargeOut(buf *[]byte) error {
	return c.s.budget.ReserveFor(c.share, int64(len(*buf)))
}

// forceOut charges a response that must be sent whatever the budget says
// (a small refusal).
func (c *conn) forceOut(buf *[]byte) { c.s.budget.ForceFor(c.share, int64(len(*buf))) }

// drainedForClose reports whether every response up to a requested close
// has been collected and written.
func (c *conn) drainedForClose() bool {
	c.mu.Lock()
	done := c.closeAfter != 0 && c.headSeq >= c.closeAfter
	c.mu.Unlock()
	return done && len(c.out) == 0
}

// collect moves finished responses, in order, to the output queue.
func (c *conn) collect() {
	c.mu.Lock()
	for c.headSeq < c.nextSeq {
		sl := &c.slots[c.headSeq&uint64(len(c.slots)-1)]
		if !sl.done {
			break
		}
		if sl.buf != nil {
			c.out = append(c.out, *sl.buf)
			c.outBufs = append(c.outBufs, sl.buf)
		}
		*sl = slot{}
		c.headSeq++
		c.s.inflight.Add(-1)
	}
	c.mu.Unlock()
}

// maxIOV is the kernel's limit on buffers per writev.
const maxIOV = 1024

// writeOut writes queued output to fd without blocking. It returns blocked
// when the socket's send buffer is full with output left.
func (c *conn) writeOut(fd int) (blocked bool, err error) {
	for len(c.out) > 0 {
		iov := c.out
		if len(iov) > maxIOV {
			iov = iov[:maxIOV]
		}
		first := iov[0]
		iov[0] = first[c.outOff:]
		n, err := unix.Writev(fd, iov)
		iov[0] = first
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		c.s.met.bytesOut.Add(n)
		c.advanceOut(n)
	}
	return false, nil
}

// advanceOut drops n written bytes from the output queue.
func (c *conn) advanceOut(n int) {
	for n > 0 && len(c.out) > 0 {
		left := len(c.out[0]) - c.outOff
		if n < left {
			c.outOff += n
			return
		}
		n -= left
		c.outOff = 0
		c.s.budget.ReleaseFor(c.share, int64(len(c.out[0])))
		c.s.bufs.put(c.outBufs[0])
		c.out[0], c.outBufs[0] = nil, nil
		c.out, c.outBufs = c.out[1:], c.outBufs[1:]
	}
	if len(c.out) == 0 { // keep the capacity: the next responses reuse it
		c.out, c.outBufs = c.out[:0], c.outBufs[:0]
	}
}

// releaseAll frees everything the connection holds; it is closed for good.
func (c *conn) releaseAll() {
	c.mu.Lock()
	c.closed = true
	for s := c.headSeq; s < c.nextSeq; s++ {
		sl := &c.slots[s&uint64(len(c.slots)-1)]
		if sl.done {
			c.dropBuf(sl.buf)
			c.s.inflight.Add(-1)
		}
		*sl = slot{}
	}
	// Requests still running will see closed and release themselves.
	c.headSeq = c.nextSeq
	c.mu.Unlock()
	for i, b := range c.out {
		c.s.budget.ReleaseFor(c.share, int64(len(b)))
		c.s.bufs.put(c.outBufs[i])
	}
	c.out, c.outBufs, c.outOff = nil, nil, 0
	c.rx.Release()
	c.frameCharge.Release()
	c.carry, c.inFrame, c.frameBuf = nil, false, nil
	c.xfer.end()
	if c.http != nil {
		c.http.charge.Release()
		c.http.bodyBuf = nil
	}
	if j := c.pendingJob; j != nil {
		// It holds a sequence and budget; running it lets it release both.
		c.pendingJob = nil
		go runInOrder(j)
	}
}

// submit hands j to the pool, or queues it behind the connection's request
// that is running. false: the pool is full and j is not queued anywhere;
// the connection then counts as executing until the caller hands j on
// (submitBlocking) or calls idle.
func (c *conn) submit(j job) bool {
	c.execMu.Lock()
	if c.executing {
		c.execQ = append(c.execQ, j)
		c.execMu.Unlock()
		return true
	}
	c.executing = true
	c.execMu.Unlock()
	return c.s.pool.trySubmit(j)
}

// idle undoes a submit the pool refused and that will not be retried.
func (c *conn) idle() {
	c.execMu.Lock()
	c.executing = false
	c.execMu.Unlock()
}

// nextJob returns the connection's next queued request, or nil (and the
// connection stops executing).
func (c *conn) nextJob() job {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if len(c.execQ) == 0 {
		c.executing = false
		c.execQ = c.execQ[:0]
		return nil
	}
	j := c.execQ[0]
	c.execQ[0] = nil
	c.execQ = c.execQ[1:]
	return j
}

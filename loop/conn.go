package loop

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// slot holds the response to one request until it is its turn to be written.
type slot struct {
	buf   *[]byte     // nil with done set: no response is due (acks=0)
	files *fileAnswer // the file sections spliced into buf, or nil
	done  bool
}

// conn is floodgate's state of one client connection. It outlives the gnet
// connection when the connection is parked and re-registered.
//
// Every idle connection pays for this struct, so it holds only what an
// idle connection needs (its place in the idle list, its IP and share,
// its flags); everything a connection needs once it sends something
// (output queue, response slots, frame and transfer state, park state)
// is in connBusy, allocated at its first traffic, and HTTP parsing state
// in httpConnState, allocated at its first HTTP bytes.
type conn struct {
	loop *loopState // its event loop; loop.s is the server
	// Owned by the event loop (or by the park goroutine while parked).
	gc         gnet.Conn
	place      links[conn] // in the loop's idle list
	lastActive int64       // unix nanos of the last traffic
	listedAt   int64       // unix nanos when it was put at the back of the idle list
	// ip is the client's address: the socket's peer, or on a PROXY
	// protocol listener the client the header named (proxy.go).
	ip netip.Addr
	// share is what the connection's IP holds of the memory budget (set
	// when the connection is admitted); every charge of this connection
	// counts in it.
	share     *limits.Share
	*connBusy // nil until the first traffic; never freed after

	tag         int32 // the Kafka listener's tag (BootstrapTag for the main one)
	kind        listenerKind
	closeReason closeCause // why floodgate closed it
	listed      bool
	counted     bool // counted in the loop's per-IP map
	parking     bool // the next OnClose is a park, not a close
	lingering   bool // write side shut after the last response; reading until EOF
	inFrame     bool // a Kafka frame (frameHdr) is arriving, buffered or discarded

	// Shared with workers: guarded by mu (with connBusy's sequence and
	// execution fields).
	mu     sync.Mutex
	parked bool
	closed bool
	// A connection's requests are handed to their handler one after the
	// other, in arrival order, as Kafka does (an idempotent producer's
	// pipelined batches must be appended in sequence); only one of them is
	// in the pool at a time (executing). Handlers that wait (long-poll
	// Fetch, JoinGroup) return at once and answer later, so this holds no
	// worker.
	executing bool
}

// connBusy is the state of a connection that has sent something.
type connBusy struct {
	// The fields every request touches come first, in the first three
	// cache lines (the struct is 576 B): with 1000 connections each
	// request otherwise missed the cache on five lines of it.
	id          uint64         // unique per server, for handlers that keep per-connection state
	http        *httpConnState // made at the first HTTP bytes
	wakePending atomic.Bool
	// rx charges the input bytes held for this connection and not yet
	// handed to a request: a frame or head still arriving, and the carry.
	// An idle connection holds none, so it lives here, not in conn.
	rx       limits.Charge
	closeReq atomic.Uint32 // a closeCause, set by closeAsync
	// ext holds the rarely used features (TLS, ...) behind one pointer:
	// nil on a plaintext connection (see connExt). A TLS connection gets
	// connBusy at its enrollment, so conn itself does not grow.
	ext     *connExt
	out     [][]byte
	outBufs []*[]byte
	outOff  int
	files   *fileOut // file sections of queued answers; made at the first (zero-copy Fetch)
	// Guarded by mu.
	nextSeq uint64
	headSeq uint64
	// closeAfter, when set, closes the connection once the response of
	// request closeAfter-1 is written (HTTP Connection: close).
	closeAfter uint64
	slots      []slot // made at the first request through the slots

	ipStr        string // ip.String(), computed once
	carry        []byte // bytes taken from gnet when parked, read first
	pendingJob   job    // a job the full pool refused; the park goroutine submits it
	throttle     time.Time
	memWaited    bool      // waited for the budget once: refuse next time
	memWaitUntil time.Time // end of that wait
	frameHdr     kafka.Header
	// frameBuf holds the frame's bytes so far (after the length prefix);
	// it starts as large as the bytes that have arrived (at least
	// frameStep) and grows by doubling (or to what has arrived, if more)
	// up to the frame's length, never ahead of the bytes by more than
	// that, and frameCharge charges its capacity.
	frameBuf    []byte
	framePooled *[]byte // frameBuf's pool buffer (framepool.go); nil: allocated
	// frameChunks holds the full pieces before frameBuf of a Produce
	// frame kept in the pieces it arrived in (a ChunkedRawKafkaHandler
	// forwards them as they are: no copy when the frame grows), or of
	// another request that did not arrive whole (assembled into one
	// buffer once complete, assembleFrame); nil otherwise.
	frameChunks *frameChunks
	frameCharge limits.Charge
	xfer        transfer // the time bound of that frame or of an HTTP body
	discard     discardState
	execQ       []job         // guarded by mu
	signal      chan struct{} // wakes the park goroutine; made at the first park (guarded by mu)
	// sasl is the connection's SASL state (sasl.go), made at its first
	// SaslHandshake; nil: not authenticated.
	sasl atomic.Pointer[connSASL]
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

func newConn(l *loopState, kind listenerKind, ip netip.Addr) *conn {
	return &conn{loop: l, kind: kind, ip: ip}
}

// busy returns the connection's traffic state, made on first use. Only
// the event loop calls it; workers reach connBusy only through requests
// dispatched after it was made.
func (c *conn) busy() *connBusy {
	if c.connBusy == nil {
		// c.share is nil until OnOpen admits the connection (a TLS
		// connection is busy from its enrollment): open sets rx then.
		b := &connBusy{ipStr: c.ip.String(), id: c.loop.s.connIDs.Add(1), rx: limits.NewCharge(c.loop.s.budget, c.share)}
		c.mu.Lock()
		c.connBusy = b
		c.mu.Unlock()
	}
	return c.connBusy
}

// addr returns the client's IP as a string (for logs and handlers).
func (c *conn) addr() string {
	if b := c.connBusy; b != nil {
		return b.ipStr
	}
	return c.ip.String()
}

// isClosed reports whether the connection closed for good.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// pending returns requests dispatched whose responses are not yet written.
func (c *conn) pending() int {
	n := 0
	c.mu.Lock() // no defer: this runs twice per HTTP request (httpSaturated)
	if c.connBusy != nil {
		n = int(c.nextSeq - c.headSeq)
	}
	c.mu.Unlock()
	return n
}

// answered collects finished responses and reports whether every request
// read so far is answered (its answer is in the output queue or written).
// Event loop only.
func (c *conn) answered() bool {
	all, _ := c.collectState()
	return all
}

// reserveSeq allocates the next response slot, in request order.
func (c *conn) reserveSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int(c.nextSeq-c.headSeq) == len(c.slots) {
		grown := make([]slot, max(2*len(c.slots), 4))
		for s := c.headSeq; s < c.nextSeq; s++ {
			grown[s&uint64(len(grown)-1)] = c.slots[s&uint64(len(c.slots)-1)]
		}
		c.slots = grown
	}
	seq := c.nextSeq
	c.nextSeq++
	c.loop.s.inflight.Add(1)
	return seq
}

// complete stores the encoded response of request seq (nil: none due) and
// wakes whoever writes for this connection. The caller has charged buf to
// the connection's share (chargeOut); from here the output queue owns
// that charge. Safe from any goroutine; called once per seq.
func (c *conn) complete(seq uint64, buf *[]byte) { c.completeFiles(seq, buf, nil) }

// completeFiles is complete for an answer whose records stay in files:
// buf holds the rest of its frame, files where they go. From here the
// output queue owns the sections (released once sent, or dropped).
func (c *conn) completeFiles(seq uint64, buf *[]byte, files *fileAnswer) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.loop.s.inflight.Add(-1)
		c.dropBuf(buf)
		files.release()
		return
	}
	c.slots[seq&uint64(len(c.slots)-1)] = slot{buf: buf, files: files, done: true}
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

// store is complete for the event loop itself: it does not wake the loop,
// which flushes before it waits again (or parks, and the park goroutine
// collects first).
func (c *conn) store(seq uint64, buf *[]byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.loop.s.inflight.Add(-1)
		c.dropBuf(buf)
		return
	}
	c.slots[seq&uint64(len(c.slots)-1)] = slot{buf: buf, done: true}
	c.mu.Unlock()
}

// dropBuf returns a response buffer that will not be written.
func (c *conn) dropBuf(buf *[]byte) {
	if buf != nil {
		c.loop.s.budget.ReleaseFor(c.share, int64(len(*buf)))
		c.loop.s.bufs.put(buf)
	}
}

// chargeOut charges an encoded response to the connection's share of the
// budget; false when it does not fit (the caller answers smaller).
func (c *conn) chargeOut(buf *[]byte) error {
	return c.loop.s.budget.ReserveFor(c.share, int64(len(*buf)))
}

// forceOut charges a response that must be sent whatever the budget says
// (a small refusal).
func (c *conn) forceOut(buf *[]byte) { c.loop.s.budget.ForceFor(c.share, int64(len(*buf))) }

// drainedForClose reports whether every response up to a requested close
// has been collected and written.
func (c *conn) drainedForClose() bool {
	c.mu.Lock()
	done := c.closeAfter != 0 && c.headSeq >= c.closeAfter
	c.mu.Unlock()
	return done && len(c.out) == 0
}

// collect moves finished responses, in order, to the output queue.
func (c *conn) collect() { c.collectState() }

// collectState is collect, reporting under the same lock whether every
// request read so far is answered (all) and whether every response up to
// a requested close is collected (closeDue: drainedForClose once the
// output queue is written). Both stay true until the loop reads another
// request: workers only complete requests already read, and a close they
// request is for one of those. One lock per call: this runs on every
// event of every connection.
func (c *conn) collectState() (all, closeDue bool) {
	start := len(c.out)
	defer c.sealFrom(start) // TLS: the queue holds records, not plaintext
	c.mu.Lock()
	for c.headSeq < c.nextSeq {
		sl := &c.slots[c.headSeq&uint64(len(c.slots)-1)]
		if !sl.done {
			break
		}
		switch {
		case sl.files != nil:
			c.queueFiles(sl.buf, sl.files)
		case sl.buf != nil && len(*sl.buf) == 0:
			c.dropBuf(sl.buf) // an empty entry would read as a file section
		case sl.buf != nil:
			c.out = append(c.out, *sl.buf)
			c.outBufs = append(c.outBufs, sl.buf)
		}
		*sl = slot{}
		c.headSeq++
		c.loop.s.inflight.Add(-1)
	}
	all = c.headSeq == c.nextSeq
	closeDue = c.closeAfter != 0 && c.headSeq >= c.closeAfter
	c.mu.Unlock()
	return all, closeDue
}

// maxIOV is the kernel's limit on buffers per writev.
const maxIOV = 1024

// writeOut writes queued output to fd without blocking. It returns blocked
// when the socket's send buffer is full with output left.
func (c *conn) writeOut(fd int) (blocked bool, err error) {
	for len(c.out) > 0 {
		if len(c.out[0]) == 0 { // a file section
			if blocked, err := c.sendFile(fd); blocked || err != nil {
				return blocked, err
			}
			continue
		}
		n, err := c.loop.write(fd, c.out, c.outOff)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		c.loop.s.met.bytesOut.Add(n)
		c.advanceOut(n)
	}
	return false, nil
}

// write writes bufs (the first from off) with one write(2) or writev(2),
// without allocating: the iovec array is the loop's, reused (unix.Writev
// allocates one per call). It stops before a file section (an empty
// entry), which goes by sendfile(2). Event loop only.
func (l *loopState) write(fd int, bufs [][]byte, off int) (int, error) {
	if len(bufs) == 1 {
		return unix.Write(fd, bufs[0][off:])
	}
	bufs = bufs[:min(len(bufs), maxIOV)]
	iov := l.iov[:0]
	for i, b := range bufs {
		if i == 0 {
			b = b[off:]
		}
		if len(b) == 0 {
			if i == 0 {
				continue
			}
			break // a file section: written by sendFile
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	l.iov = iov
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	clear(iov) // drop the references to the buffers
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// advanceOut drops n written bytes from the output queue. The queue keeps
// its place at the start of its arrays (what is left moves down), so its
// capacity is reused by the next responses instead of shrinking with
// every write and being reallocated.
func (c *conn) advanceOut(n int) {
	k := 0 // buffers written whole
	for n > 0 && k < len(c.out) {
		left := len(c.out[k]) - c.outOff
		if n < left {
			c.outOff += n
			break
		}
		n -= left
		c.outOff = 0
		c.loop.s.budget.ReleaseFor(c.share, int64(len(c.out[k])))
		c.loop.s.bufs.put(c.outBufs[k])
		k++
	}
	if k == 0 {
		return
	}
	m := copy(c.out, c.out[k:])
	copy(c.outBufs, c.outBufs[k:])
	clear(c.out[m:])
	clear(c.outBufs[m:])
	c.out, c.outBufs = c.out[:m], c.outBufs[:m]
}

// releaseAll frees everything the connection holds; it is closed for good.
func (c *conn) releaseAll() {
	c.tlsClosed()
	c.mu.Lock()
	c.closed = true
	if c.connBusy == nil {
		c.mu.Unlock()
		return
	}
	for s := c.headSeq; s < c.nextSeq; s++ {
		sl := &c.slots[s&uint64(len(c.slots)-1)]
		if sl.done {
			c.dropBuf(sl.buf)
			sl.files.release()
			c.loop.s.inflight.Add(-1)
		}
		*sl = slot{}
	}
	// Requests still running will see closed and release themselves.
	c.headSeq = c.nextSeq
	c.mu.Unlock()
	for i, b := range c.out {
		c.loop.s.budget.ReleaseFor(c.share, int64(len(b)))
		c.loop.s.bufs.put(c.outBufs[i])
	}
	c.out, c.outBufs, c.outOff = nil, nil, 0
	c.files.releaseAll()
	c.rx.Release()
	c.frameCharge.Release()
	c.dropFrameBuf()
	c.carry, c.inFrame = nil, false
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
	c.mu.Lock()
	if c.executing {
		c.execQ = append(c.execQ, j)
		c.mu.Unlock()
		return true
	}
	c.executing = true
	c.mu.Unlock()
	return c.loop.s.pool.trySubmit(j)
}

// idle undoes a submit the pool refused and that will not be retried.
func (c *conn) idle() {
	c.mu.Lock()
	c.executing = false
	c.mu.Unlock()
}

// nextJob returns the connection's next queued request, or nil (and the
// connection stops executing).
func (c *conn) nextJob() job {
	c.mu.Lock()
	defer c.mu.Unlock()
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

func (c *conn) links() *links[conn] { return &c.place }

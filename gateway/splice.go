package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Zero-copy relay of Fetch answers (issue 17). With user-space copies gone,
// the kernel's two copies of every byte (socket to buffer, buffer to
// socket) were a quarter to a half of the gateway's CPU consuming
// (BENCHMARKS.md). For a Fetch from a plaintext client over a plaintext
// upstream, the upstream reader reads the answer's first bytes (length,
// correlation id, the throttle) into user space as before, then splices
// the rest of the frame from the upstream socket into a pipe; the loop
// splices it from the pipe to the client socket when the answer's turn
// comes (loop/splice.go). The bytes never enter user space.
//
// Pipes come from a bounded pool (--gateway-splice-pipes, two descriptors
// each, made on first use and kept), of which one client connection may
// hold an eighth at once and all connections of one client IP a quarter:
// one that does not read its answers holds its pipes until --send-timeout
// closes it, and must not take them all from the others, nor may one IP
// by opening several such connections. When none is free (or the client
// or its IP holds its share), for an answer larger than a pipe, for small
// answers (where the pipe costs more than the copy), for TLS on either
// side, or where splice(2) is not supported, the answer is read into a
// buffer as before. The bytes in a pipe are charged to the client's share
// of the memory budget from the moment they are spliced in
// (loop.SpliceResponder.Hold) until written or dropped; a pipe dropped
// with bytes in it (client gone, upstream broken mid-answer, answer
// expired) is closed, never reused.

// DefaultSplicePipes is the pipes a gateway keeps for relaying answers
// (Config.SplicePipes 0); each is two descriptors (SplicePipeFDs).
const DefaultSplicePipes = 64

// SplicePipeFDs returns the descriptors a gateway's pipes hold at most
// with Config.SplicePipes pipes of Config.SplicePipeBytes bytes: two per
// pipe of the pool it will make (none when the relay is off, fewer pipes
// than asked when the system's pipe limits cut the pool), to be kept aside
// from client connections.
func SplicePipeFDs(pipes, bytes int) int {
	n, _ := poolSize(pipes, bytes)
	return 2 * n
}

// maxPipeSize caps a pipe's capacity (F_SETPIPE_SZ), within
// /proc/sys/fs/pipe-max-size: a Fetch answer up to it is relayed whole.
const maxPipeSize = 1 << 20

// spliceHead is the bytes of an answer read into user space before the
// pipe: length and correlation id, the header's tags (v12+) and the
// throttle, which the loop may set.
const spliceHead = 16

// minSpliced is the smallest answer relayed through a pipe: below it the
// two splices and the pipe cost more than reading and writing the bytes.
const minSpliced = 16 << 10

// pipePool is a bounded pool of pipes.
type pipePool struct {
	max       int
	perClient int // pipes one client connection may hold at once
	perIP     int // pipes the connections of one client IP may hold at once
	size      int // each pipe's capacity (bytes)

	mu   sync.Mutex
	free []*pipe
	made int // pipes open (free or in use)
	// held counts the pipes each client connection holds (at most max
	// entries): a client that does not read its answers keeps its pipes
	// until --send-timeout closes it, and must not take every pipe.
	held map[uint64]int
	// ips counts the pipes the connections of each client IP hold (an
	// entry only while the IP holds one, so at most max entries): one IP
	// with several connections that do not read must not take every pipe
	// either.
	ips     map[string]int
	failed  time.Time // last failure to make one: none made for a second
	warn    *limits.WarnLog
	off     atomic.Bool
	metrics poolMetrics
}

// poolMetrics count what the pool did.
type poolMetrics struct {
	spliced    *metrics.Counter // answers relayed through a pipe
	exhausted  *metrics.Counter // answers read into memory: no pipe free
	capped     *metrics.Counter // answers read into memory: the client holds its share of the pipes
	ipCapped   *metrics.Counter // answers read into memory: the client's IP holds its share of the pipes
	overflowed *metrics.Counter // answers that did not fit their pipe
}

// poolSize returns the pipes of a pool asked for n pipes (0: the default,
// negative: none) of size bytes (0: the largest allowed up to
// maxPipeSize), and their size: fewer pipes than asked when the system's
// pipe-user-pages-soft would not hold them, none when the system allows no
// pipe large enough to be worth it.
func poolSize(n, size int) (int, int) {
	if n < 0 {
		return 0, 0
	}
	if n == 0 {
		n = DefaultSplicePipes
	}
	if size <= 0 || size > maxPipeSize {
		size = maxPipeSize
	}
	if m := readProcInt("/proc/sys/fs/pipe-max-size"); m > 0 && m < size {
		size = m
	}
	if size < minSpliced {
		return 0, 0
	}
	// An unprivileged user's pipes may hold pipe-user-pages-soft pages in
	// all before new ones are cut to two pages: keep within half of it.
	if soft := readProcInt("/proc/sys/fs/pipe-user-pages-soft"); soft > 0 {
		n = min(n, max(soft*os.Getpagesize()/2/size, 1))
	}
	return n, size
}

// newPipePool returns a pool of up to n pipes of size bytes (poolSize),
// or nil when that is none; warn logs its refusals.
func newPipePool(n, size int, set *metrics.Set, warn *limits.WarnLog) *pipePool {
	n, size = poolSize(n, size)
	if n == 0 {
		return nil
	}
	p := &pipePool{max: n, perClient: max(n/8, 1), perIP: max(n/4, 1), size: size,
		held: map[uint64]int{}, ips: map[string]int{}, warn: warn}
	p.metrics.spliced = set.NewCounter("floodgate_gateway_fetch_spliced_total")
	p.metrics.exhausted = set.NewCounter(`floodgate_gateway_fetch_buffered_total{reason="no_pipe"}`)
	p.metrics.capped = set.NewCounter(`floodgate_gateway_fetch_buffered_total{reason="client_share"}`)
	p.metrics.ipCapped = set.NewCounter(`floodgate_gateway_fetch_buffered_total{reason="ip_share"}`)
	p.metrics.overflowed = set.NewCounter(`floodgate_gateway_fetch_buffered_total{reason="pipe_full"}`)
	set.NewGauge("floodgate_gateway_pipes_open", func() float64 { o, _ := p.counts(); return float64(o) })
	set.NewGauge("floodgate_gateway_pipes_in_use", func() float64 { o, f := p.counts(); return float64(o - f) })
	return p
}

// readProcInt reads an integer from a /proc file; 0 when it cannot.
func readProcInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// counts returns the pipes open and, of them, the free ones.
func (pp *pipePool) counts() (open, free int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.made, len(pp.free)
}

// get returns a free (empty) pipe for the answer of client connection
// client from IP ip, nil when none is free and the pool is full, the
// connection or its IP holds its share already, or pipes cannot be made.
func (pp *pipePool) get(client uint64, ip string) *pipe {
	if pp == nil || pp.off.Load() {
		return nil
	}
	pp.mu.Lock()
	if pp.held[client] >= pp.perClient {
		pp.mu.Unlock()
		pp.metrics.capped.Inc()
		return nil
	}
	if pp.ips[ip] >= pp.perIP {
		pp.mu.Unlock()
		pp.metrics.ipCapped.Inc()
		pp.refused("gateway-splice-pipes:ip", "a client IP holds its share of the splice pipes; its Fetch answers are read into memory",
			"share", pp.perIP, "client_ip", ip)
		return nil
	}
	if k := len(pp.free); k > 0 {
		p := pp.free[k-1]
		pp.free[k-1] = nil
		pp.free = pp.free[:k-1]
		pp.holdLocked(client, ip)
		p.client, p.ip = client, ip
		pp.mu.Unlock()
		return p
	}
	if pp.made >= pp.max || time.Since(pp.failed) < time.Second {
		pp.mu.Unlock()
		pp.metrics.exhausted.Inc()
		pp.refused("gateway-splice-pipes", "every splice pipe is in use; Fetch answers are read into memory")
		return nil
	}
	pp.made++
	pp.holdLocked(client, ip)
	pp.mu.Unlock()
	p, err := pp.newPipe()
	if err != nil {
		pp.mu.Lock()
		pp.made--
		pp.unholdLocked(client, ip)
		pp.failed = time.Now()
		pp.mu.Unlock()
		return nil
	}
	p.client, p.ip = client, ip
	return p
}

// refused logs a refusal of the pool (rate-limited per key).
func (pp *pipePool) refused(key, msg string, args ...any) {
	if pp.warn == nil || !pp.warn.Due(key) {
		return
	}
	pp.warn.Warn(key, msg, append([]any{"limit", "gateway-splice-pipes", "configured", pp.max}, args...)...)
}

// holdLocked counts one more pipe held by client connection client from
// ip.
func (pp *pipePool) holdLocked(client uint64, ip string) {
	pp.held[client]++
	pp.ips[ip]++
}

// unholdLocked counts one pipe of client connection client from ip as
// given back; each entry goes with its last pipe, so the maps hold only
// connections and IPs holding pipes now.
func (pp *pipePool) unholdLocked(client uint64, ip string) {
	decOrDelete(pp.held, client)
	decOrDelete(pp.ips, ip)
}

// decOrDelete counts one less for k in m, deleting its entry at zero.
func decOrDelete[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// newPipe makes a pipe of the pool's size.
func (pp *pipePool) newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	got, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, pp.size)
	if err == nil && got < pp.size {
		err = fmt.Errorf("got %d bytes", got)
	}
	if err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return nil, fmt.Errorf("set pipe size %d: %w", pp.size, err)
	}
	return &pipe{r: fds[0], w: fds[1], pool: pp}, nil
}

// put takes back an empty pipe client held; once the pool is closed it
// closes it (checked under the lock that close takes, so a pipe given back
// while the pool closes is not left open on the free list).
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	if pp.off.Load() {
		pp.mu.Unlock()
		pp.discard(p, true)
		return
	}
	pp.unholdLocked(p.client, p.ip)
	pp.free = append(pp.free, p)
	pp.mu.Unlock()
}

// discard closes a pipe that may hold bytes (cheaper and surer than
// draining it) and makes room for a new one; held tells whether a client
// held it.
func (pp *pipePool) discard(p *pipe, held bool) {
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
	pp.mu.Lock()
	pp.made--
	if held {
		pp.unholdLocked(p.client, p.ip)
	}
	pp.mu.Unlock()
}

// close closes the free pipes and turns the pool off; pipes in use are
// closed when given back.
func (pp *pipePool) close() {
	if pp == nil {
		return
	}
	pp.mu.Lock()
	pp.off.Store(true)
	free := pp.free
	pp.free = nil
	pp.mu.Unlock()
	for _, p := range free {
		pp.discard(p, false)
	}
}

// pipe is one pipe of a pool: a loop.Pipe once it holds an answer.
type pipe struct {
	r, w   int
	pool   *pipePool
	client uint64      // the client connection holding it (set by get)
	ip     string      // that connection's client IP (set by get)
	done   atomic.Bool // given back: Done is called once
}

// ReadFD returns the read end (loop.Pipe).
func (p *pipe) ReadFD() int { return p.r }

// Done gives the pipe back to its pool, closed when bytes are left in it
// or the pool is closed (loop.Pipe).
func (p *pipe) Done(left int64) {
	if p.done.Swap(true) {
		return
	}
	pp := p.pool
	if left != 0 || pp.off.Load() {
		pp.discard(p, true)
		return
	}
	p.done.Store(false)
	pp.put(p)
}

// spliceOutcome is how relaying an answer through a pipe ended.
type spliceOutcome uint8

const (
	spliceDone     spliceOutcome = iota // answered through the pipe
	spliceBuffered                      // frame holds the whole answer, to deliver as read
	spliceFailed                        // the connection failed (u.fail called)
)

// spliceAnswer relays the answer whose first 8 bytes are in head (n bytes
// after the length) to the pending request p through a pipe. It returns
// spliceBuffered with the frame read into memory when the pipe could not
// take it all (or splice(2) is not supported here).
func (u *upstreamConn) spliceAnswer(nc net.Conn, rc syscall.RawConn, head *[spliceHead]byte, n int, p *pendingReq, pp *pipe) (frame []byte, out spliceOutcome) {
	total := kafka.LengthSize + n
	if _, err := io.ReadFull(nc, head[8:]); err != nil {
		pp.Done(0)
		u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
		return nil, spliceFailed
	}
	body := total - spliceHead
	var moved int // bytes in the pipe, charged to the client
	var full, unsupported bool
	var serr error
	err := rc.Read(func(fd uintptr) bool {
		for moved < body {
			w, e := unix.Splice(int(fd), nil, pp.w, nil, body-moved, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if w > 0 {
				moved += int(w)
				p.spl.sr.Hold(w)
			}
			switch {
			case e == unix.EINTR:
			case e == unix.EAGAIN:
				// The socket is empty, or the pipe full (a pipe holds
				// a page or a socket buffer's fragment per slot, so it
				// may fill short of its size in bytes).
				if q, qe := unix.IoctlGetInt(int(fd), unix.SIOCINQ); qe == nil && q > 0 {
					full = true
					return true
				}
				// Nothing queued: the socket is empty, or the broker
				// closed it. A full pipe answers EAGAIN before the
				// socket is looked at, and the poller's one edge for
				// the end of file may be spent already: only a read
				// tells, so peek (else the reader, and every request
				// pending on this connection, would wait for the
				// request timeout).
				var one [1]byte
				r, _, pe := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				switch {
				case pe == unix.EAGAIN || pe == unix.EINTR:
					return false // wait for the socket
				case pe != nil:
					serr = pe
					return true
				case r == 0:
					serr = io.ErrUnexpectedEOF
					return true
				}
				// Bytes arrived meanwhile: splice again (a full pipe
				// then shows as bytes queued).
			case e == unix.EINVAL || e == unix.ENOSYS || e == unix.EOPNOTSUPP:
				unsupported = true
				return true
			case e != nil:
				serr = e
				return true
			case w == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		p.spl.sr.Unhold(int64(moved))
		pp.Done(int64(moved))
		u.fail(fmt.Errorf("splice from upstream broker %d: %w", u.node, err))
		return nil, spliceFailed
	}
	if full || unsupported {
		if unsupported {
			pp.pool.off.Store(true) // read into memory from now on
		} else {
			pp.pool.metrics.overflowed.Inc()
		}
		frame = u.answerBuffer(total)
		copy(frame, head[:])
		// The pipe holds the bytes now: read them back (they are
		// there, so the read never waits), then the rest.
		got := 0
		for got < moved {
			r, e := unix.Read(pp.r, frame[spliceHead+got:spliceHead+moved])
			if e == unix.EINTR {
				continue
			}
			if e != nil || r <= 0 {
				p.spl.sr.Unhold(int64(moved))
				pp.Done(int64(moved - got))
				u.fail(fmt.Errorf("read back pipe of upstream broker %d: %w", u.node, errors.Join(e, io.ErrUnexpectedEOF)))
				return nil, spliceFailed
			}
			got += r
		}
		p.spl.sr.Unhold(int64(moved))
		pp.Done(0)
		if _, err := io.ReadFull(nc, frame[spliceHead+moved:]); err != nil {
			u.fail(fmt.Errorf("read from upstream broker %d: %w", u.node, err))
			return nil, spliceFailed
		}
		return frame, spliceBuffered
	}
	corr := int32(bigEndian32(head[4:]))
	u.mu.Lock()
	q, ok := u.pending[corr]
	delete(u.pending, corr)
	u.mu.Unlock()
	if !ok || q != p {
		// Failed or expired meanwhile: it was answered with the error.
		p.spl.sr.Unhold(int64(moved))
		pp.Done(int64(moved))
		return nil, spliceDone
	}
	p.timer.Stop()
	pp.pool.metrics.spliced.Inc()
	p.spl.deliver(head[:], pp, int64(moved))
	return nil, spliceDone
}

// bigEndian32 reads a big-endian uint32.
func bigEndian32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// spliceTo is where a Fetch answer relayed through a pipe goes: the loop's
// responder, with the client's correlation id to put back.
type spliceTo struct {
	sr     loop.SpliceResponder
	client uint64 // the client connection's id (its share of the pipes)
	ip     string // the client's IP, the PROXY header's if any (its IP's share)
	corr   int32
	// waiting, when set, is the upstream connection's count of waiting
	// requests this one is in (forward's counted), decremented when it is
	// answered through the pipe.
	waiting *atomic.Int32
}

// deliver answers with head (the client's correlation id put back) and n
// bytes in p.
func (s *spliceTo) deliver(head []byte, p *pipe, n int64) {
	if s.waiting != nil {
		s.waiting.Add(-1)
	}
	kafka.SetCorrelationID(head, s.corr)
	s.sr.RespondSpliced(head, p, n)
}

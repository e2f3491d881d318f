package loop

import (
	"container/heap"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/limits"
)

// loopState is what one event loop owns: its connection count and the
// idle list. Only that loop's goroutine touches it, so it has no locks
// (per-IP counts are the server's ipTable: one IP's connections are
// spread over the loops).
type loopState struct {
	s     *Server
	el    gnet.EventLoop
	conns int
	// idle is a list of the loop's active connections ordered by last
	// activity (oldest first): touching a connection moves it to the back in
	// O(1), and the reaper stops at the first one that is not idle, so no
	// tick scans every connection.
	idle dlist[conn, *conn]
	// heads holds connections waiting for a request head, by deadline
	// (a heap: an entry is renewed on the connection's later deadline).
	heads headHeap
	// lingers holds connections in a lingering close, in deadline order.
	lingers deadlineQueue
	// auths holds connections that must authenticate (--auth-required),
	// in deadline order (sasl.go).
	auths deadlineQueue
	// frames holds connections receiving a frame or body, by deadline (a
	// heap: deadlines depend on the bytes received).
	frames frameHeap
	// touchGrain is how recently a connection may have been moved to the
	// back of the idle list and not be moved again when it is active
	// (nanoseconds): 1/64 of the idle timeout, at most a second.
	touchGrain int64
	// iov is the scratch iovec array of writev, reused by every write.
	iov []unix.Iovec
	// tlsBuf is the scratch buffer TLS connections decrypt into (tls.go).
	tlsBuf []byte
	// inline is the request handed to ServeInline (serveInline), reused
	// by every connection of the loop: answered on the loop, a request
	// allocates nothing.
	inline HTTPRequest
	// head and headReq parse the request heads of every HTTP connection of
	// the loop (onHTTP): at a thousand connections each connection's own
	// parser and request were cache misses on every request. A head that
	// does not arrive in one read moves to the connection
	// (keepPartialHead), a request that outlives its read is copied to it
	// (ownRequest).
	head    httpcodec.HeadParser
	headReq httpcodec.Request
}

// headWatch is one head deadline; stale entries (the head completed) are
// skipped when they reach the front.
type headWatch struct {
	c        *conn
	deadline int64
}

// deadlineQueue is a list of connection deadlines kept in deadline order
// by appending: every entry of a queue has the same timeout (the linger
// time, the authentication timeout). Stale entries stay until they come
// due; the callback decides whether the connection still needs closing.
type deadlineQueue []headWatch

// add appends c's deadline.
func (q *deadlineQueue) add(c *conn, deadline int64) {
	*q = append(*q, headWatch{c, deadline})
}

// expire calls due for every entry whose deadline is at or before now, in
// order, and drops those entries.
func (q *deadlineQueue) expire(l *loopState, now int64, due func(l *loopState, c *conn)) {
	i := 0
	for ; i < len(*q) && (*q)[i].deadline <= now; i++ {
		due(l, (*q)[i].c)
	}
	if i > 0 {
		n := copy(*q, (*q)[i:])
		clear((*q)[n:])
		*q = (*q)[:n]
	}
}

// watchLinger closes c at deadline unless the client closed first.
func (l *loopState) watchLinger(c *conn, deadline int64) {
	l.lingers.add(c, deadline)
}

// expireLingers closes connections whose linger time is over.
func (l *loopState) expireLingers(now int64) {
	l.lingers.expire(l, now, (*loopState).lingerOver)
}

// lingerOver closes c if it is still lingering.
func (l *loopState) lingerOver(c *conn) {
	if c.gc != nil && c.lingering {
		c.closeReason = causeHTTPClose
		_ = l.el.Close(c.gc)
	}
}

// watchHead adds a connection's head deadline. A connection has one entry
// at most (httpConnState.watched): a keep-alive connection moves its
// deadline with every request, and the entry is renewed when it comes due
// on a later deadline, so the watch costs one entry per connection and
// nothing per request.
func (l *loopState) watchHead(c *conn, deadline int64) {
	heap.Push(&l.heads, headWatch{c, deadline})
}

// expireHeads answers 408 to connections whose head is late (slowloris).
func (l *loopState) expireHeads(now int64) {
	for len(l.heads) > 0 && l.heads[0].deadline <= now {
		w := heap.Pop(&l.heads).(headWatch)
		h := w.c.http
		if h == nil {
			continue
		}
		h.watched = false
		if h.phase != phaseHead || h.deadline == 0 || w.c.gc == nil {
			continue // watched again at its next head (or when it resumes)
		}
		if h.deadline > now {
			h.watched = true
			heap.Push(&l.heads, headWatch{w.c, h.deadline})
			continue
		}
		w.c.refuseHTTP(&httpcodec.LimitError{Limit: "header-read-timeout", Status: 408,
			Configured: l.s.httpLim().HeaderTimeout.Milliseconds(), Reason: "request head not received in time"})
	}
}

// headHeap is a min-heap of head deadlines.
type headHeap []headWatch

func (h headHeap) Len() int           { return len(h) }
func (h headHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h headHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *headHeap) Push(x any)        { *h = append(*h, x.(headWatch)) }
func (h *headHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = headWatch{}
	*h = old[:len(old)-1]
	return w
}

func newLoopState(s *Server, el gnet.EventLoop) *loopState {
	grain := min(s.lim().IdleTimeout/64, time.Second)
	return &loopState{s: s, el: el, touchGrain: int64(grain)}
}

// touch marks c active now. It moves c to the back of the idle list only
// when its place there is older than touchGrain: relinking touches two
// neighbours and the tail (other connections' memory) on every request,
// and the list needs only to be ordered by listedAt, with lastActive (the
// precise time) checked by the reaper.
func (l *loopState) touch(c *conn, now int64) {
	c.lastActive = now
	if c.listed && now-c.listedAt < l.touchGrain {
		return
	}
	l.moveToBack(c, now)
}

// moveToBack puts c at the back of the idle list, listed at now.
func (l *loopState) moveToBack(c *conn, now int64) {
	c.listedAt = now
	if l.idle.tail == c {
		return
	}
	l.unlink(c)
	l.idle.pushBack(c)
	c.listed = true
}

// unlink removes c from the idle list if it is there.
func (l *loopState) unlink(c *conn) {
	if !c.listed {
		return
	}
	l.idle.remove(c)
	c.listed = false
}

// reap closes connections idle for longer than the timeout. Connections
// with requests in flight are not idle: they are moved to the back.
func (l *loopState) reap(now time.Time) {
	l.expireHeads(now.UnixNano())
	l.expireTransfers(now.UnixNano())
	l.expireLingers(now.UnixNano())
	l.expireAuths(now.UnixNano())
	limit := now.Add(-l.s.lim().IdleTimeout).UnixNano()
	// The list is ordered by listedAt, and lastActive >= listedAt: once
	// the head was listed within the timeout, so was every connection
	// behind it, and none is idle.
	for c := l.idle.head; c != nil && c.listedAt < limit; c = l.idle.head {
		if c.lastActive >= limit || c.pending() > 0 {
			// Active within the timeout (touched without a move), or
			// with requests in flight: not idle.
			l.moveToBack(c, now.UnixNano())
			continue
		}
		l.unlink(c)
		c.closeReason = causeIdle
		if c.gc != nil {
			_ = l.el.Close(c.gc)
		}
	}
}

// admitIP counts a connection of ip in, unless the per-IP limit is
// reached, and returns the IP's share of the memory budget.
func (l *loopState) admitIP(ip netip.Addr) (*limits.Share, bool) {
	share, ok := l.s.ips.admit(ip, l.s.lim().MaxConnectionsPerIP)
	if ok {
		l.conns++
	}
	return share, ok
}

// connsOf returns how many connections ip has open (on every loop).
func (l *loopState) connsOf(ip netip.Addr) int32 { return l.s.ips.conns(ip) }

// releaseIP counts a connection of ip out (see ipTable.release).
func (l *loopState) releaseIP(ip netip.Addr) {
	l.s.ips.release(ip)
	l.conns--
}

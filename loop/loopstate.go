package loop

import (
	"container/heap"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	httpcodec "github.com/floodgate/floodgate/codec/http"
)

// loopState is what one event loop owns: per-IP connection counts and the
// idle list. Only that loop's goroutine touches it, so it has no locks.
type loopState struct {
	s     *Server
	el    gnet.EventLoop
	perIP map[netip.Addr]int32
	conns int
	// idle is a list of the loop's active connections ordered by last
	// activity (oldest first): touching a connection moves it to the back in
	// O(1), and the reaper stops at the first one that is not idle, so no
	// tick scans every connection.
	head, tail *conn
	// heads holds connections waiting for a request head, in deadline
	// order (one timeout, so arrival order is deadline order).
	heads []headWatch
	// lingers holds connections in a lingering close, in deadline order.
	lingers []headWatch
	// frames holds connections receiving a frame, by deadline (a heap:
	// deadlines depend on frame sizes).
	frames frameHeap
}

// frameWatch is one frame deadline; stale entries are skipped.
type frameWatch struct {
	c        *conn
	deadline int64
}

// frameHeap is a min-heap of frame deadlines.
type frameHeap []frameWatch

func (h frameHeap) Len() int           { return len(h) }
func (h frameHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h frameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)        { *h = append(*h, x.(frameWatch)) }
func (h *frameHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = frameWatch{}
	*h = old[:len(old)-1]
	return w
}

// watchFrame adds a frame deadline.
func (l *loopState) watchFrame(c *conn, deadline int64) {
	heap.Push(&l.frames, frameWatch{c, deadline})
}

// expireFrames closes connections whose frame did not arrive in time,
// releasing the budget reserved for it.
func (l *loopState) expireFrames(now int64) {
	for len(l.frames) > 0 && l.frames[0].deadline <= now {
		w := heap.Pop(&l.frames).(frameWatch)
		c := w.c
		if c.frameDeadline != w.deadline {
			continue // the frame arrived (or a newer one is watched)
		}
		if c.gc == nil { // parked meanwhile: check again once it is back
			c.frameDeadline = now + int64(time.Second)
			heap.Push(&l.frames, frameWatch{c, c.frameDeadline})
			continue
		}
		l.s.warn.Warn("limit:frame-time", "frame not received in time; closing connection", "limit", "frame-time",
			"configured_min_rate_bytes_per_s", frameMinRate, "reserved", c.frameBudget, "client_ip", c.ipStr)
		c.closeReason = "slow_frame"
		_ = l.el.Close(c.gc)
	}
}

// headWatch is one head deadline; stale entries (the head completed) are
// skipped when they reach the front.
type headWatch struct {
	c        *conn
	deadline int64
}

// watchLinger closes c at deadline unless the client closed first (one
// linger time, so the list is in deadline order).
func (l *loopState) watchLinger(c *conn, deadline int64) {
	l.lingers = append(l.lingers, headWatch{c, deadline})
}

// expireLingers closes connections whose linger time is over.
func (l *loopState) expireLingers(now int64) {
	i := 0
	for ; i < len(l.lingers) && l.lingers[i].deadline <= now; i++ {
		c := l.lingers[i].c
		if c.gc != nil && c.lingering {
			c.closeReason = "http_close"
			_ = l.el.Close(c.gc)
		}
	}
	if i > 0 {
		n := copy(l.lingers, l.lingers[i:])
		clear(l.lingers[n:])
		l.lingers = l.lingers[:n]
	}
}

// watchHead adds a head deadline.
func (l *loopState) watchHead(c *conn, deadline int64) {
	l.heads = append(l.heads, headWatch{c, deadline})
}

// expireHeads answers 408 to connections whose head is late (slowloris).
func (l *loopState) expireHeads(now int64) {
	i := 0
	for ; i < len(l.heads) && l.heads[i].deadline <= now; i++ {
		w := l.heads[i]
		h := w.c.http
		if h == nil || h.phase != phaseHead || h.deadline != w.deadline || w.c.gc == nil {
			continue
		}
		w.c.refuseHTTP(&httpcodec.LimitError{Limit: "header-read-timeout", Status: 408,
			Configured: l.s.cfg.HTTPLimits.HeaderTimeout.Milliseconds(), Reason: "request head not received in time"})
	}
	if i > 0 {
		n := copy(l.heads, l.heads[i:])
		clear(l.heads[n:])
		l.heads = l.heads[:n]
	}
}

func newLoopState(s *Server, el gnet.EventLoop) *loopState {
	return &loopState{s: s, el: el, perIP: map[netip.Addr]int32{}}
}

// touch marks c active now and moves it to the back of the idle list.
func (l *loopState) touch(c *conn, now int64) {
	c.lastActive = now
	if l.tail == c {
		return
	}
	l.unlink(c)
	c.prev = l.tail
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
	c.listed = true
}

// unlink removes c from the idle list if it is there.
func (l *loopState) unlink(c *conn) {
	if !c.listed {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next, c.listed = nil, nil, false
}

// reap closes connections idle for longer than the timeout. Connections
// with requests in flight are not idle: they are moved to the back.
func (l *loopState) reap(now time.Time) {
	l.expireHeads(now.UnixNano())
	l.expireFrames(now.UnixNano())
	l.expireLingers(now.UnixNano())
	limit := now.Add(-l.s.cfg.Limits.IdleTimeout).UnixNano()
	for c := l.head; c != nil && c.lastActive < limit; c = l.head {
		if c.pending() > 0 {
			l.touch(c, now.UnixNano())
			continue
		}
		l.unlink(c)
		c.closeReason = "idle"
		if c.gc != nil {
			_ = l.el.Close(c.gc)
		}
	}
}

// admitIP counts a connection of ip in, unless the per-IP limit is reached.
func (l *loopState) admitIP(ip netip.Addr) bool {
	n := l.perIP[ip]
	if int(n) >= l.s.cfg.Limits.MaxConnectionsPerIP {
		return false
	}
	l.perIP[ip] = n + 1
	l.conns++
	return true
}

// releaseIP counts a connection of ip out.
func (l *loopState) releaseIP(ip netip.Addr) {
	if n := l.perIP[ip]; n <= 1 {
		delete(l.perIP, ip)
	} else {
		l.perIP[ip] = n - 1
	}
	l.conns--
}

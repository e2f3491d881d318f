package loop

import (
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	httpcodec "github.com/floodgate/floodgate/codec/http"
	"github.com/floodgate/floodgate/limits"
)

// loopState is what one event loop owns: per-IP connection counts and the
// idle list. Only that loop's goroutine touches it, so it has no locks.
type loopState struct {
	s     *Server
	el    gnet.EventLoop
	perIP map[netip.Addr]*ipState
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
	// frames holds connections receiving a frame or body, by deadline (a
	// heap: deadlines depend on the bytes received).
	frames frameHeap
}

// ipState is what one source IP holds on its loop: its connections, and
// its share of the memory budget (shared with workers, hence atomic).
type ipState struct {
	conns int32
	share limits.Share
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
	return &loopState{s: s, el: el, perIP: map[netip.Addr]*ipState{}}
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
	l.expireTransfers(now.UnixNano())
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

// admitIP counts a connection of ip in, unless the per-IP limit is
// reached, and returns the IP's share of the memory budget.
func (l *loopState) admitIP(ip netip.Addr) (*limits.Share, bool) {
	st := l.perIP[ip]
	if st == nil {
		st = new(ipState)
		l.perIP[ip] = st
	}
	if int(st.conns) >= l.s.cfg.Limits.MaxConnectionsPerIP {
		return nil, false
	}
	st.conns++
	l.conns++
	return &st.share, true
}

// connsOf returns how many connections ip has on this loop.
func (l *loopState) connsOf(ip netip.Addr) int32 {
	if st := l.perIP[ip]; st != nil {
		return st.conns
	}
	return 0
}

// releaseIP counts a connection of ip out. The entry goes with the IP's
// last connection: a request of it still running holds a pointer to the
// share and releases into it, so nothing is lost, and the map never holds
// an IP without connections.
func (l *loopState) releaseIP(ip netip.Addr) {
	st := l.perIP[ip]
	if st == nil {
		return
	}
	if st.conns <= 1 {
		delete(l.perIP, ip)
	} else {
		st.conns--
	}
	l.conns--
}

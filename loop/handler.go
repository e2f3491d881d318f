package loop

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/panjf2000/gnet/v2"

	"github.com/floodgate/floodgate/limits"
)

// OnOpen sets up a new or re-registered (unparked) connection.
func (s *Server) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	switch v := gc.Context().(type) {
	case probeMarker:
		s.loopOf(gc)
		return nil, gnet.Close
	case *conn:
		return s.open(v, gc)
	default:
		return nil, gnet.Close // nobody else can reach the engine's socket
	}
}

func (s *Server) open(c *conn, gc gnet.Conn) ([]byte, gnet.Action) {
	now := time.Now().UnixNano()
	c.mu.Lock()
	resumed := c.parked
	c.parked = false
	c.gc = gc
	c.mu.Unlock()
	if resumed {
		c.loop.touch(c, now)
		if c.xfer.active {
			c.watchTransfer() // the loop's watch skipped it while parked
		}
		if h := c.http; h != nil && h.phase == phaseHead && h.deadline != 0 && !h.watched {
			h.watched = true
			c.loop.watchHead(c, h.deadline)
		}
		c.wakePending.Store(true)
		_ = gc.Wake(nil) // read the carry and flush what finished meanwhile
		return nil, gnet.None
	}
	share, ok := c.loop.admitIP(c.ip)
	if !ok {
		s.met.rejected("max_connections_per_ip")
		if key := "limit:max-connections-per-ip:" + c.addr(); s.warn.Due(key) {
			s.warn.Warn(key, "connection refused", "limit", "max-connections-per-ip",
				"configured", s.lim().MaxConnectionsPerIP, "actual", c.loop.connsOf(c.ip), "client_ip", c.addr())
		}
		c.closeReason = causeRejected
		if c.tlsOf() != nil {
			// A TLS connection cannot be answered in plaintext: it is
			// closed (and counted) after its handshake.
			return nil, gnet.Close
		}
		// gnet has read nothing yet: the refuser answers the first request
		// on a duplicate of the socket while gnet closes its own.
		s.refuse.holdGnet(gc, c.kind, "max-connections-per-ip", int64(s.lim().MaxConnectionsPerIP), int64(c.loop.connsOf(c.ip)))
		return nil, gnet.Close
	}
	c.counted = true
	c.share = share
	if s.cfg.AuthRequired && c.kind == kindKafka {
		c.loop.watchAuth(c, now+int64(s.lim().SASLAuthenticationTimeout))
	}
	if c.connBusy != nil { // made before its admission (TLS): charge to the share now
		c.rx = limits.NewCharge(s.budget, share)
	}
	c.loop.touch(c, now)
	if c.tlsOf() != nil {
		// The handshake may have read the client's first records with
		// its last ones: they wait in tls, not in the socket.
		c.wakePending.Store(true)
		_ = gc.Wake(nil)
	}
	return nil, gnet.None
}

// OnClose releases a connection, unless the close is a park.
func (s *Server) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	if c.parking {
		c.parking = false
		return gnet.None
	}
	c.mu.Lock()
	c.gc = nil
	c.mu.Unlock()
	c.loop.unlink(c)
	if c.counted {
		c.loop.releaseIP(c.ip)
		c.counted = false
	}
	if c.closeReason != causeRejected {
		s.met.closed(c.closeReason)
	}
	c.releaseAll()
	s.active.Add(-1)
	s.connClosed(c)
	return gnet.None
}

// OnTraffic reads the table of contents of one connection's turn: honour a
// close request, write finished responses, then read requests.
func (s *Server) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	if c.connBusy == nil || c.ext == nil {
		return s.traffic(c, gc)
	}
	act := s.traffic(c, gc)
	if !c.parking { // park copied it already, and the park goroutine owns c now
		c.ownCarry()
	}
	return act
}

// traffic is OnTraffic for one of floodgate's connections.
func (s *Server) traffic(c *conn, gc gnet.Conn) gnet.Action {
	c.busy()
	c.wakePending.Store(false)
	if r := closeCause(c.closeReq.Load()); r != causeNone {
		// Answers already finished go out first (best effort, without
		// waiting for the socket): a request that panicked after its
		// handler responded still delivers that answer.
		c.collect()
		_, _ = c.writeOut(gc.Fd())
		c.closeReason = r
		return gnet.Close
	}
	now := time.Now()
	c.loop.touch(c, now.UnixNano())
	if t := c.tlsOf(); t != nil {
		if act := c.tlsRead(gc, t); act != gnet.None {
			return act
		}
	}
	if act, parked := c.flush(gc); act != gnet.None || parked {
		return act
	}
	var act gnet.Action
	if c.kind == kindHTTP {
		act = c.onHTTP(gc, now)
	} else {
		act = c.onKafka(gc)
	}
	if act != gnet.None || c.parking {
		return act
	}
	c.holdInput(input{c: c, gc: gc}.avail())
	// Answers produced while reading (refusals) go out now.
	act, _ = c.flush(gc)
	return act
}

// holdInput charges the input bytes the connection keeps between two
// reads. What a frame or body in progress holds was charged strictly as
// it arrived (a refusal when it did not fit); what is left here is at
// most one read of the next request's start, so it is taken as it is.
func (c *conn) holdInput(avail int) {
	avail += c.tlsHeld() // an incomplete TLS record, kept by crypto/tls
	if err := c.rx.Set(int64(avail)); err != nil {
		c.rx.Force(int64(avail) - c.rx.Held())
	}
}

// flush writes finished responses. A full socket parks the connection: the
// rest is written by the park goroutine.
func (c *conn) flush(gc gnet.Conn) (gnet.Action, bool) {
	_, closeDue := c.collectState() // drainedForClose once c.out is written
	if len(c.out) == 0 {
		if closeDue {
			return c.lingerClose(gc), false
		}
		return gnet.None, false
	}
	blocked, err := c.writeOut(gc.Fd())
	if err != nil {
		c.closeReason = causeWriteError
		return gnet.Close, false
	}
	if blocked {
		return c.park(gc, "slow_reader"), true
	}
	if closeDue && len(c.out) == 0 {
		return c.lingerClose(gc), false
	}
	return gnet.None, false
}

// defaultLinger is how long a connection closed after a response keeps
// reading (and discarding) what the client still sends, when
// HTTPLimits.Linger is not set.
const defaultLinger = 2 * time.Second

// lingerClose ends a connection whose last response is written: it sends
// FIN (shutdown of the write side) and keeps reading until the client
// closes or --http-linger-timeout passes, as nginx's lingering close does. Closing
// at once with unread bytes in the socket makes the kernel send RST, and
// an RST can destroy the response (a 413 or 408) before the client reads
// it.
func (c *conn) lingerClose(gc gnet.Conn) gnet.Action {
	if c.lingering {
		return gnet.None
	}
	if err := unix.Shutdown(gc.Fd(), unix.SHUT_WR); err != nil {
		c.closeReason = causeHTTPClose
		return gnet.Close
	}
	c.lingering = true
	c.closeReason = causeHTTPClose
	if c.http != nil {
		c.http.phase = phaseClosing
	}
	linger := c.loop.s.httpLim().Linger
	if linger <= 0 {
		linger = defaultLinger
	}
	c.loop.watchLinger(c, time.Now().Add(linger).UnixNano())
	return gnet.None
}

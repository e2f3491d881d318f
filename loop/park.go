package loop

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// parkPoll is how often a parked connection rechecks the global limits
// (pool queue, memory budget) that have no event of their own.
const parkPoll = 20 * time.Millisecond

// park stops reading a saturated connection: it keeps a duplicate of the
// socket, takes the bytes gnet has buffered, and lets gnet close its copy.
// The socket stays open and unread, so the client meets TCP backpressure.
// It runs on the event loop and returns the action for gnet.
func (c *conn) park(gc gnet.Conn, reason string) gnet.Action {
	s := c.s
	fd, err := gc.Dup()
	if err != nil {
		// No descriptor to park with: closing is the only bounded answer.
		s.met.closed("park_failed")
		s.warn.Warn("park_failed", "could not park a saturated connection; closing it",
			"reason", reason, "client_ip", c.ipStr, "error", err.Error())
		c.closeReason = "park_failed"
		return gnet.Close
	}
	in := input{c: c, gc: gc}
	if len(c.carry) > 0 {
		in.absorb()
	} else if n := gc.InboundBuffered(); n > 0 {
		b, _ := gc.Peek(n)
		c.carry = append([]byte(nil), b...)
		s.budget.Force(int64(n))
		_, _ = gc.Discard(n)
	}
	c.mu.Lock()
	c.parked = true
	c.gc = nil
	if c.signal == nil {
		c.signal = make(chan struct{}, 1)
	}
	c.mu.Unlock()
	c.parking = true
	c.loop.unlink(c)
	s.parked.Add(1)
	s.met.counter(`floodgate_parks_total{reason="` + reason + `"}`).Inc()
	go c.runParked(fd)
	return gnet.Close
}

// runParked owns a parked connection: it writes the responses still owed
// (blocking, so a client that does not read holds only its own output),
// submits a job the full pool refused, and re-registers the socket with its
// event loop once no limit holds it back.
func (c *conn) runParked(fd int) {
	s := c.s
	f := os.NewFile(uintptr(fd), "parked")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.parked.Add(-1)
		c.finishParked("park_failed")
		return
	}
	if j := c.pendingJob; j != nil {
		c.pendingJob = nil
		if !c.submitBlocking(j) {
			nc.Close()
			s.parked.Add(-1)
			c.finishParked("shutdown")
			return
		}
	}
	timer := time.NewTimer(parkPoll)
	defer timer.Stop()
	for {
		c.collect()
		if len(c.out) > 0 {
			if err := c.writeBlocking(nc); err != nil {
				nc.Close()
				s.parked.Add(-1)
				c.finishParked("write_error")
				return
			}
			continue
		}
		if c.drainedForClose() {
			nc.Close()
			s.parked.Add(-1)
			c.finishParked("http_close")
			return
		}
		if s.stopping.Load() {
			nc.Close()
			s.parked.Add(-1)
			c.finishParked("shutdown")
			return
		}
		if c.canResume() {
			break
		}
		wait := parkPoll
		if d := time.Until(c.throttle); d > 0 && d < wait {
			wait = d
		}
		timer.Reset(wait)
		select {
		case <-c.signal:
		case <-timer.C:
		}
	}
	s.parked.Add(-1)
	if err := s.enroll(c.loop, c, nc); err != nil {
		c.finishParked("register_failed")
	}
}

// canResume reports whether no limit holds the parked connection back.
func (c *conn) canResume() bool {
	s := c.s
	if time.Now().Before(c.throttle) {
		return false
	}
	if c.pending() >= (s.cfg.Limits.MaxInflight+1)/2 || s.pool.full() {
		return false
	}
	return !s.budget.NearLimit() || (c.memWaited && !time.Now().Before(c.memWaitUntil))
}

// submitBlocking queues j, waiting for room; false when shutting down.
func (c *conn) submitBlocking(j job) (ok bool) {
	defer func() {
		if recover() != nil { // the pool closed under us
			ok = false
		}
	}()
	for !c.s.stopping.Load() {
		select {
		case c.s.pool.jobs <- j:
			return true
		case <-time.After(parkPoll):
		}
	}
	return false
}

// writeBlocking writes the output queue to a parked socket, with the idle
// timeout as the deadline: a client that reads nothing for that long is
// closed.
func (c *conn) writeBlocking(nc net.Conn) error {
	_ = nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Limits.IdleTimeout))
	for len(c.out) > 0 {
		n, err := nc.Write(c.out[0][c.outOff:])
		c.s.met.bytesOut.Add(n)
		c.advanceOut(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// finishParked releases a parked connection that will not come back. The
// per-IP count lives in the event loop, so that part runs there.
func (c *conn) finishParked(reason string) {
	s := c.s
	s.met.closed(reason)
	c.releaseAll()
	s.active.Add(-1)
	s.connClosed(c)
	l := c.loop
	_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if c.counted {
			l.releaseIP(c.ip)
			c.counted = false
		}
		return nil
	}))
}

// closeAsync asks the event loop to close the connection, from any goroutine.
func (c *conn) closeAsync(reason string) {
	c.closeReq.Store(&reason)
	c.mu.Lock()
	gc := c.gc
	c.mu.Unlock()
	if gc != nil {
		_ = gc.Wake(nil)
	}
}

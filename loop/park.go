package loop

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// parkPoll is how often a parked connection rechecks the global limits
// (pool queue, memory budget) that have no event of their own.
const parkPoll = 20 * time.Millisecond

// park stops reading a saturated connection: it keeps a duplicate of the
// socket, takes the bytes gnet has buffered, and lets gnet close its copy.
// The socket stays open and unread, so the client meets TCP backpressure.
// It runs on the event loop and returns the action for gnet.
func (c *conn) park(gc gnet.Conn, reason string) gnet.Action {
	s := c.loop.s
	fd, err := gc.Dup()
	if err != nil {
		// No descriptor to park with: closing is the only bounded answer.
		s.met.closed(causeParkFailed)
		s.warn.Warn("park_failed", "could not park a saturated connection; closing it",
			"reason", reason, "client_ip", c.addr(), "error", err.Error())
		c.closeReason = causeParkFailed
		return gnet.Close
	}
	c.ownCarry() // TLS: the plaintext read is in the loop's scratch
	in := input{c: c, gc: gc}
	if len(c.carry) > 0 {
		in.absorb()
	} else if n := gc.InboundBuffered(); n > 0 {
		b, _ := gc.Peek(n)
		c.carry = append([]byte(nil), b...)
		_, _ = gc.Discard(n)
	}
	c.holdInput(len(c.carry)) // the same bytes, now in the carry
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
	s := c.loop.s
	f := os.NewFile(uintptr(fd), "parked")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.parked.Add(-1)
		c.finishParked(causeParkFailed)
		return
	}
	if j := c.pendingJob; j != nil {
		c.pendingJob = nil
		if !c.submitBlocking(j) {
			nc.Close()
			s.parked.Add(-1)
			c.finishParked(causeShutdown)
			return
		}
	}
	timer := time.NewTimer(parkPoll)
	defer timer.Stop()
	end := func(reason closeCause) {
		nc.Close()
		s.parked.Add(-1)
		c.finishParked(reason)
	}
	lastProgress := time.Now()
	for {
		c.collect()
		if len(c.out) > 0 {
			if err := c.writeBlocking(nc); err != nil {
				reason := causeWriteError
				if errors.Is(err, os.ErrDeadlineExceeded) {
					reason = causeSendTimeout
					if c.transferExpired(time.Now().UnixNano()) {
						reason = causeSlowFrame
					}
				}
				end(reason)
				return
			}
			lastProgress = time.Now()
			continue
		}
		if c.drainedForClose() {
			end(causeHTTPClose)
			return
		}
		if r := closeCause(c.closeReq.Load()); r != causeNone {
			end(r)
			return
		}
		if s.stopping.Load() {
			end(causeShutdown)
			return
		}
		now := time.Now()
		if c.transferExpired(now.UnixNano()) {
			// A frame or body was arriving when the connection parked: it
			// cannot arrive while parked, and its bytes stay charged, so
			// its time bound holds here too.
			end(causeSlowFrame)
			return
		}
		if peerClosed(nc) {
			// The client is gone (FIN or RST): its unread requests and the
			// answers still owed are dropped with the connection, as when
			// a connection on the loop reads EOF.
			end(causeClient)
			return
		}
		if now.Sub(lastProgress) > s.lim().IdleTimeout {
			end(causeIdle)
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
		c.finishParked(causeRegisterFailed)
	}
}

// canResume reports whether no limit holds the parked connection back.
func (c *conn) canResume() bool {
	s := c.loop.s
	if time.Now().Before(c.throttle) {
		return false
	}
	if c.pending() >= (s.lim().MaxInflight+1)/2 || s.pool.full() {
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
	for !c.loop.s.stopping.Load() {
		select {
		case c.loop.s.pool.jobs <- j:
			return true
		case <-time.After(parkPoll):
		}
	}
	return false
}

// writeChunk bounds one blocking write, so that every chunk written
// renews the send deadline: a client reading slowly keeps its connection,
// one that stops reading is closed after --send-timeout.
const writeChunk = 256 << 10

// writeBlocking writes the output queue to a parked socket. Each chunk
// must be taken by the client within --send-timeout (and before the time
// bound of a frame still arriving, whose bytes the connection holds).
func (c *conn) writeBlocking(nc net.Conn) error {
	lim := c.loop.s.lim()
	for len(c.out) > 0 {
		deadline := time.Now().Add(lim.SendTimeout)
		if c.xfer.active {
			if d := time.Unix(0, c.transferDeadline()); d.Before(deadline) {
				deadline = d
			}
		}
		if len(c.out[0]) == 0 { // a file section
			if err := c.sendFileBlocking(nc, deadline); err != nil {
				return err
			}
			continue
		}
		_ = nc.SetWriteDeadline(deadline)
		b := c.out[0][c.outOff:]
		n, err := nc.Write(b[:min(len(b), writeChunk)])
		c.loop.s.met.bytesOut.Add(n)
		c.advanceOut(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// TCP states (linux/tcp_states.h) in which the peer has closed its side.
const (
	tcpTimeWait  = 6
	tcpClose     = 7
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)

// peerClosed reports whether the client closed its side of a parked
// socket (FIN or RST), which the unread bytes ahead of the FIN would hide
// from a read: the kernel's TCP state tells at once.
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	_ = rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			closed = true
			return
		}
		switch info.State {
		case tcpTimeWait, tcpClose, tcpCloseWait, tcpLastAck, tcpClosing:
			closed = true
		}
	})
	return closed
}

// finishParked releases a parked connection that will not come back. The
// loop's connection count lives in the event loop, so that part runs there.
func (c *conn) finishParked(reason closeCause) {
	s := c.loop.s
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

// closeAsync asks the event loop (or the park goroutine, when parked) to
// close the connection, from any goroutine.
func (c *conn) closeAsync(reason closeCause) {
	c.closeReq.Store(uint32(reason))
	c.mu.Lock()
	gc, signal := c.gc, c.signal
	c.mu.Unlock()
	if gc != nil {
		_ = gc.Wake(nil)
		return
	}
	select { // a nil signal (never parked) takes the default
	case signal <- struct{}{}:
	default:
	}
}

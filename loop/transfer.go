package loop

import (
	"container/heap"
	"time"

	"github.com/floodgate/floodgate/codec/httpcodec"
)

// transfer is the time bound of one Kafka frame or HTTP body while its
// bytes arrive. The time it may take grows only with the bytes that
// actually arrived (--request-read-timeout, plus one second per
// --min-request-rate bytes received), so a client announcing a large frame
// or body and trickling it gets no more time than its real rate earns.
//
// It is owned by the event loop while the connection is on it and by the
// park goroutine while parked; the loop's watch skips parked connections.
type transfer struct {
	active bool
	gen    uint32 // tells this transfer's watches from older ones
	start  int64  // unix nanos
	recv   int64  // bytes received so far
}

// begin starts a transfer at now.
func (t *transfer) begin(now int64) {
	t.gen++
	t.active, t.start, t.recv = true, now, 0
}

// end finishes the transfer (arrived, refused or closed).
func (t *transfer) end() { t.active = false }

// deadline returns the unix nanos by which the transfer must be done,
// given the bytes received so far.
func (t *transfer) deadline(timeout time.Duration, minRate int64) int64 {
	extra := int64(0)
	if minRate > 0 {
		extra = int64(float64(t.recv) / float64(minRate) * float64(time.Second))
	}
	return t.start + int64(timeout) + extra
}

// transferDeadline returns when the connection's frame or body must be
// done, given the bytes received so far.
func (c *conn) transferDeadline() int64 {
	lim := c.loop.s.lim()
	return c.xfer.deadline(lim.RequestReadTimeout, lim.MinRequestRate)
}

// beginTransfer starts the time bound of a frame or body and watches it.
func (c *conn) beginTransfer(now int64) {
	c.xfer.begin(now)
	c.watchTransfer()
}

// watchTransfer puts the transfer's current deadline on the loop's watch.
func (c *conn) watchTransfer() {
	heap.Push(&c.loop.frames, frameWatch{c: c, gen: c.xfer.gen, deadline: c.transferDeadline()})
}

// transferExpired reports whether the transfer ran out of time at now.
func (c *conn) transferExpired(now int64) bool {
	return c.xfer.active && now >= c.transferDeadline()
}

// frameWatch is one transfer deadline; stale entries are skipped.
type frameWatch struct {
	c        *conn
	gen      uint32
	deadline int64
}

// frameHeap is a min-heap of transfer deadlines.
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

// expireTransfers ends the frames and bodies that did not arrive in time:
// a Kafka connection is closed, an HTTP one answered 408 and closed; what
// they held is released with the connection. A deadline that moved (bytes
// arrived meanwhile) is watched again.
func (l *loopState) expireTransfers(now int64) {
	lim := l.s.lim()
	for len(l.frames) > 0 && l.frames[0].deadline <= now {
		w := heap.Pop(&l.frames).(frameWatch)
		c := w.c
		if c.gc == nil || !c.xfer.active || c.xfer.gen != w.gen {
			// Done, closed, or parked: the park goroutine enforces the
			// bound meanwhile and the watch is renewed when it comes back.
			continue
		}
		if d := c.transferDeadline(); d > now {
			heap.Push(&l.frames, frameWatch{c: c, gen: w.gen, deadline: d})
			continue
		}
		c.xfer.end()
		if c.kind == kindHTTP {
			l.s.met.closed(causeSlowBody)
			c.refuseHTTP(&httpcodec.LimitError{Limit: "request-read-timeout", Status: 408,
				Configured: lim.RequestReadTimeout.Milliseconds(), Actual: c.xfer.recv,
				Reason: "request body not received in time (the minimum rate is --min-request-rate bytes/s)"})
			continue
		}
		l.s.warn.Warn("limit:request-read-timeout", "frame not received in time; closing connection", "limit", "request-read-timeout",
			"configured_ms", lim.RequestReadTimeout.Milliseconds(), "min_rate_bytes_per_s", lim.MinRequestRate,
			"received", c.xfer.recv, "held", c.frameCharge.Held(), "client_ip", c.addr())
		c.closeReason = causeSlowFrame
		_ = l.el.Close(c.gc)
	}
}

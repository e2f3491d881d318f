package limits

import (
	"errors"
	"math"
	"sync/atomic"
)

// Budget accounts the bytes floodgate holds for in-flight requests and
// queued responses against a limit, and the part of them each client (a
// source IP) holds against a per-client cap, so that one client can never
// take the whole budget. Its counters are atomics; every loop and worker
// shares it.
type Budget struct {
	// limit and perClient change only by SetLimit (a reload).
	limit     atomic.Int64
	perClient atomic.Int64
	used      atomic.Int64
}

// Share is what one client holds of a budget. The zero value is empty; a
// nil *Share is a client without a cap (internal work).
type Share struct {
	held atomic.Int64
}

// Held returns the bytes the client holds.
func (s *Share) Held() int64 {
	if s == nil {
		return 0
	}
	return s.held.Load()
}

// Sentinel errors of Grow, for callers that answer each differently.
var (
	// ErrBudgetExhausted: the whole budget is in use.
	ErrBudgetExhausted = errors.New("memory budget exhausted")
	// ErrShareExhausted: this client holds its whole share of the budget.
	ErrShareExhausted = errors.New("client's share of the memory budget exhausted")
)

// NewBudget returns a budget of limit bytes of which one client may hold
// at most perClient (0 or more than limit: the whole limit).
func NewBudget(limit, perClient int64) *Budget {
	b := new(Budget)
	b.SetLimit(limit, perClient)
	return b
}

// SetLimit changes the limit and the per-client cap (0 or more than limit:
// the whole limit) while the budget is in use. Bytes held stay held: when
// more than the new limit is in use, nothing new fits until enough is
// released.
func (b *Budget) SetLimit(limit, perClient int64) {
	if perClient <= 0 || perClient > limit {
		perClient = limit
	}
	b.limit.Store(limit)
	b.perClient.Store(perClient)
}

// Limit returns the configured limit.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// PerClient returns the most one client may hold.
func (b *Budget) PerClient() int64 { return b.perClient.Load() }

// Used returns the bytes currently held.
func (b *Budget) Used() int64 { return b.used.Load() }

// Reserve takes n bytes if they fit and reports whether they did.
func (b *Budget) Reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit.Load() {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// ReserveFor takes n bytes for client sh if they fit both the budget and
// the client's share; the error says which did not.
func (b *Budget) ReserveFor(sh *Share, n int64) error {
	if sh != nil {
		if sh.held.Add(n) > b.perClient.Load() {
			sh.held.Add(-n)
			return ErrShareExhausted
		}
	}
	if !b.Reserve(n) {
		if sh != nil {
			sh.held.Add(-n)
		}
		return ErrBudgetExhausted
	}
	return nil
}

// ForceFor takes n bytes for client sh even over the limits (bytes that
// already exist and must be accounted, such as a small error answer).
func (b *Budget) ForceFor(sh *Share, n int64) {
	if sh != nil {
		sh.held.Add(n)
	}
	b.used.Add(n)
}

// ReleaseFor returns n bytes client sh held.
func (b *Budget) ReleaseFor(sh *Share, n int64) {
	if sh != nil {
		sh.held.Add(-n)
	}
	b.used.Add(-n)
}

// Release returns n bytes.
func (b *Budget) Release(n int64) { b.used.Add(-n) }

// Room returns how many more bytes client sh could take now: the lesser of
// what is left of the budget and of its share. It is a snapshot (other
// holders move it), for sizing a request that ReserveFor then checks.
func (b *Budget) Room(sh *Share) int64 {
	r := b.limit.Load() - b.used.Load()
	if sh != nil {
		r = min(r, b.perClient.Load()-sh.held.Load())
	}
	return max(r, 0)
}

// NearLimit reports whether usage is at or above the high-water mark (7/8 of
// the limit) at which connections stop being read.
func (b *Budget) NearLimit() bool { l := b.limit.Load(); return b.used.Load() >= l-l/8 }

// Exhausted reports whether usage is at or above the limit.
func (b *Budget) Exhausted() bool { return b.used.Load() >= b.limit.Load() }

// Charge is one holder's bytes of the budget (a frame or body being
// received, a request being served). It is owned by one goroutine at a
// time and hands over with its owner; Release returns everything it
// holds and may be called any number of times, so every path (done,
// closed, parked, panicked) can call it without counting twice.
type Charge struct {
	b     *Budget
	share *Share
	n     int64
}

// NewCharge returns an empty charge of client sh against b.
func NewCharge(b *Budget, sh *Share) Charge { return Charge{b: b, share: sh} }

// Held returns the bytes the charge holds.
func (c *Charge) Held() int64 { return c.n }

// Grow takes n more bytes, or returns why they do not fit.
func (c *Charge) Grow(n int64) error {
	if n <= 0 || c.b == nil {
		return nil
	}
	if err := c.b.ReserveFor(c.share, n); err != nil {
		return err
	}
	c.n += n
	return nil
}

// Room returns the most the charge could be Set to now: what it holds
// plus Budget.Room (unbounded without a budget).
func (c *Charge) Room() int64 {
	if c.b == nil {
		return math.MaxInt64
	}
	return c.n + c.b.Room(c.share)
}

// Force takes n more bytes even over the limits.
func (c *Charge) Force(n int64) {
	if n <= 0 || c.b == nil {
		return
	}
	c.b.ForceFor(c.share, n)
	c.n += n
}

// Set grows or shrinks the charge to n bytes; it fails (holding what it
// held) when growing does not fit.
func (c *Charge) Set(n int64) error {
	if n > c.n {
		return c.Grow(n - c.n)
	}
	c.Shrink(c.n - n)
	return nil
}

// Shrink returns n of the bytes held (at most all of them).
func (c *Charge) Shrink(n int64) {
	n = min(n, c.n)
	if n <= 0 || c.b == nil {
		return
	}
	c.b.ReleaseFor(c.share, n)
	c.n -= n
}

// Move hands n of the bytes held over to dst (a charge of the same client
// and budget) without touching the counters.
func (c *Charge) Move(dst *Charge, n int64) {
	n = min(n, c.n)
	c.n -= n
	dst.b, dst.share = c.b, c.share
	dst.n += n
}

// Release returns everything the charge holds.
func (c *Charge) Release() {
	if c.n != 0 && c.b != nil {
		c.b.ReleaseFor(c.share, c.n)
	}
	c.n = 0
}

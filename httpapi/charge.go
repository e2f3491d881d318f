package httpapi

import (
	"errors"
	"sync/atomic"

	"github.com/floodgate/floodgate/limits"
)

// errBudget is returned when the memory budget cannot cover what a request
// is about to allocate; the request is answered 503 instead of built.
var errBudget = errors.New("memory budget exhausted")

// charge is the share of the memory budget one HTTP request holds for what
// the API allocates on its behalf: the decompressed body, the decoded
// produce records and the batches built from them, the fetched batches, their
// decompressed records and the JSON answer. It is taken as those buffers
// grow (never announced sizes) and released once, when the answer is handed
// to the loop (which charges the encoded response itself), on every path:
// answer, refusal and recovered panic.
type charge struct {
	b     *limits.Budget
	share *limits.Share // the client IP's share, as for the loop's charges
	held  atomic.Int64
	done  atomic.Bool
}

// take reserves n more bytes; false (nothing taken) when they do not fit
// or the charge was released already.
func (c *charge) take(n int64) bool {
	if n <= 0 {
		return true
	}
	if c.done.Load() || c.b.ReserveFor(c.share, n) != nil {
		return false
	}
	c.held.Add(n)
	return true
}

// give returns n bytes of the charge early (a buffer that was dropped).
func (c *charge) give(n int64) {
	if n <= 0 {
		return
	}
	c.held.Add(-n)
	c.b.ReleaseFor(c.share, n)
}

// release returns everything held, once; later takes fail.
func (c *charge) release() {
	if c.done.CompareAndSwap(false, true) {
		c.b.ReleaseFor(c.share, c.held.Swap(0))
	}
}

// grow returns buf with room for n more bytes, charging the growth of its
// capacity. It doubles like append, so the charge is what is allocated.
func (c *charge) grow(buf []byte, n int) ([]byte, error) {
	if cap(buf)-len(buf) >= n {
		return buf, nil
	}
	return c.growTo(buf, max(2*cap(buf), len(buf)+n, 512))
}

// growTo returns buf with a capacity of newCap (more than it has),
// charging the new buffer.
func (c *charge) growTo(buf []byte, newCap int) ([]byte, error) {
	// Both buffers exist during the copy; the old one is garbage after it
	// and its share is given back (the budget counts live buffers).
	if !c.take(int64(newCap)) {
		return buf, errBudget
	}
	nb := make([]byte, len(buf), newCap)
	copy(nb, buf)
	c.give(int64(cap(buf)))
	return nb, nil
}

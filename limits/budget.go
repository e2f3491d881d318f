package limits

import "sync/atomic"

// Budget accounts the bytes floodgate holds for in-flight requests and
// queued responses against a limit. It is one atomic counter; every loop and
// worker shares it.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Limit returns the configured limit.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes currently held.
func (b *Budget) Used() int64 { return b.used.Load() }

// Reserve takes n bytes if they fit and reports whether they did.
func (b *Budget) Reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Force takes n bytes even over the limit (for responses already owed).
func (b *Budget) Force(n int64) { b.used.Add(n) }

// Release returns n bytes.
func (b *Budget) Release(n int64) { b.used.Add(-n) }

// NearLimit reports whether usage is at or above the high-water mark (7/8 of
// the limit) at which connections stop being read.
func (b *Budget) NearLimit() bool { return b.used.Load() >= b.limit-b.limit/8 }

// Exhausted reports whether usage is at or above the limit.
func (b *Budget) Exhausted() bool { return b.used.Load() >= b.limit }

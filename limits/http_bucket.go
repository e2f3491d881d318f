package limits

import "time"

// RateResult is the outcome of one Buckets.Allow (HTTP rate limits: one
// bucket per key, a single key "" for a global limit, never overdrawn).
type RateResult struct {
	// OK reports whether a token was taken.
	OK bool
	// Remaining is the whole tokens left after the call.
	Remaining int
	// Wait is how long until one token is there (0 when OK).
	Wait time.Duration
	// Full is how long until the bucket is full again.
	Full time.Duration
}

// Burst returns the bucket size.
func (b *Buckets) Burst() float64 { return b.burst }

// Allow takes one token of key's bucket at now if there is one; unlike
// Take, a refused request takes nothing (HTTP answers 429 and does not
// serve it).
func (b *Buckets) Allow(key []byte, now time.Time) RateResult {
	s, bk := b.bucket(key, now)
	defer s.mu.Unlock()
	wait := bk.TryTake(now, b.rate, b.burst)
	res := RateResult{OK: wait == 0, Wait: wait, Remaining: int(bk.tokens)}
	if res.Remaining < 0 {
		res.Remaining = 0
	}
	res.Full = time.Duration((b.burst - bk.tokens) / b.rate * float64(time.Second))
	return res
}

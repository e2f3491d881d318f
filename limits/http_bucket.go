package limits

import (
	"sync"
	"time"
)

// RateResult is the outcome of one RateLimiter.Allow.
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

// RateLimiter is a set of token buckets of one rate and burst, one per key
// (a single key "" for a global limit). It never goes negative: a refused
// request takes nothing. It is sharded so that workers rarely contend, and
// forgets keys whose bucket refilled. Safe for concurrent use.
type RateLimiter struct {
	rate, burst float64
	shards      [16]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	buckets map[string]*Bucket
	sweep   time.Time
}

// NewRateLimiter returns buckets refilling at rate tokens per second up to burst.
func NewRateLimiter(rate, burst float64) *RateLimiter {
	r := &RateLimiter{rate: rate, burst: burst}
	for i := range r.shards {
		r.shards[i].buckets = make(map[string]*Bucket)
	}
	return r
}

// Rate returns the rate in tokens per second.
func (r *RateLimiter) Rate() float64 { return r.rate }

// Burst returns the bucket size.
func (r *RateLimiter) Burst() float64 { return r.burst }

// Allow takes one token of key's bucket at now if there is one.
func (r *RateLimiter) Allow(key []byte, now time.Time) RateResult {
	s := &r.shards[fnv(key)%uint32(len(r.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	bk, ok := s.buckets[string(key)]
	if !ok {
		s.forget(now, r.burst/r.rate)
		bk = &Bucket{}
		s.buckets[string(key)] = bk
	}
	wait := bk.TryTake(now, r.rate, r.burst)
	res := RateResult{OK: wait == 0, Wait: wait, Remaining: int(bk.tokens)}
	if res.Remaining < 0 {
		res.Remaining = 0
	}
	res.Full = time.Duration((r.burst - bk.tokens) / r.rate * float64(time.Second))
	return res
}

// forget drops buckets idle for longer than a full refill, at most once a second.
func (s *rateShard) forget(now time.Time, refillSeconds float64) {
	if now.Sub(s.sweep) < time.Second {
		return
	}
	s.sweep = now
	idle := time.Duration((refillSeconds + 1) * float64(time.Second))
	for k, bk := range s.buckets {
		if now.Sub(bk.last) > idle {
			delete(s.buckets, k)
		}
	}
}

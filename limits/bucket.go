package limits

import (
	"sync"
	"time"
)

// Bucket is a token bucket that refills at Rate tokens per second up to
// Burst. It is not safe for concurrent use; Buckets wraps it with locks.
type Bucket struct {
	tokens float64
	last   time.Time
}

// Take takes one token at now. When the bucket is empty it still takes the
// token (going negative, as Kafka's quotas do) and returns how long the
// caller must wait before the bucket is back at zero.
func (b *Bucket) Take(now time.Time, rate, burst float64) time.Duration {
	return b.TakeN(now, 1, rate, burst)
}

// TakeN takes n tokens at now (a byte count for a byte-rate quota), going
// negative as Take does, and returns how long the caller must wait for the
// bucket to be back at zero. n = 0 only reports the debt.
func (b *Bucket) TakeN(now time.Time, n, rate, burst float64) time.Duration {
	if b.last.IsZero() {
		b.tokens = burst
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens += el * rate
		if b.tokens > burst {
			b.tokens = burst
		}
	}
	b.last = now
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / rate * float64(time.Second))
}

// TryTake takes one token if one is there; otherwise it takes nothing and
// returns how long until one is.
func (b *Bucket) TryTake(now time.Time, rate, burst float64) time.Duration {
	wait := b.Take(now, rate, burst)
	if wait > 0 {
		b.tokens++
	}
	return wait
}

// Buckets keeps one bucket per key (a client id or an IP) with a shared rate.
// It is sharded so that event loops rarely contend, and forgets keys idle
// for longer than a full refill.
type Buckets struct {
	rate, burst float64
	shards      [16]bucketShard
}

type bucketShard struct {
	mu       sync.Mutex
	buckets  map[string]*Bucket
	sweep    time.Time
	overflow Bucket // shared by new keys while the shard is full
}

// Keys are client input (a client id of up to 32 KiB): the buckets keep at
// most maxKeysPerShard keys per shard (65,536 in all) of at most maxKeyBytes
// each, so a client inventing ids cannot grow the map. Past the bound new
// keys share one bucket per shard, which throttles the inventor with
// everyone it collides with; a longer key is cut (ids sharing their first
// 128 bytes share a bucket).
const (
	maxKeysPerShard = 4096
	maxKeyBytes     = 128
)

// NewBuckets returns per-key buckets of the given rate per second and burst.
func NewBuckets(rate, burst float64) *Buckets {
	b := &Buckets{rate: rate, burst: burst}
	for i := range b.shards {
		b.shards[i].buckets = make(map[string]*Bucket)
	}
	return b
}

// Rate returns the configured rate per second.
func (b *Buckets) Rate() float64 { return b.rate }

// Take takes a token for key (see Bucket.Take).
func (b *Buckets) Take(key []byte, now time.Time) time.Duration {
	s, bk := b.bucket(key, now)
	defer s.mu.Unlock()
	return bk.Take(now, b.rate, b.burst)
}

// TakeN takes n tokens for key (see Bucket.TakeN).
func (b *Buckets) TakeN(key []byte, n int64, now time.Time) time.Duration {
	s, bk := b.bucket(key, now)
	defer s.mu.Unlock()
	return bk.TakeN(now, float64(n), b.rate, b.burst)
}

// bucket returns key's bucket with its shard locked; the caller unlocks.
func (b *Buckets) bucket(key []byte, now time.Time) (*bucketShard, *Bucket) {
	if len(key) > maxKeyBytes {
		key = key[:maxKeyBytes]
	}
	s := &b.shards[fnv(key)%uint32(len(b.shards))]
	s.mu.Lock()
	bk, ok := s.buckets[string(key)] // no allocation for the lookup
	if !ok {
		s.forgetIdle(now, b.burst/b.rate)
		if len(s.buckets) >= maxKeysPerShard {
			return s, &s.overflow
		}
		bk = &Bucket{}
		s.buckets[string(key)] = bk
	}
	return s, bk
}

// forgetIdle drops buckets that have been full for a while, at most once a second.
func (s *bucketShard) forgetIdle(now time.Time, refillSeconds float64) {
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

// Len returns the number of keys tracked.
func (b *Buckets) Len() int {
	n := 0
	for i := range b.shards {
		b.shards[i].mu.Lock()
		n += len(b.shards[i].buckets)
		b.shards[i].mu.Unlock()
	}
	return n
}

func fnv(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

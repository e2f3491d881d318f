package loop

import (
	"log/slog"
	"sync"
	"time"
)

// rateLimitedLog logs a WARN per key at most once per interval and counts
// what it suppressed, so an attack cannot flood the log.
type rateLimitedLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	dropped  map[string]int
}

func newRateLimitedLog(l *slog.Logger, interval time.Duration) *rateLimitedLog {
	return &rateLimitedLog{log: l, interval: interval, last: map[string]time.Time{}, dropped: map[string]int{}}
}

// Due reports whether a Warn for key would be logged now, so that callers
// on hot refusal paths (a flood) skip building the log arguments.
func (r *rateLimitedLog) Due(key string) bool {
	r.mu.Lock()
	t, ok := r.last[key]
	if ok && time.Since(t) < r.interval {
		r.dropped[key]++
		r.mu.Unlock()
		return false
	}
	r.mu.Unlock()
	return true
}

// Warn logs msg with args unless key was logged within the interval.
func (r *rateLimitedLog) Warn(key, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if t, ok := r.last[key]; ok && now.Sub(t) < r.interval {
		r.dropped[key]++
		r.mu.Unlock()
		return
	}
	r.last[key] = now
	n := r.dropped[key]
	delete(r.dropped, key)
	if len(r.last) > 4096 { // forget old keys so the map stays small
		for k, t := range r.last {
			if now.Sub(t) > r.interval {
				delete(r.last, k)
			}
		}
	}
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
}

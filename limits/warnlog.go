package limits

import (
	"log/slog"
	"sync"
	"time"
)

// warnKeys bounds how many keys the rate-limited log remembers. Keys carry
// client input (an IP), so an attacker from many addresses must not grow
// the map: past the bound, new keys share one overflow key.
const warnKeys = 1024

// overflowKey is the key of events whose own key found no room.
const overflowKey = "overflow"

// warnState is one key's last log time and what it suppressed since.
type warnState struct {
	last    time.Time
	dropped int
}

// WarnLog is the WARN log of limit violations: one line per key (a limit,
// or a limit and a client) at most once per interval, with the count of
// what it suppressed, so an attack cannot flood the log. It remembers at
// most warnKeys keys. Safe for concurrent use.
type WarnLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	keys     map[string]*warnState
	pruned   time.Time // when keys were last pruned: at most once an interval
}

// NewWarnLog returns a WarnLog logging to l at most once per interval per
// key.
func NewWarnLog(l *slog.Logger, interval time.Duration) *WarnLog {
	return &WarnLog{log: l, interval: interval, keys: map[string]*warnState{}}
}

// state returns key's state (or the overflow key's when the map is full,
// after forgetting keys whose interval is over). Called with mu held.
func (r *WarnLog) state(key string, now time.Time) *warnState {
	if st := r.keys[key]; st != nil {
		return st
	}
	if len(r.keys) >= warnKeys && now.Sub(r.pruned) > r.interval {
		r.pruned = now
		for k, st := range r.keys {
			if now.Sub(st.last) > r.interval {
				delete(r.keys, k)
			}
		}
	}
	if len(r.keys) >= warnKeys {
		key = overflowKey
		if st := r.keys[key]; st != nil {
			return st
		}
	}
	st := new(warnState)
	r.keys[key] = st
	return st
}

// Due reports whether a Warn for key would be logged now, so that callers
// on hot refusal paths (a flood) skip building the log arguments.
func (r *WarnLog) Due(key string) bool {
	ok, _ := r.take(key, false)
	return ok
}

// Allow reports whether a line for key may be written now (by the caller,
// at a level of its choosing) and, if so, counts it as written.
func (r *WarnLog) Allow(key string) bool {
	ok, _ := r.take(key, true)
	return ok
}

// Warn logs msg with args unless key was logged within the interval.
func (r *WarnLog) Warn(key, msg string, args ...any) {
	ok, suppressed := r.take(key, true)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.log.Warn(msg, args...)
}

// take reports whether key may be logged now; a refusal is counted as
// suppressed. With write, a yes counts as the line written and returns
// how many were suppressed since the last one.
func (r *WarnLog) take(key string, write bool) (bool, int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state(key, now)
	if !st.last.IsZero() && now.Sub(st.last) < r.interval {
		st.dropped++
		return false, 0
	}
	if !write {
		return true, 0
	}
	n := st.dropped
	st.last, st.dropped = now, 0
	return true, n
}

// Keys returns how many keys are remembered.
func (r *WarnLog) Keys() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

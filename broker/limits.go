package broker

// Limits on what clients can make the broker keep: topics, partitions,
// topics named or auto-created by one Metadata request, and the smallest
// segment a client may configure. Each trip answers a Kafka error naming
// the limit (where the API has a message), counts
// floodgate_requests_refused_total{limit="<flag>"} and logs a WARN at
// most once per interval per limit.

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errPolicyViolation is POLICY_VIOLATION (44): the request is well formed
// but the broker's policy (a configured limit) refuses it.
const errPolicyViolation int16 = 44

// setLimitDefaults fills the zero limits with their defaults.
func (c *Config) setLimitDefaults() {
	if c.MaxPartitionsPerTopic <= 0 {
		c.MaxPartitionsPerTopic = DefaultMaxPartitionsPerTopic
	}
	if c.MaxPartitions <= 0 {
		c.MaxPartitions = DefaultMaxPartitions
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.MaxMetadataTopics <= 0 {
		c.MaxMetadataTopics = DefaultMaxMetadataTopics
	}
	if c.MaxAutoCreateTopics <= 0 {
		c.MaxAutoCreateTopics = DefaultMaxAutoCreateTopics
	}
	if c.MinSegmentBytes <= 0 {
		c.MinSegmentBytes = DefaultMinSegmentBytes
	}
}

// tripped counts and logs (rate-limited) one refusal by the limit flag.
func (b *Broker) tripped(flag string, msg string, args ...any) {
	b.metrics.set.GetOrCreateCounter(fmt.Sprintf(`floodgate_requests_refused_total{limit=%q}`, flag)).Inc()
	b.warnings.Warn(flag, msg, append(args, "limit", flag)...)
}

// warnLog logs a WARN per key at most once per interval and reports how
// many it suppressed, so a flood of refusals cannot flood the log.
type warnLog struct {
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	last    map[string]time.Time // keys are limit flags: a fixed, small set
	dropped map[string]int
}

func newWarnLog(l *slog.Logger, interval time.Duration) *warnLog {
	return &warnLog{log: l, interval: interval, last: map[string]time.Time{}, dropped: map[string]int{}}
}

// Warn logs msg unless key was logged within the interval.
func (w *warnLog) Warn(key, msg string, args ...any) {
	now := time.Now()
	w.mu.Lock()
	if t, ok := w.last[key]; ok && now.Sub(t) < w.interval {
		w.dropped[key]++
		w.mu.Unlock()
		return
	}
	w.last[key] = now
	n := w.dropped[key]
	delete(w.dropped, key)
	w.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	w.log.Warn(msg, args...)
}

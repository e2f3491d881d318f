package broker

// Limits on what clients can make the broker keep: topics, partitions,
// topics named or auto-created by one Metadata request, and the smallest
// segment a client may configure. Each trip answers a Kafka error naming
// the limit (where the API has a message), counts
// floodgate_requests_refused_total{limit="<flag>"} and logs a WARN at
// most once per interval per limit.

import (
	"fmt"
)

// errPolicyViolation is POLICY_VIOLATION (44): the request is well formed
// but the broker's policy (a configured limit) refuses it.
const errPolicyViolation int16 = 44

// setLimitDefaults fills the zero limits with their defaults.
func (c *Config) setLimitDefaults() {
	c.MaxPartitionsPerTopic = positiveOr(c.MaxPartitionsPerTopic, DefaultMaxPartitionsPerTopic)
	c.MaxPartitions = positiveOr(c.MaxPartitions, DefaultMaxPartitions)
	c.MaxTopics = positiveOr(c.MaxTopics, DefaultMaxTopics)
	c.MaxMetadataTopics = positiveOr(c.MaxMetadataTopics, DefaultMaxMetadataTopics)
	c.MaxAutoCreateTopics = positiveOr(c.MaxAutoCreateTopics, DefaultMaxAutoCreateTopics)
	c.MinSegmentBytes = positiveOr(c.MinSegmentBytes, DefaultMinSegmentBytes)
}

// positiveOr is v, or def when v is not positive: a count limit left at
// zero (or set below it) takes its default.
func positiveOr[T int | int32 | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// tripped counts and logs (rate-limited) one refusal by the limit flag.
func (b *Broker) tripped(flag string, msg string, args ...any) {
	b.metrics.set.GetOrCreateCounter(fmt.Sprintf(`floodgate_requests_refused_total{limit=%q}`, flag)).Inc()
	b.warnings.Warn(flag, msg, append(args, "limit", flag)...)
}

package broker

import (
	"fmt"
	"strconv"

	"github.com/floodgate/floodgate/codec/kafka"
)

// maxTopicNameLen is Kafka's limit on topic name length.
const maxTopicNameLen = 249

// validTopicName reports why name cannot be a topic, or "" when it can.
func validTopicName(name string) string {
	if name == "" || name == "." || name == ".." {
		return "topic name is empty, '.' or '..'"
	}
	if len(name) > maxTopicNameLen {
		return fmt.Sprintf("topic name is %d bytes, the limit is %d", len(name), maxTopicNameLen)
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Sprintf("topic name has the illegal character %q", c)
		}
	}
	return ""
}

// topicConfigDefaults are the topic configs floodgate reports and honours.
var topicConfigNames = []string{
	"retention.ms", "retention.bytes", "max.message.bytes", "cleanup.policy",
	"message.timestamp.type", "segment.bytes", "min.insync.replicas", "compression.type",
}

// topicConfigDefault returns the default value of a topic config.
func (b *Broker) topicConfigDefault(name string) (string, bool) {
	switch name {
	case "retention.ms":
		return "604800000", true
	case "retention.bytes":
		return "-1", true
	case "max.message.bytes":
		return strconv.Itoa(int(b.cfg.MaxMessageBytes)), true
	case "cleanup.policy":
		return "delete", true
	case "message.timestamp.type":
		return "CreateTime", true
	case "segment.bytes":
		return strconv.FormatInt(b.cfg.SegmentBytes, 10), true
	case "min.insync.replicas":
		return "1", true
	case "compression.type":
		return "producer", true
	}
	return "", false
}

// checkTopicConfig checks a topic config a client sets: validateTopicConfig
// and the least segment.bytes (--min-segment-bytes: tiny segments cost a
// file, three at first, per batch).
func (b *Broker) checkTopicConfig(name, value string) error {
	if err := validateTopicConfig(name, value); err != nil {
		return err
	}
	if name == "segment.bytes" {
		if v, _ := strconv.ParseInt(value, 10, 64); v < b.cfg.MinSegmentBytes {
			b.tripped("min-segment-bytes", "topic config refused", "config", name, "value_set", v, "value", b.cfg.MinSegmentBytes)
			return fmt.Errorf("segment.bytes=%d is below --min-segment-bytes=%d", v, b.cfg.MinSegmentBytes)
		}
	}
	return nil
}

// validateTopicConfig checks one topic config value.
func validateTopicConfig(name, value string) error {
	switch name {
	case "retention.ms", "retention.bytes":
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil || v < -1 {
			return fmt.Errorf("%s=%q: want an integer >= -1", name, value)
		}
	case "max.message.bytes", "segment.bytes", "min.insync.replicas":
		v, err := strconv.ParseInt(value, 10, 32)
		if err != nil || v < 1 {
			return fmt.Errorf("%s=%q: want a positive integer", name, value)
		}
	case "cleanup.policy":
		if value != "delete" {
			return fmt.Errorf("cleanup.policy=%q: floodgate supports only delete", value)
		}
	case "message.timestamp.type":
		if value != "CreateTime" && value != "LogAppendTime" {
			return fmt.Errorf("message.timestamp.type=%q: want CreateTime or LogAppendTime", value)
		}
	case "compression.type":
		switch value {
		case "producer", "uncompressed", "gzip", "snappy", "lz4", "zstd":
		default:
			return fmt.Errorf("compression.type=%q: unknown codec", value)
		}
	default:
		return fmt.Errorf("%s: unknown topic config", name)
	}
	return nil
}

// topicConfig returns a topic's config value, or its default.
func (b *Broker) topicConfig(t *topic, name string) string {
	b.mu.RLock()
	v, ok := t.configs[name]
	b.mu.RUnlock()
	if ok {
		return v
	}
	v, _ = b.topicConfigDefault(name)
	return v
}

// topicConfigInt returns an integer topic config.
func (b *Broker) topicConfigInt(t *topic, name string) int64 {
	v, _ := strconv.ParseInt(b.topicConfig(t, name), 10, 64)
	return v
}

// lookupTopic returns the topic named name, if any.
func (b *Broker) lookupTopic(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

// topicSpec is one topic to create.
type topicSpec struct {
	name       string
	partitions int32
	configs    map[string]string
}

// creation is the outcome of creating one topicSpec: the topic (also when
// it existed), or an error code and message.
type creation struct {
	t    *topic
	code int16
	msg  string
}

// createTopic adds one topic (see createTopics).
func (b *Broker) createTopic(name string, partitions int32, configs map[string]string) (*topic, int16) {
	c := b.createTopics([]topicSpec{{name, partitions, configs}}, false)[0]
	return c.t, c.code
}

// createTopics adds topics. Limits are checked and names reserved under
// b.mu; the partitions' logs are opened outside it (thousands of
// partitions take seconds, during which other requests are served); then
// the topics are added and topics.json is written once for all of them,
// so a request costs one write however many topics it creates. auto is
// Metadata's auto-creation, to which a limit answers
// UNKNOWN_TOPIC_OR_PARTITION (retriable) instead of POLICY_VIOLATION.
func (b *Broker) createTopics(specs []topicSpec, auto bool) []creation {
	out := make([]creation, len(specs))
	pending := make([]bool, len(specs))
	b.mu.Lock()
	for i, sp := range specs {
		if t, ok := b.topics[sp.name]; ok {
			out[i] = creation{t: t, code: kafka.ErrTopicAlreadyExists, msg: fmt.Sprintf("topic %q already exists", sp.name)}
			continue
		}
		if b.creating[sp.name] {
			// Another request is creating it: Kafka answers a topic being
			// created with LEADER_NOT_AVAILABLE, which clients retry.
			out[i] = creation{code: kafka.ErrLeaderNotAvailable, msg: fmt.Sprintf("topic %q is being created", sp.name)}
			if !auto {
				out[i].code = kafka.ErrTopicAlreadyExists
			}
			continue
		}
		if code, msg := b.checkNewTopicLocked(sp.name, sp.partitions, auto); code != kafka.ErrNone {
			out[i] = creation{code: code, msg: msg}
			continue
		}
		b.creating[sp.name] = true
		b.reservedParts += int(sp.partitions)
		pending[i] = true
	}
	b.mu.Unlock()

	topics := make([]*topic, len(specs))
	defer func() {
		// A panic while opening (the request's recover keeps the process
		// up) must not leave the names "being created" forever.
		if p := recover(); p != nil {
			b.mu.Lock()
			for i, sp := range specs {
				if pending[i] && b.creating[sp.name] {
					delete(b.creating, sp.name)
					b.reservedParts -= int(sp.partitions)
				}
			}
			b.mu.Unlock()
			panic(p)
		}
	}()
	for i, sp := range specs {
		if pending[i] {
			topics[i] = b.newTopic(sp.name, newUUID(), sp.partitions, sp.configs)
		}
	}

	b.mu.Lock()
	n, parts := 0, 0
	for i, sp := range specs {
		if !pending[i] {
			continue
		}
		t := topics[i]
		delete(b.creating, sp.name)
		b.reservedParts -= int(sp.partitions)
		b.topics[sp.name], b.byID[t.id] = t, t
		b.partitions += int(sp.partitions)
		out[i] = creation{t: t, code: kafka.ErrNone}
		n, parts = n+1, parts+int(sp.partitions)
	}
	if n > 0 {
		b.saveTopicsLocked()
		b.metrics.topics.Set(float64(len(b.topics)))
		b.metrics.partitions.Set(float64(b.partitions))
	}
	b.mu.Unlock()
	switch {
	case n == 1:
		for i, sp := range specs {
			if pending[i] {
				b.log.Info("topic created", "topic", sp.name, "partitions", sp.partitions, "auto", auto)
			}
		}
	case n > 1:
		b.log.Info("topics created", "topics", n, "partitions", parts, "auto", auto)
	}
	return out
}

// checkNewTopicLocked checks one new topic of n partitions against the
// topic and partition limits, counting the topics being created. The
// caller holds b.mu.
func (b *Broker) checkNewTopicLocked(name string, n int32, auto bool) (int16, string) {
	policy := errPolicyViolation
	if auto {
		policy = kafka.ErrUnknownTopicOrPartition
	}
	switch {
	case n > b.cfg.MaxPartitionsPerTopic:
		msg := fmt.Sprintf("topic %q: %d partitions is above --max-partitions-per-topic=%d", name, n, b.cfg.MaxPartitionsPerTopic)
		b.tripped("max-partitions-per-topic", "topic refused", "topic", name, "partitions", n, "value", b.cfg.MaxPartitionsPerTopic)
		if auto {
			return policy, msg
		}
		return kafka.ErrInvalidPartitions, msg
	case len(b.topics)+len(b.creating) >= b.cfg.MaxTopics:
		b.tripped("max-topics", "topic refused: the broker holds the most topics it may", "topic", name, "auto", auto, "value", b.cfg.MaxTopics)
		return policy, fmt.Sprintf("topic %q: the broker holds %d topics, --max-topics=%d", name, len(b.topics)+len(b.creating), b.cfg.MaxTopics)
	case b.partitions+b.reservedParts+int(n) > b.cfg.MaxPartitions:
		b.tripped("max-partitions", "topic refused: its partitions would pass the broker's limit", "topic", name, "partitions", n, "auto", auto, "value", b.cfg.MaxPartitions)
		return policy, fmt.Sprintf("topic %q: %d more partitions would pass --max-partitions=%d (the broker holds %d)", name, n, b.cfg.MaxPartitions, b.partitions+b.reservedParts)
	}
	return kafka.ErrNone, ""
}

// deleteTopic removes one topic (see deleteTopics).
func (b *Broker) deleteTopic(t *topic) { b.deleteTopics([]*topic{t}) }

// deleteTopics removes topics (and their files), writing topics.json once,
// and wakes their waiting fetches.
func (b *Broker) deleteTopics(ts []*topic) {
	if len(ts) == 0 {
		return
	}
	b.mu.Lock()
	for _, t := range ts {
		if b.topics[t.name] != t {
			continue
		}
		delete(b.topics, t.name)
		delete(b.byID, t.id)
		b.partitions -= len(t.partitionList())
	}
	b.metrics.topics.Set(float64(len(b.topics)))
	b.metrics.partitions.Set(float64(b.partitions))
	b.saveTopicsLocked()
	b.mu.Unlock()
	for _, t := range ts {
		for _, p := range t.partitionList() {
			p.mu.Lock()
			b.states.forget(p)
			if err := p.log.remove(); err != nil {
				b.log.Warn("removing a deleted partition's files", "topic", t.name, "partition", p.index, "err", err)
			}
			p.wakeLocked()
			p.mu.Unlock()
		}
		b.log.Info("topic deleted", "topic", t.name)
	}
}

// partitionOf returns the partition, or nil.
func (t *topic) partitionOf(i int32) *partition {
	if t == nil {
		return nil
	}
	parts := t.partitionList()
	if i < 0 || int(i) >= len(parts) {
		return nil
	}
	return parts[i]
}

// sortedTopics returns every topic, in name order.
func (b *Broker) allTopics() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	return out
}

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

// topicForProduce returns the topic, auto-creating it when allowed.
func (b *Broker) topicOrCreate(name string, allowCreate bool) (*topic, int16) {
	if t := b.lookupTopic(name); t != nil {
		return t, kafka.ErrNone
	}
	if !allowCreate || !b.cfg.AutoCreateTopics {
		return nil, kafka.ErrUnknownTopicOrPartition
	}
	if why := validTopicName(name); why != "" {
		return nil, kafka.ErrInvalidTopic
	}
	t, code := b.createTopic(name, b.cfg.DefaultPartitions, nil)
	if code == kafka.ErrTopicAlreadyExists {
		return b.lookupTopic(name), kafka.ErrNone
	}
	return t, code
}

// createTopic adds a topic.
func (b *Broker) createTopic(name string, partitions int32, configs map[string]string) (*topic, int16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.topics[name]; ok {
		return t, kafka.ErrTopicAlreadyExists
	}
	t := b.newTopic(name, newUUID(), partitions, configs)
	b.topics[name] = t
	b.byID[t.id] = t
	b.saveTopicsLocked()
	b.metrics.topics.Set(float64(len(b.topics)))
	b.log.Info("topic created", "topic", name, "partitions", partitions)
	return t, kafka.ErrNone
}

// deleteTopic removes a topic (and its files) and wakes its waiting fetches.
func (b *Broker) deleteTopic(t *topic) {
	b.mu.Lock()
	delete(b.topics, t.name)
	delete(b.byID, t.id)
	b.metrics.topics.Set(float64(len(b.topics)))
	b.saveTopicsLocked()
	b.mu.Unlock()
	for _, p := range t.partitionList() {
		p.mu.Lock()
		if err := p.log.remove(); err != nil {
			b.log.Warn("removing a deleted partition's files", "topic", t.name, "partition", p.index, "err", err)
		}
		p.wakeLocked()
		p.mu.Unlock()
	}
	b.log.Info("topic deleted", "topic", t.name)
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

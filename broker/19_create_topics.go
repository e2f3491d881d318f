package broker

// CreateTopics: versions 0-7. Replication factor must be -1 or 1 (one
// broker); partitions -1 means --default-partitions. Configs are validated
// against the topic configs floodgate honours. validate_only (v1+) checks
// without creating. All the topics of a request are created together with
// one write of topics.json. Limits: --max-partitions-per-topic answers
// INVALID_PARTITIONS, --max-topics and --max-partitions POLICY_VIOLATION,
// a segment.bytes below --min-segment-bytes INVALID_CONFIG, each with a
// message naming the flag.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 7, (*Broker).handleCreateTopics) }

func (b *Broker) handleCreateTopics(req *kmsg.CreateTopicsRequest, resp *kmsg.CreateTopicsResponse, _ *Client, respond Responder) {
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, len(req.Topics))
	// Checked one by one, then created together: one write of topics.json
	// for the request.
	var specs []topicSpec
	var at []int
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		st.Default()
		st.Topic = rt.Topic
		spec, code, msg := b.checkCreateTopic(rt)
		if code == kafka.ErrNone && req.ValidateOnly {
			code, msg = b.checkNewTopic(spec)
		}
		if code != kafka.ErrNone {
			st.ErrorCode, st.ErrorMessage = code, kmsg.StringPtr(msg)
			continue
		}
		if req.ValidateOnly {
			b.describeCreated(st, spec)
			continue
		}
		specs = append(specs, spec)
		at = append(at, i)
	}
	for k, c := range b.createTopics(specs, false) {
		st := &resp.Topics[at[k]]
		if c.code != kafka.ErrNone {
			st.ErrorCode, st.ErrorMessage = c.code, kmsg.StringPtr(c.msg)
			continue
		}
		st.TopicID = c.t.id
		b.describeCreated(st, specs[k])
	}
	respond(resp)
}

// checkCreateTopic checks one topic of a CreateTopics request.
func (b *Broker) checkCreateTopic(rt kmsg.CreateTopicsRequestTopic) (topicSpec, int16, string) {
	if why := validTopicName(rt.Topic); why != "" {
		return topicSpec{}, kafka.ErrInvalidTopic, why
	}
	n := rt.NumPartitions
	if n == -1 {
		n = b.cfg.DefaultPartitions
	}
	if len(rt.ReplicaAssignment) > 0 {
		n = int32(min(len(rt.ReplicaAssignment), int(b.cfg.MaxPartitionsPerTopic)+1))
	}
	if n <= 0 || n > b.cfg.MaxPartitionsPerTopic {
		if n > 0 {
			b.tripped("max-partitions-per-topic", "CreateTopics refused", "topic", rt.Topic, "partitions", n, "value", b.cfg.MaxPartitionsPerTopic)
		}
		return topicSpec{}, kafka.ErrInvalidPartitions, fmt.Sprintf("partition count %d: want 1 to --max-partitions-per-topic=%d", n, b.cfg.MaxPartitionsPerTopic)
	}
	if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
		return topicSpec{}, kafka.ErrInvalidReplicationFactor, "floodgate has one broker: replication factor must be 1 or -1"
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue
		}
		if err := b.checkTopicConfig(c.Name, *c.Value); err != nil {
			return topicSpec{}, kafka.ErrInvalidConfig, err.Error()
		}
		configs[c.Name] = *c.Value
	}
	return topicSpec{name: rt.Topic, partitions: n, configs: configs}, kafka.ErrNone, ""
}

// checkNewTopic answers validate_only: would the topic be created?
func (b *Broker) checkNewTopic(spec topicSpec) (int16, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.topics[spec.name] != nil || b.creating[spec.name] {
		return kafka.ErrTopicAlreadyExists, "topic exists"
	}
	return b.checkNewTopicLocked(spec.name, spec.partitions, false)
}

// describeCreated fills the answer of a created (or validated) topic.
func (b *Broker) describeCreated(st *kmsg.CreateTopicsResponseTopic, spec topicSpec) {
	st.NumPartitions = spec.partitions
	st.ReplicationFactor = 1
	for _, name := range topicConfigNames {
		v, ok := spec.configs[name]
		src := int8(1) // DYNAMIC_TOPIC_CONFIG
		if !ok {
			v, _ = b.topicConfigDefault(name)
			src = 5 // DEFAULT_CONFIG
		}
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value, c.Source = name, kmsg.StringPtr(v), src
		st.Configs = append(st.Configs, c)
	}
}

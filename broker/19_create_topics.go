package broker

// CreateTopics: versions 0-7. Replication factor must be -1 or 1 (one
// broker); partitions -1 means --default-partitions. Configs are validated
// against the topic configs floodgate honours. validate_only (v1+) checks
// without creating.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// maxPartitionsPerTopic bounds one CreateTopics/CreatePartitions request.
const maxPartitionsPerTopic = 10000

func (b *Broker) handleCreateTopics(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	resp.SetVersion(req.Version)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = kmsg.StringPtr(msg)
			resp.Topics = append(resp.Topics, st)
		}
		if why := validTopicName(rt.Topic); why != "" {
			fail(kafka.ErrInvalidTopic, why)
			continue
		}
		n := rt.NumPartitions
		if n == -1 {
			n = b.cfg.DefaultPartitions
		}
		if len(rt.ReplicaAssignment) > 0 {
			n = int32(len(rt.ReplicaAssignment))
		}
		if n <= 0 || n > maxPartitionsPerTopic {
			fail(kafka.ErrInvalidPartitions, "partition count must be between 1 and 10000")
			continue
		}
		if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
			fail(kafka.ErrInvalidReplicationFactor, "floodgate has one broker: replication factor must be 1 or -1")
			continue
		}
		configs := map[string]string{}
		var cfgErr error
		for _, c := range rt.Configs {
			if c.Value == nil {
				continue
			}
			if cfgErr = validateTopicConfig(c.Name, *c.Value); cfgErr != nil {
				break
			}
			configs[c.Name] = *c.Value
		}
		if cfgErr != nil {
			fail(kafka.ErrInvalidConfig, cfgErr.Error())
			continue
		}
		if req.ValidateOnly {
			if b.lookupTopic(rt.Topic) != nil {
				fail(kafka.ErrTopicAlreadyExists, "topic exists")
				continue
			}
		} else {
			t, code := b.createTopic(rt.Topic, n, configs)
			if code != kafka.ErrNone {
				fail(code, "topic exists")
				continue
			}
			st.TopicID = t.id
		}
		st.NumPartitions = n
		st.ReplicationFactor = 1
		for _, name := range topicConfigNames {
			v, ok := configs[name]
			src := int8(1) // DYNAMIC_TOPIC_CONFIG
			if !ok {
				v, _ = b.topicConfigDefault(name)
				src = 5 // DEFAULT_CONFIG
			}
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			c.Name, c.Value, c.Source = name, kmsg.StringPtr(v), src
			st.Configs = append(st.Configs, c)
		}
		resp.Topics = append(resp.Topics, st)
	}
	respond(resp)
}

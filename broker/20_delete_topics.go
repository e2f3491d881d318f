package broker

// DeleteTopics: versions 0-6; topics by name, or from v6 by id. Fetches
// waiting on a deleted topic are woken and answer UNKNOWN_TOPIC_OR_PARTITION.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 6, (*Broker).handleDeleteTopics) }

func (b *Broker) handleDeleteTopics(req *kmsg.DeleteTopicsRequest, resp *kmsg.DeleteTopicsResponse, _ *Client, respond Responder) {
	// Topics are removed together after the loop: one write of topics.json.
	var gone []*topic
	del := func(name *string, id [16]byte) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = name, id
		var t *topic
		b.mu.RLock()
		if name != nil {
			t = b.topics[*name]
		} else {
			t = b.byID[id]
		}
		b.mu.RUnlock()
		if t == nil {
			st.ErrorCode = kafka.ErrUnknownTopicOrPartition
		} else {
			st.Topic, st.TopicID = kmsg.StringPtr(t.name), t.id
			gone = append(gone, t)
		}
		resp.Topics = append(resp.Topics, st)
	}
	for _, n := range req.TopicNames {
		del(kmsg.StringPtr(n), [16]byte{})
	}
	for _, t := range req.Topics {
		del(t.Topic, t.TopicID)
	}
	b.deleteTopics(gone)
	respond(resp)
}

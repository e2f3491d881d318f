package broker

// OffsetDelete: version 0. Deletes committed offsets of a group. An Empty
// group may lose any offset; a group with members only offsets of topics
// none of its members subscribes to (GROUP_SUBSCRIBED_TO_TOPIC per
// partition), which needs the "consumer" protocol to know subscriptions:
// other protocol types with members get NON_EMPTY_GROUP.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 0, (*Broker).handleOffsetDelete) }

func (b *Broker) handleOffsetDelete(req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse, _ *Client, respond Responder) {
	if req.Group == "" {
		resp.ErrorCode = kafka.ErrInvalidGroupID
		respond(resp)
		return
	}
	gs := b.groups
	gs.do(func(*outbox) {
		g := gs.all[req.Group]
		if g == nil {
			resp.ErrorCode = kafka.ErrGroupIDNotFound
			return
		}
		var subscribed map[string]bool
		if len(g.members) > 0 {
			var ok bool
			if subscribed, ok = g.subscribedTopics(); !ok {
				resp.ErrorCode = kafka.ErrNonEmptyGroup
				return
			}
		}
		b.offsetBatch(func() { b.deleteOffsets(req, g, subscribed, resp) })
		g.forgetIfUnused()
	})
	respond(resp)
}

// deleteOffsets deletes the offsets req names from g and fills resp. The
// caller holds gs.mu.
func (b *Broker) deleteOffsets(req *kmsg.OffsetDeleteRequest, g *group, subscribed map[string]bool, resp *kmsg.OffsetDeleteResponse) {
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case t.partitionOf(rp.Partition) == nil:
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
			case subscribed[rt.Topic]:
				sp.ErrorCode = kafka.ErrGroupSubscribedToTopic
			default:
				if g.deleteOffset(rt.Topic, rp.Partition) {
					b.persistOffset(g.name, rt.Topic, rp.Partition, nil)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}

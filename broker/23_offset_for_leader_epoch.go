package broker

// OffsetForLeaderEpoch: versions 0-4. Every partition has had one leader
// epoch, 0, forever: asking for epoch >= 0 answers epoch 0 ending at the
// high watermark; asking for a negative epoch answers UNDEFINED (-1, -1). A
// current leader epoch (v2+) above 0 is UNKNOWN_LEADER_EPOCH, below -1
// FENCED_LEADER_EPOCH. The replica id (v3+) is not checked.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 4, (*Broker).handleOffsetForLeaderEpoch) }

func (b *Broker) handleOffsetForLeaderEpoch(req *kmsg.OffsetForLeaderEpochRequest, resp *kmsg.OffsetForLeaderEpochResponse, _ *Client, respond Responder) {
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			p := t.partitionOf(rp.Partition)
			switch {
			case p == nil:
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
			case req.Version >= 2 && rp.CurrentLeaderEpoch > 0:
				sp.ErrorCode = kafka.ErrUnknownLeaderEpoch
			case req.Version >= 2 && rp.CurrentLeaderEpoch < -1:
				sp.ErrorCode = kafka.ErrFencedLeaderEpoch
			case rp.LeaderEpoch >= 0:
				p.mu.Lock()
				sp.LeaderEpoch, sp.EndOffset = 0, p.next
				p.mu.Unlock()
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	respond(resp)
}

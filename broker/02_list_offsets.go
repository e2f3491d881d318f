package broker

// ListOffsets: versions 0-8. Timestamp -2 is the log start, -1 the high
// watermark, -3 (v7+) the batch with the largest timestamp; any other
// timestamp finds the first batch whose max timestamp is at or after it and
// answers that batch's base offset (batch granularity: records inside a batch
// are not decompressed). v0's max_num_offsets is treated as 1.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func (b *Broker) handleListOffsets(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	resp.SetVersion(req.Version)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			p := t.partitionOf(rp.Partition)
			if p == nil {
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
				sp.Offset, sp.Timestamp = -1, -1
			} else {
				sp.Offset, sp.Timestamp = p.offsetFor(rp.Timestamp)
				sp.LeaderEpoch = 0
				if req.Version == 0 {
					sp.OldStyleOffsets = []int64{sp.Offset}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	respond(resp)
}

// offsetFor answers one ListOffsets lookup.
func (p *partition) offsetFor(ts int64) (offset, timestamp int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ts {
	case -2:
		return p.logStart, -1
	case -1:
		return p.next, -1
	case -3:
		best, bestTS := int64(-1), int64(-1)
		for _, sb := range p.batches {
			if sb.maxTimestamp > bestTS {
				best, bestTS = sb.last, sb.maxTimestamp
			}
		}
		return best, bestTS
	}
	for _, sb := range p.batches {
		if sb.maxTimestamp >= ts {
			return sb.base, sb.maxTimestamp
		}
	}
	return p.next, -1
}

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

func init() { register(0, 8, (*Broker).handleListOffsets) }

func (b *Broker) handleListOffsets(req *kmsg.ListOffsetsRequest, resp *kmsg.ListOffsetsResponse, _ *Client, respond Responder) {
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
				sp.Offset, sp.Timestamp, sp.ErrorCode = p.offsetFor(rp.Timestamp)
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

// offsetFor answers one ListOffsets lookup; a log that cannot be read
// answers KAFKA_STORAGE_ERROR.
func (p *partition) offsetFor(ts int64) (offset, timestamp int64, code int16) {
	p.mu.Lock()
	start, next, lg := p.logStart, p.next, p.log
	p.mu.Unlock()
	var ok bool
	err := offline(lg)
	switch {
	case err != nil:
	case ts == -2:
		return start, -1, kafka.ErrNone
	case ts == -1:
		return next, -1, kafka.ErrNone
	case ts == -3:
		offset, timestamp, ok, err = lg.maxTimestamp()
	default:
		offset, timestamp, ok, err = lg.offsetForTime(ts)
		offset = max(offset, start)
	}
	switch {
	case err != nil:
		p.topic.storageError("list offsets", p.index, err)
		return -1, -1, kafka.ErrKafkaStorageError
	case !ok && ts == -3:
		return -1, -1, kafka.ErrNone
	case !ok:
		return next, -1, kafka.ErrNone
	}
	return offset, timestamp, kafka.ErrNone
}

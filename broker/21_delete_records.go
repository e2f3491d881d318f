package broker

// DeleteRecords: versions 0-2. Moves a partition's log start offset to the
// requested offset (-1 means the high watermark), dropping the whole batches
// below it (with a data dir: the whole segments below it; the new start is
// kept in the partition's start-offset file); a batch straddling the new
// start stays, but offsets below the log start can no longer be fetched. Offsets above the high watermark get
// OFFSET_OUT_OF_RANGE. The timeout is not used: deletion is immediate.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 2, (*Broker).handleDeleteRecords) }

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest, resp *kmsg.DeleteRecordsResponse, _ *Client, respond Responder) {
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			p := t.partitionOf(rp.Partition)
			if p == nil {
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p.mu.Lock()
			off := rp.Offset
			if off == -1 {
				off = p.next
			}
			if off < 0 || off > p.next {
				sp.ErrorCode = kafka.ErrOffsetOutOfRange
			} else if err := p.truncateBefore(off); err != nil {
				p.topic.storageError("delete records", p.index, err)
				sp.ErrorCode = kafka.ErrKafkaStorageError
			}
			sp.LowWatermark = p.logStart
			p.mu.Unlock()
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	respond(resp)
}

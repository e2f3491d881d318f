package broker

// Produce: versions 0-12 are advertised (old librdkafka keeps compression on
// only when v0 is); batches must be record batch v2, so v0-v2 message sets
// get UNSUPPORTED_FOR_MESSAGE_FORMAT per partition. Each batch's CRC is
// checked (CORRUPT_MESSAGE), offsets are assigned, LogAppendTime topics get
// the append time. Idempotent producers are checked by sequence: a
// duplicate of one of the last five batches is answered with its original
// offset and not appended again; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER.
// acks=0 gets no response. Writes are immediate (in memory): the timeout is
// not used. Transactions are not supported.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func (b *Broker) handleProduce(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.SetVersion(req.Version)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		var maxMsg int64
		if t != nil {
			maxMsg = b.topicConfigInt(t, "max.message.bytes")
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			p := t.partitionOf(rp.Partition)
			switch {
			case p == nil:
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
			case int64(len(rp.Records)) > maxMsg:
				sp.ErrorCode = kafka.ErrMessageTooLarge
			default:
				b.appendRecords(p, rp.Records, &sp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		respond(nil)
		return
	}
	respond(resp)
}

// appendRecords validates and appends the batches of one partition.
func (b *Broker) appendRecords(p *partition, records []byte, sp *kmsg.ProduceResponseTopicPartition) {
	hdrs, err := splitBatches(records)
	if err != nil {
		sp.ErrorCode = kafka.ErrCorruptMessage
		if errors.Is(err, errUnsupportedFormat) {
			sp.ErrorCode = kafka.ErrUnsupportedForMessageFmt
		}
		return
	}
	logAppend := b.topicConfig(p.topic, "message.timestamp.type") == "LogAppendTime"
	now := b.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Check every batch before appending any, so a request is all or nothing.
	first := int64(-1)
	off := 0
	for _, h := range hdrs {
		raw := records[off : off+h.length]
		off += h.length
		if h.attributes&attrTransactional != 0 {
			sp.ErrorCode = kafka.ErrInvalidTxnState
			return
		}
		if dup, base, code := p.checkSequence(&h); code != kafka.ErrNone {
			sp.ErrorCode = code
			return
		} else if dup {
			b.metrics.duplicates.Inc()
			if first < 0 {
				first = base
			}
			continue
		}
		stored := make([]byte, len(raw))
		copy(stored, raw)
		base := p.next
		appendMillis := int64(-1)
		if logAppend {
			appendMillis = now.UnixMilli()
			sp.LogAppendTime = appendMillis
		}
		stampBatch(stored, base, 0, appendMillis)
		maxTS := h.maxTimestamp
		if logAppend {
			maxTS = appendMillis
		}
		last := base + int64(h.lastOffsetDelta)
		p.appendLocked(storedBatch{base: base, last: last, maxTimestamp: maxTS, appended: now, raw: stored})
		p.recordSequence(&h, base, last)
		b.metrics.batchesIn.Inc()
		b.metrics.recordsIn.Add(int(h.recordCount))
		if first < 0 {
			first = base
		}
	}
	sp.BaseOffset = first
	sp.LogStartOffset = p.logStart
	p.wakeLocked()
}

package broker

// Produce: versions 0-12 are advertised (old librdkafka keeps compression on
// only when v0 is); batches must be record batch v2, so v0-v2 message sets
// get UNSUPPORTED_FOR_MESSAGE_FORMAT per partition. Each batch's CRC is
// checked (CORRUPT_MESSAGE), offsets are assigned, LogAppendTime topics get
// the append time. Idempotent producers are checked by sequence: a
// duplicate of one of the last five batches is answered with its original
// offset and not appended again; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER.
// acks=0 gets no response. The timeout is not used. Transactions are not
// supported. With a data dir a batch is written (write(2)) before the
// answer; with --fsync=always an acks=1/-1 answer waits for the syncer's
// next fsync round (group commit: one fsync covers every producer that
// waits), from the syncer goroutine, never blocking a worker. A write or
// fsync error answers KAFKA_STORAGE_ERROR for the partition.

import (
	"errors"

	"github.com/floodgate/floodgate/storage"

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
	// A duplicate may answer for a batch still waiting for its fsync, so
	// every answer waits for a round in always mode.
	if b.store == nil || b.store.syncer.Mode() != storage.FsyncAlways {
		respond(resp)
		return
	}
	b.store.syncer.Wait(func(err error) {
		if err != nil {
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if sp := &resp.Topics[i].Partitions[j]; sp.ErrorCode == kafka.ErrNone {
						sp.ErrorCode = kafka.ErrKafkaStorageError
					}
				}
			}
		}
		respond(resp)
	})
}

// appendRecords validates and appends the batches of one partition and
// reports whether it wrote any.
func (b *Broker) appendRecords(p *partition, records []byte, sp *kmsg.ProduceResponseTopicPartition) (wrote bool) {
	hdrs, err := splitBatches(records)
	if err != nil {
		sp.ErrorCode = kafka.ErrCorruptMessage
		if errors.Is(err, errUnsupportedFormat) {
			sp.ErrorCode = kafka.ErrUnsupportedForMessageFmt
		}
		return false
	}
	logAppend := b.topicConfig(p.topic, "message.timestamp.type") == "LogAppendTime"
	segmentBytes := b.topicConfigInt(p.topic, "segment.bytes")
	now := b.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		if wrote {
			p.wakeLocked()
		}
	}()
	// Check every batch before appending any, so a request is all or nothing.
	first := int64(-1)
	off := 0
	for _, h := range hdrs {
		raw := records[off : off+h.length]
		off += h.length
		if h.attributes&attrTransactional != 0 {
			sp.ErrorCode = kafka.ErrInvalidTxnState
			return wrote
		}
		if dup, base, code := p.checkSequence(&h); code != kafka.ErrNone {
			sp.ErrorCode = code
			return wrote
		} else if dup {
			b.metrics.duplicates.Inc()
			if first < 0 {
				first = base
			}
			continue
		}
		stored := raw // a disk log writes it before the request is released
		if p.topic.store == nil {
			stored = make([]byte, len(raw))
			copy(stored, raw)
		}
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
		if err := p.appendLocked(storedBatch{base: base, last: last, maxTimestamp: maxTS, appended: now, raw: stored}, segmentBytes); err != nil {
			b.log.Error("append failed: answering KAFKA_STORAGE_ERROR", "topic", p.topic.name, "partition", p.index, "err", err)
			sp.ErrorCode = kafka.ErrKafkaStorageError
			return wrote
		}
		wrote = true
		p.recordSequence(&h, base, last)
		b.metrics.batchesIn.Inc()
		b.metrics.recordsIn.Add(int(h.recordCount))
		if first < 0 {
			first = base
		}
	}
	sp.BaseOffset = first
	sp.LogStartOffset = p.logStart
	return wrote
}

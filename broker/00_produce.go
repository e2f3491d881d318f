package broker

// Produce: versions 0-12 are advertised (old librdkafka keeps compression on
// only when v0 is); batches must be record batch v2, so v0-v2 message sets
// get UNSUPPORTED_FOR_MESSAGE_FORMAT per partition. Each batch is
// validated as Kafka's LogValidator does (validate.go: CRC, record count vs
// lastOffsetDelta, every record's offset delta and length, timestamps
// within message.timestamp.{before,after}.max.ms, compressed batches
// inflated within a bound); offsets are assigned by the broker, whatever
// the client wrote, and LogAppendTime topics get the append time. Idempotent producers are checked by sequence: a
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
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/storage"
)

func init() { register(0, 12, (*Broker).handleProduce) }

func (b *Broker) handleProduce(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, _ *Client, respond Responder) {
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
				b.appendRecords(p, req.Version, rp.Records, maxMsg, &sp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	b.states.sweep()
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
func (b *Broker) appendRecords(p *partition, version int16, records []byte, maxMsg int64, sp *kmsg.ProduceResponseTopicPartition) (wrote bool) {
	hdrs, err := splitBatches(records)
	if err != nil {
		reason := invalidCorrupt
		switch {
		case errors.Is(err, recordbatch.ErrMagic):
			reason = invalidFormat
		case errors.Is(err, errInvalidRecord):
			reason = invalidRecord
		}
		b.refuseBatch(p, version, reason, err, sp)
		return false
	}
	logAppend := b.topicConfig(p.topic, "message.timestamp.type") == "LogAppendTime"
	segmentBytes := b.topicConfigInt(p.topic, "segment.bytes")
	now := b.now()
	// Every batch's own content (validateBatch) is checked before any is
	// appended, outside the partition's lock, so that inflating a
	// compressed batch never holds up the partition's other producers: a
	// malformed batch refuses the partition's whole set. The checks that
	// depend on the partition's state (transactions, producer sequences)
	// and the append itself run batch by batch under the lock below: a
	// failure there keeps the batches before it appended and answers the
	// partition with its error alone. (Clients send one batch per
	// partition per request, so this is rarely more than one batch.)
	check := batchCheck{
		createTime: !logAppend,
		now:        now.UnixMilli(),
		bounds:     timestampBoundsOf(b.cfg.TimestampBeforeMax, b.cfg.TimestampAfterMax),
		maxInflate: max(minInflateBound, inflateRatio*maxMsg),
	}
	off := 0
	for i := range hdrs {
		h := &hdrs[i]
		// The header's max timestamp becomes the records' own, as Kafka
		// stores it (no slice per request for it).
		if h.MaxTimestamp, err = b.inflaters.validateBatch(records[off:off+h.Size], h, &check); err != nil {
			reason := invalidRecord
			switch {
			case errors.Is(err, errInvalidTimestamp):
				reason = invalidTimestamp
			case errors.Is(err, errInflatedTooLarge):
				reason = invalidInflate
			}
			b.refuseBatch(p, version, reason, err, sp)
			return false
		}
		off += h.Size
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		if wrote {
			p.wakeLocked()
		}
	}()
	first := int64(-1)
	off = 0
	for i, h := range hdrs {
		raw := records[off : off+h.Size]
		off += h.Size
		if h.Attributes&recordbatch.AttrTransactional != 0 {
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
		// The broker assigns offsets: the client's base offset is
		// overwritten, and the batch spans exactly its record count
		// (validated above).
		base := p.next
		appendMillis := int64(-1)
		maxTS := hdrs[i].MaxTimestamp
		if logAppend {
			appendMillis = now.UnixMilli()
			sp.LogAppendTime = appendMillis
			maxTS = appendMillis
		}
		stampBatch(stored, base, 0, appendMillis, maxTS)
		last := base + int64(h.LastOffsetDelta)
		if err := p.appendLocked(storedBatch{base: base, last: last, maxTimestamp: maxTS, appended: now, raw: stored}, segmentBytes); err != nil {
			b.log.Error("append failed: answering KAFKA_STORAGE_ERROR", "topic", p.topic.name, "partition", p.index, "err", err)
			sp.ErrorCode = kafka.ErrKafkaStorageError
			return wrote
		}
		wrote = true
		p.recordSequence(&h, base, last)
		b.metrics.batchesIn.Inc()
		b.metrics.recordsIn.Add(int(h.RecordCount))
		if first < 0 {
			first = base
		}
	}
	sp.BaseOffset = first
	sp.LogStartOffset = p.logStart
	return wrote
}

// refuseBatch answers a partition whose batches failed validation, as
// Kafka's LogValidator does: INVALID_RECORD (87) with its message from
// Produce v8 (KIP-467), CORRUPT_MESSAGE (2) before; INVALID_TIMESTAMP (32);
// MESSAGE_TOO_LARGE (10) for a batch that inflates beyond the bound;
// UNSUPPORTED_FOR_MESSAGE_FORMAT (43) for message sets older than v2.
func (b *Broker) refuseBatch(p *partition, version int16, reason invalidReason, err error, sp *kmsg.ProduceResponseTopicPartition) {
	switch reason {
	case invalidCorrupt:
		sp.ErrorCode = kafka.ErrCorruptMessage
	case invalidFormat:
		sp.ErrorCode = kafka.ErrUnsupportedForMessageFmt
	case invalidTimestamp:
		sp.ErrorCode = kafka.ErrInvalidTimestamp
	case invalidInflate:
		sp.ErrorCode = kafka.ErrMessageTooLarge
	default:
		sp.ErrorCode = kafka.ErrCorruptMessage
		if version >= 8 {
			sp.ErrorCode = kafka.ErrInvalidRecord
		}
	}
	if version >= 8 {
		msg := err.Error()
		sp.ErrorMessage = &msg
	}
	if b.metrics.invalid.count(reason, time.Now()) {
		b.log.Warn("produced batch refused (logged at most every 10s per reason)", "reason", invalidReasonNames[reason],
			"topic", p.topic.name, "partition", p.index, "error_code", sp.ErrorCode, "err", err)
	}
}

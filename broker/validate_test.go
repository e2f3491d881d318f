package broker

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
)

// fixCRC recomputes a batch's CRC after a test changed it.
func fixCRC(raw []byte) []byte {
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// compressBatch rewrites an uncompressed batch's records with codec.
func compressBatch(t *testing.T, raw []byte, codec int16, inflate []byte) []byte {
	t.Helper()
	recs := raw[recordbatch.HeaderSize:]
	if inflate != nil {
		recs = inflate
	}
	var buf bytes.Buffer
	switch codec {
	case 1:
		w := gzip.NewWriter(&buf)
		w.Write(recs)
		w.Close()
	case 2:
		buf.Write(s2.EncodeSnappy(nil, recs))
	case 3:
		w := lz4.NewWriter(&buf)
		w.Write(recs)
		w.Close()
	case 4:
		w, _ := zstd.NewWriter(&buf)
		w.Write(recs)
		w.Close()
	}
	out := append([]byte(nil), raw[:recordbatch.HeaderSize]...)
	out = append(out, buf.Bytes()...)
	binary.BigEndian.PutUint32(out[recordbatch.OffLength:], uint32(len(out)-12))
	attrs := binary.BigEndian.Uint16(out[recordbatch.OffAttributes:])
	binary.BigEndian.PutUint16(out[recordbatch.OffAttributes:], attrs|uint16(codec))
	return fixCRC(out)
}

// produceVersion sends records to topic t partition 0 at version v and returns
// the partition's answer.
func produceVersion(t *testing.T, b *Broker, v int16, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = v, -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return call[*kmsg.ProduceResponse](t, b, req).Topics[0].Partitions[0]
}

func TestProduceValidatesBatchesAsKafka(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixMilli()
	// records builds the uncompressed records of a batch by hand.
	type rec struct {
		tsDelta, offDelta int64
		value             string
		trailing          int // bytes inside the record after its fields
	}
	records := func(rs ...rec) []byte {
		var out []byte
		for _, x := range rs {
			var r []byte
			r = append(r, 0)
			r = binary.AppendVarint(r, x.tsDelta)
			r = binary.AppendVarint(r, x.offDelta)
			r = binary.AppendVarint(r, -1)
			r = binary.AppendVarint(r, int64(len(x.value)))
			r = append(r, x.value...)
			r = binary.AppendVarint(r, 0)
			r = append(r, make([]byte, x.trailing)...)
			out = binary.AppendVarint(out, int64(len(r)))
			out = append(out, r...)
		}
		return out
	}
	withRecords := func(count int32, lastDelta int32, recs []byte) []byte {
		raw := append([]byte(nil), testBatch(1, now, "v")[:recordbatch.HeaderSize]...)
		raw = append(raw, recs...)
		binary.BigEndian.PutUint32(raw[recordbatch.OffLength:], uint32(len(raw)-12))
		binary.BigEndian.PutUint32(raw[recordbatch.OffRecordCount:], uint32(count))
		binary.BigEndian.PutUint32(raw[recordbatch.OffLastOffsetDelta:], uint32(lastDelta))
		return fixCRC(raw)
	}
	header := func(raw []byte, fn func([]byte)) []byte {
		raw = append([]byte(nil), raw...)
		fn(raw)
		return fixCRC(raw)
	}
	// One well-formed record of 17 MiB of zeroes: it inflates past the
	// 16 MiB bound, and snappy compresses it to 0.8 MiB (under max.message.bytes).
	bomb := testBatch(1, now, string(make([]byte, 17<<20)))[recordbatch.HeaderSize:]
	cases := []struct {
		name    string
		version int16
		batch   func(t *testing.T) []byte
		want    int16
		next    int64 // log end after the produce
	}{
		{"a valid batch is appended", 9, func(*testing.T) []byte { return testBatch(3, now, "v") }, kafka.ErrNone, 3},
		{"one record claiming lastOffsetDelta 2^31-1 is INVALID_RECORD", 9, func(*testing.T) []byte {
			return header(testBatch(1, now, "v"), func(b []byte) { binary.BigEndian.PutUint32(b[recordbatch.OffLastOffsetDelta:], math.MaxInt32) })
		}, kafka.ErrInvalidRecord, 0},
		{"before Produce v8 the same batch is CORRUPT_MESSAGE", 7, func(*testing.T) []byte {
			return header(testBatch(1, now, "v"), func(b []byte) { binary.BigEndian.PutUint32(b[recordbatch.OffLastOffsetDelta:], math.MaxInt32) })
		}, kafka.ErrCorruptMessage, 0},
		{"a record count of zero is refused", 9, func(*testing.T) []byte {
			return withRecords(0, -1, nil)
		}, kafka.ErrInvalidRecord, 0},
		{"a count matching the delta but not the records is refused", 9, func(*testing.T) []byte {
			return withRecords(3, 2, records(rec{offDelta: 0}))
		}, kafka.ErrInvalidRecord, 0},
		{"offset deltas out of sequence are refused", 9, func(*testing.T) []byte {
			return withRecords(2, 1, records(rec{offDelta: 0}, rec{offDelta: 5}))
		}, kafka.ErrInvalidRecord, 0},
		{"bytes after the last record are refused", 9, func(*testing.T) []byte {
			return withRecords(1, 0, append(records(rec{}), 1, 2, 3))
		}, kafka.ErrInvalidRecord, 0},
		{"a record longer than its fields is refused", 9, func(*testing.T) []byte {
			return withRecords(1, 0, records(rec{trailing: 2}))
		}, kafka.ErrInvalidRecord, 0},
		{"a record whose value overruns the batch is refused", 9, func(*testing.T) []byte {
			r := records(rec{value: "abcdef"})
			return withRecords(1, 0, r[:len(r)-4])
		}, kafka.ErrInvalidRecord, 0},
		{"a control batch from a client is refused", 9, func(*testing.T) []byte {
			return header(testBatch(1, now, "v"), func(b []byte) { b[recordbatch.OffAttributes+1] |= recordbatch.AttrControl })
		}, kafka.ErrInvalidRecord, 0},
		{"an unknown compression codec is refused", 9, func(*testing.T) []byte {
			return header(testBatch(1, now, "v"), func(b []byte) { b[recordbatch.OffAttributes+1] |= 7 })
		}, kafka.ErrInvalidRecord, 0},
		{"a bad CRC is CORRUPT_MESSAGE", 9, func(*testing.T) []byte {
			b := testBatch(1, now, "v")
			b[len(b)-1] ^= 1
			return b
		}, kafka.ErrCorruptMessage, 0},
		{"a record in the year 9999 is INVALID_TIMESTAMP", 9, func(*testing.T) []byte {
			return testBatch(1, 253402300799000, "v")
		}, kafka.ErrInvalidTimestamp, 0},
		{"a record 2 hours ahead is INVALID_TIMESTAMP", 9, func(*testing.T) []byte {
			return testBatch(1, now+2*3600*1000, "v")
		}, kafka.ErrInvalidTimestamp, 0},
		{"a record 30 minutes ahead is accepted", 9, func(*testing.T) []byte {
			return testBatch(1, now+30*60*1000, "v")
		}, kafka.ErrNone, 1},
		{"an old record is accepted (before.max is off by default)", 9, func(*testing.T) []byte {
			return testBatch(1, 1000, "v")
		}, kafka.ErrNone, 1},
		{"the client's base offset is ignored", 9, func(*testing.T) []byte {
			return header(testBatch(2, now, "v"), func(b []byte) { binary.BigEndian.PutUint64(b[recordbatch.OffBaseOffset:], 1<<40) })
		}, kafka.ErrNone, 2},
		{"a gzip batch is validated and appended", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(4, now, "v"), 1, nil) }, kafka.ErrNone, 4},
		{"a snappy batch is validated and appended", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(4, now, "v"), 2, nil) }, kafka.ErrNone, 4},
		{"an lz4 batch is validated and appended", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(4, now, "v"), 3, nil) }, kafka.ErrNone, 4},
		{"a zstd batch is validated and appended", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(4, now, "v"), 4, nil) }, kafka.ErrNone, 4},
		{"a compressed batch whose records disagree with its count is refused", 9, func(t *testing.T) []byte {
			return compressBatch(t, header(testBatch(4, now, "v"), func(b []byte) {
				binary.BigEndian.PutUint32(b[recordbatch.OffRecordCount:], 5)
				binary.BigEndian.PutUint32(b[recordbatch.OffLastOffsetDelta:], 4)
			}), 4, nil)
		}, kafka.ErrInvalidRecord, 0},
		{"a compressed record in the year 9999 is INVALID_TIMESTAMP", 9, func(t *testing.T) []byte {
			return compressBatch(t, testBatch(2, 253402300799000, "v"), 1, nil)
		}, kafka.ErrInvalidTimestamp, 0},
		{"a zstd bomb is MESSAGE_TOO_LARGE", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(1, now, "v"), 4, bomb) }, kafka.ErrMessageTooLarge, 0},
		{"a snappy bomb is MESSAGE_TOO_LARGE", 9, func(t *testing.T) []byte { return compressBatch(t, testBatch(1, now, "v"), 2, bomb) }, kafka.ErrMessageTooLarge, 0},
		{"a gzip stream that is not gzip is INVALID_RECORD", 9, func(t *testing.T) []byte {
			raw := compressBatch(t, testBatch(1, now, "v"), 1, nil)
			raw[recordbatch.HeaderSize] ^= 0xff
			return fixCRC(raw)
		}, kafka.ErrInvalidRecord, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBroker(t)
			createTopic(t, b, "t", 1, nil)
			raw := c.batch(t)
			sp := produceVersion(t, b, c.version, raw)
			wantCode(t, "produce", sp.ErrorCode, c.want)
			if c.want != kafka.ErrNone && c.version >= 8 && (sp.ErrorMessage == nil || *sp.ErrorMessage == "") {
				t.Errorf("refusal carries no error message")
			}
			if _, next, _ := partitionState(b, "t", 0); next != c.next {
				t.Errorf("log end %d after the produce, want %d", next, c.next)
			}
			if c.want == kafka.ErrNone {
				got := b.lookupTopic("t").partitionOf(0).log.(*memLog).batches[0].raw
				if base := int64(binary.BigEndian.Uint64(got)); base != 0 {
					t.Errorf("stored base offset %d, want 0", base)
				}
				if _, err := parseBatch(got); err != nil {
					t.Errorf("stored batch does not parse: %v", err)
				}
			}
		})
	}
}

func TestProduceTimestampBeforeMax(t *testing.T) {
	b := New(Config{Logger: slog.New(slog.DiscardHandler), TimestampBeforeMax: time.Hour, TimestampAfterMax: -1})
	t.Cleanup(b.Close)
	createTopic(t, b, "t", 1, nil)
	now := time.Now().UnixMilli()
	wantCode(t, "2 hours old", produceVersion(t, b, 9, testBatch(1, now-2*3600*1000, "v")).ErrorCode, kafka.ErrInvalidTimestamp)
	wantCode(t, "year 9999 with after.max off", produceVersion(t, b, 9, testBatch(1, 253402300799000, "v")).ErrorCode, kafka.ErrNone)
	// LogAppendTime topics are not bounded: the broker stamps them.
	b.lookupTopic("t").configs["message.timestamp.type"] = "LogAppendTime"
	wantCode(t, "LogAppendTime", produceVersion(t, b, 9, testBatch(1, 0, "v")).ErrorCode, kafka.ErrNone)
}

// TestProduceStoresMaxTimestampOfRecords: as in Kafka, the stored header's
// max timestamp is the records', so a header claiming the year 9999 over
// records of today cannot pin retention.
func TestProduceStoresMaxTimestampOfRecords(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, nil)
	now := time.Now().UnixMilli()
	raw := testBatch(1, now, "v")
	binary.BigEndian.PutUint64(raw[recordbatch.OffMaxTimestamp:], 253402300799000)
	wantCode(t, "produce", produceVersion(t, b, 9, fixCRC(raw)).ErrorCode, kafka.ErrNone)
	got := b.lookupTopic("t").partitionOf(0).log.(*memLog).batches[0]
	if got.maxTimestamp != now {
		t.Fatalf("stored max timestamp %d, want the record's %d", got.maxTimestamp, now)
	}
	if h, err := parseBatch(got.raw); err != nil || h.MaxTimestamp != now {
		t.Fatalf("stored header: %+v, %v", h, err)
	}
}

package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Record is one record to build a batch of.
type Record struct {
	// Key and Value are the record's bytes (nil: null).
	Key, Value []byte
	// Headers are the record's headers, key and value each.
	Headers [][2][]byte
	// Timestamp is the record's CreateTime in milliseconds.
	Timestamp int64
}

// Build encodes records (at least one) as one uncompressed batch (no
// producer id, leader epoch -1, CreateTime, base offset 0) with its CRC, as
// a Kafka producer does. It allocates the batch once, at its exact size.
func Build(recs []Record) []byte {
	first, maxTS := recs[0].Timestamp, recs[0].Timestamp
	for i := range recs {
		first, maxTS = min(first, recs[i].Timestamp), max(maxTS, recs[i].Timestamp)
	}
	size := HeaderSize
	for i := range recs {
		n := recordBodyLen(i, &recs[i], first)
		size += varintLen(int64(n)) + n
	}
	raw := make([]byte, HeaderSize, size)
	for i := range recs {
		r := &recs[i]
		raw = binary.AppendVarint(raw, int64(recordBodyLen(i, r, first)))
		raw = append(raw, 0) // attributes
		raw = binary.AppendVarint(raw, r.Timestamp-first)
		raw = binary.AppendVarint(raw, int64(i)) // offset delta
		raw = appendBytesField(raw, r.Key)
		raw = appendBytesField(raw, r.Value)
		raw = binary.AppendVarint(raw, int64(len(r.Headers)))
		for _, h := range r.Headers {
			raw = appendBytesField(raw, h[0])
			raw = appendBytesField(raw, h[1])
		}
	}
	binary.BigEndian.PutUint32(raw[OffLength:], uint32(len(raw)-LengthPrefix))
	binary.BigEndian.PutUint32(raw[OffLeaderEpoch:], 0xffffffff)
	raw[OffMagic] = 2
	binary.BigEndian.PutUint32(raw[OffLastOffsetDelta:], uint32(len(recs)-1))
	binary.BigEndian.PutUint64(raw[OffBaseTimestamp:], uint64(first))
	binary.BigEndian.PutUint64(raw[OffMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint64(raw[OffProducerID:], 0xffffffffffffffff)
	binary.BigEndian.PutUint16(raw[OffProducerEpoch:], 0xffff)
	binary.BigEndian.PutUint32(raw[OffBaseSequence:], 0xffffffff)
	binary.BigEndian.PutUint32(raw[OffRecordCount:], uint32(len(recs)))
	SetCRC(raw)
	return raw
}

// recordBodyLen is the length of record i after its length varint.
func recordBodyLen(i int, r *Record, first int64) int {
	n := 1 + varintLen(r.Timestamp-first) + varintLen(int64(i)) + fieldLen(r.Key) + fieldLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += fieldLen(h[0]) + fieldLen(h[1])
	}
	return n
}

// fieldLen is the encoded length of a nullable bytes field.
func fieldLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytesField(b, field []byte) []byte {
	if field == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(field)))
	return append(b, field...)
}

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

// NextRecord parses the record at the start of recs (the uncompressed
// records of a batch): length, attributes, timestamp delta, offset delta,
// key and value; headers are skipped with the record. Every length is
// checked against the bytes that remain.
func NextRecord(recs []byte) (offsetDelta int32, key, value, rest []byte, err error) {
	l, n := binary.Varint(recs)
	if n <= 0 || l < 1 || l > int64(len(recs)-n) {
		return 0, nil, nil, nil, errors.New("bad record length")
	}
	rec := recs[n+1 : n+int(l)] // after the attributes byte
	rest = recs[n+int(l):]
	if _, n = binary.Varint(rec); n <= 0 {
		return 0, nil, nil, nil, errors.New("bad timestamp delta")
	}
	rec = rec[n:]
	od, n := binary.Varint(rec)
	if n <= 0 || od < 0 || od > math.MaxInt32 {
		return 0, nil, nil, nil, errors.New("bad offset delta")
	}
	rec = rec[n:]
	if key, rec, err = bytesField(rec); err != nil {
		return 0, nil, nil, nil, fmt.Errorf("key: %w", err)
	}
	if value, _, err = bytesField(rec); err != nil {
		return 0, nil, nil, nil, fmt.Errorf("value: %w", err)
	}
	return int32(od), key, value, rest, nil
}

// bytesField reads a varint length (-1: null) and that many bytes.
func bytesField(b []byte) (field, rest []byte, err error) {
	l, n := binary.Varint(b)
	if n <= 0 || l < -1 || l > int64(len(b)-n) {
		return nil, nil, errors.New("bad length")
	}
	if l == -1 {
		return nil, b[n:], nil
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

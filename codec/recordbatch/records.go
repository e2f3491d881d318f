package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// KV is a record's key and value (nil: null).
type KV struct{ Key, Value []byte }

// Build encodes records as one uncompressed batch (no producer id, leader
// epoch -1, CreateTime now, base offset 0) with its CRC, as a Kafka
// producer does. It allocates the batch once, at its exact size.
func Build(recs []KV, nowMillis int64) []byte {
	size := HeaderSize
	for i, kv := range recs {
		n := recordBodyLen(i, kv)
		size += varintLen(int64(n)) + n
	}
	raw := make([]byte, HeaderSize, size)
	for i, kv := range recs {
		raw = binary.AppendVarint(raw, int64(recordBodyLen(i, kv)))
		raw = append(raw, 0)                     // attributes
		raw = binary.AppendVarint(raw, 0)        // timestamp delta
		raw = binary.AppendVarint(raw, int64(i)) // offset delta
		raw = appendBytesField(raw, kv.Key)
		raw = appendBytesField(raw, kv.Value)
		raw = binary.AppendVarint(raw, 0) // headers
	}
	binary.BigEndian.PutUint32(raw[OffLength:], uint32(len(raw)-LengthPrefix))
	binary.BigEndian.PutUint32(raw[OffLeaderEpoch:], 0xffffffff)
	raw[OffMagic] = 2
	binary.BigEndian.PutUint32(raw[OffLastOffsetDelta:], uint32(len(recs)-1))
	binary.BigEndian.PutUint64(raw[OffBaseTimestamp:], uint64(nowMillis))
	binary.BigEndian.PutUint64(raw[OffMaxTimestamp:], uint64(nowMillis))
	binary.BigEndian.PutUint64(raw[OffProducerID:], 0xffffffffffffffff)
	binary.BigEndian.PutUint16(raw[OffProducerEpoch:], 0xffff)
	binary.BigEndian.PutUint32(raw[OffBaseSequence:], 0xffffffff)
	binary.BigEndian.PutUint32(raw[OffRecordCount:], uint32(len(recs)))
	SetCRC(raw)
	return raw
}

// recordBodyLen is the length of record i after its length varint.
func recordBodyLen(i int, kv KV) int {
	field := func(b []byte) int {
		if b == nil {
			return varintLen(-1)
		}
		return varintLen(int64(len(b))) + len(b)
	}
	return 1 + varintLen(0) + varintLen(int64(i)) + field(kv.Key) + field(kv.Value) + varintLen(0)
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

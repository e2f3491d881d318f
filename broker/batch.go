package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Offsets of the fields of a v2 record batch header.
const (
	batchBaseOffset      = 0
	batchLength          = 8
	batchLeaderEpoch     = 12
	batchMagic           = 16
	batchCRC             = 17
	batchAttributes      = 21
	batchLastOffsetDelta = 23
	batchBaseTimestamp   = 27
	batchMaxTimestamp    = 35
	batchProducerID      = 43
	batchProducerEpoch   = 51
	batchBaseSequence    = 53
	batchRecordCount     = 57
	batchHeaderSize      = 61

	attrTimestampLogAppend = 0x08
	attrTransactional      = 0x10
	attrControl            = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors from batch validation; produce maps them to Kafka codes.
var (
	errCorruptBatch      = errors.New("corrupt record batch")
	errUnsupportedFormat = errors.New("record batch magic is not 2")
)

// batchHeader is the parsed fixed header of one v2 record batch.
type batchHeader struct {
	length          int // whole batch, including offset and length fields
	attributes      int16
	lastOffsetDelta int32
	baseTimestamp   int64
	maxTimestamp    int64
	producerID      int64
	producerEpoch   int16
	baseSequence    int32
	recordCount     int32
}

// parseBatch checks the batch at the start of b (magic, length, CRC) and
// returns its header.
func parseBatch(b []byte) (batchHeader, error) {
	var h batchHeader
	if len(b) < batchHeaderSize {
		return h, errCorruptBatch
	}
	if b[batchMagic] != 2 {
		return h, errUnsupportedFormat
	}
	l := int(int32(binary.BigEndian.Uint32(b[batchLength:])))
	if l < batchHeaderSize-12 || 12+l > len(b) {
		return h, errCorruptBatch
	}
	h.length = 12 + l
	want := binary.BigEndian.Uint32(b[batchCRC:])
	if crc32.Checksum(b[batchAttributes:h.length], castagnoli) != want {
		return h, errCorruptBatch
	}
	h.attributes = int16(binary.BigEndian.Uint16(b[batchAttributes:]))
	h.lastOffsetDelta = int32(binary.BigEndian.Uint32(b[batchLastOffsetDelta:]))
	h.baseTimestamp = int64(binary.BigEndian.Uint64(b[batchBaseTimestamp:]))
	h.maxTimestamp = int64(binary.BigEndian.Uint64(b[batchMaxTimestamp:]))
	h.producerID = int64(binary.BigEndian.Uint64(b[batchProducerID:]))
	h.producerEpoch = int16(binary.BigEndian.Uint16(b[batchProducerEpoch:]))
	h.baseSequence = int32(binary.BigEndian.Uint32(b[batchBaseSequence:]))
	h.recordCount = int32(binary.BigEndian.Uint32(b[batchRecordCount:]))
	if h.lastOffsetDelta < 0 || h.recordCount < 0 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d, record count %d", errInvalidRecord, h.lastOffsetDelta, h.recordCount)
	}
	return h, nil
}

// splitBatches parses every batch of a produce partition's records.
func splitBatches(records []byte) ([]batchHeader, error) {
	var out []batchHeader
	for len(records) > 0 {
		h, err := parseBatch(records)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
		records = records[h.length:]
	}
	if len(out) == 0 {
		return nil, errCorruptBatch
	}
	return out, nil
}

// stampBatch writes the base offset, leader epoch and max timestamp into a
// stored copy of a batch, with the LogAppendTime attribute when
// logAppendMillis >= 0, fixing its CRC when the CRC-covered part changed.
// As in Kafka, a CreateTime batch's max timestamp is the largest of its
// records' (validated), not what the client wrote in the header.
func stampBatch(b []byte, base int64, epoch int32, logAppendMillis, maxTS int64) {
	binary.BigEndian.PutUint64(b[batchBaseOffset:], uint64(base))
	binary.BigEndian.PutUint32(b[batchLeaderEpoch:], uint32(epoch))
	attrs := binary.BigEndian.Uint16(b[batchAttributes:])
	if logAppendMillis >= 0 {
		attrs |= attrTimestampLogAppend
	}
	if attrs == binary.BigEndian.Uint16(b[batchAttributes:]) && uint64(maxTS) == binary.BigEndian.Uint64(b[batchMaxTimestamp:]) {
		return
	}
	binary.BigEndian.PutUint16(b[batchAttributes:], attrs)
	binary.BigEndian.PutUint64(b[batchMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint32(b[batchCRC:], crc32.Checksum(b[batchAttributes:], castagnoli))
}

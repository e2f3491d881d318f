package broker

import (
	"encoding/binary"
	"fmt"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// parseBatch checks the batch at the start of b (magic, length, CRC) and
// returns its header; a negative last offset delta or record count is an
// invalid record, as Kafka's LogValidator says.
func parseBatch(b []byte) (recordbatch.Header, error) {
	h, err := recordbatch.Check(b)
	if err != nil {
		return h, err
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d, record count %d", errInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	}
	return h, nil
}

// splitBatches parses every batch of a produce partition's records.
func splitBatches(records []byte) ([]recordbatch.Header, error) {
	var out []recordbatch.Header
	for len(records) > 0 {
		h, err := parseBatch(records)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
		records = records[h.Size:]
	}
	if len(out) == 0 {
		return nil, recordbatch.ErrCorrupt
	}
	return out, nil
}

// stampBatch writes the base offset, leader epoch and max timestamp into a
// stored copy of a batch, with the LogAppendTime attribute when
// logAppendMillis >= 0, fixing its CRC when the CRC-covered part changed.
// As in Kafka, a CreateTime batch's max timestamp is the largest of its
// records' (validated), not what the client wrote in the header.
func stampBatch(b []byte, base int64, epoch int32, logAppendMillis, maxTS int64) {
	binary.BigEndian.PutUint64(b[recordbatch.OffBaseOffset:], uint64(base))
	binary.BigEndian.PutUint32(b[recordbatch.OffLeaderEpoch:], uint32(epoch))
	attrs := binary.BigEndian.Uint16(b[recordbatch.OffAttributes:])
	if logAppendMillis >= 0 {
		attrs |= recordbatch.AttrLogAppendTime
	}
	if attrs == binary.BigEndian.Uint16(b[recordbatch.OffAttributes:]) && uint64(maxTS) == binary.BigEndian.Uint64(b[recordbatch.OffMaxTimestamp:]) {
		return
	}
	binary.BigEndian.PutUint16(b[recordbatch.OffAttributes:], attrs)
	binary.BigEndian.PutUint64(b[recordbatch.OffMaxTimestamp:], uint64(maxTS))
	recordbatch.SetCRC(b)
}

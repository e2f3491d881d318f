package storage

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Offsets of the fields of a v2 record batch header that storage reads.
const (
	hdrBaseOffset      = 0
	hdrLength          = 8
	hdrMagic           = 16
	hdrCRC             = 17
	hdrAttributes      = 21
	hdrLastOffsetDelta = 23
	hdrMaxTimestamp    = 35
	hdrProducerID      = 43
	hdrProducerEpoch   = 51
	hdrBaseSequence    = 53
	// HeaderSize is the size of the fixed v2 record batch header.
	HeaderSize = 61
	// lengthPrefix is the part of the header before the length counts.
	lengthPrefix = 12
	// maxBatchSize bounds a batch length read from disk, so a corrupt
	// length cannot make recovery allocate gigabytes.
	maxBatchSize = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned for a batch whose header or CRC does not check.
var ErrCorrupt = errors.New("corrupt record batch")

// Batch describes one stored record batch.
type Batch struct {
	// Base and Last are the first and last offsets of the batch.
	Base, Last int64
	// MaxTimestamp is the batch's max timestamp (millis), as stored.
	MaxTimestamp int64
	// ProducerID, ProducerEpoch and BaseSequence are the idempotent producer
	// fields (-1 when not idempotent).
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Size is the whole batch in bytes.
	Size int
}

// LastSequence is the sequence of the batch's last record.
func (b Batch) LastSequence() int32 { return b.BaseSequence + int32(b.Last-b.Base) }

// parseHeader reads the fixed header at the start of h (at least
// HeaderSize bytes) without checking the CRC.
func parseHeader(h []byte) (Batch, error) {
	if len(h) < HeaderSize || h[hdrMagic] != 2 {
		return Batch{}, ErrCorrupt
	}
	l := int64(int32(binary.BigEndian.Uint32(h[hdrLength:])))
	if l < HeaderSize-lengthPrefix || l > maxBatchSize {
		return Batch{}, ErrCorrupt
	}
	base := int64(binary.BigEndian.Uint64(h[hdrBaseOffset:]))
	delta := int32(binary.BigEndian.Uint32(h[hdrLastOffsetDelta:]))
	if base < 0 || delta < 0 {
		return Batch{}, ErrCorrupt
	}
	return Batch{
		Base:          base,
		Last:          base + int64(delta),
		MaxTimestamp:  int64(binary.BigEndian.Uint64(h[hdrMaxTimestamp:])),
		ProducerID:    int64(binary.BigEndian.Uint64(h[hdrProducerID:])),
		ProducerEpoch: int16(binary.BigEndian.Uint16(h[hdrProducerEpoch:])),
		BaseSequence:  int32(binary.BigEndian.Uint32(h[hdrBaseSequence:])),
		Size:          int(lengthPrefix + l),
	}, nil
}

// ParseBatch checks the whole batch at the start of b (header and CRC32C
// over attributes..end) and describes it.
func ParseBatch(b []byte) (Batch, error) {
	info, err := parseHeader(b)
	if err != nil {
		return info, err
	}
	if info.Size > len(b) {
		return info, ErrCorrupt
	}
	if crc32.Checksum(b[hdrAttributes:info.Size], castagnoli) != binary.BigEndian.Uint32(b[hdrCRC:]) {
		return info, ErrCorrupt
	}
	return info, nil
}

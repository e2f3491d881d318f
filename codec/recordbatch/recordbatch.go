// Package recordbatch owns the layout of Kafka's v2 record batch (magic 2):
// the offsets of its fixed header fields, reading and checking a header,
// its CRC32C, and the records inside an uncompressed batch. The broker
// (validation and stamping), storage (recovery and reads) and the REST API
// (building and decoding batches) all read the layout from here.
package recordbatch

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Offsets of the fields of the fixed v2 header, from the batch's first byte.
const (
	OffBaseOffset      = 0
	OffLength          = 8
	OffLeaderEpoch     = 12
	OffMagic           = 16
	OffCRC             = 17
	OffAttributes      = 21
	OffLastOffsetDelta = 23
	OffBaseTimestamp   = 27
	OffMaxTimestamp    = 35
	OffProducerID      = 43
	OffProducerEpoch   = 51
	OffBaseSequence    = 53
	OffRecordCount     = 57
	// HeaderSize is the size of the fixed header; records follow it.
	HeaderSize = 61
	// LengthPrefix is the part of the header the length field does not
	// count (base offset and length).
	LengthPrefix = 12
)

// Attribute bits.
const (
	// AttrCompression masks the codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
	AttrCompression = 0x07
	// AttrLogAppendTime marks timestamps set by the broker.
	AttrLogAppendTime = 0x08
	// AttrTransactional marks a transactional batch.
	AttrTransactional = 0x10
	// AttrControl marks a control batch (transaction markers).
	AttrControl = 0x20
)

// Errors of a header or batch that does not check.
var (
	// ErrCorrupt is a batch whose length or CRC does not check.
	ErrCorrupt = errors.New("corrupt record batch")
	// ErrMagic is a batch whose magic byte is not 2.
	ErrMagic = errors.New("record batch magic is not 2")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the fixed header of one batch.
type Header struct {
	BaseOffset      int64
	LeaderEpoch     int32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
	// Size is the whole batch in bytes, the length prefix included.
	Size int
}

// Last is the offset of the batch's last record.
func (h *Header) Last() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the batch's compression codec (0 none ... 4 zstd).
func (h *Header) Codec() int16 { return h.Attributes & AttrCompression }

// ReadHeader reads the fixed header at the start of b. It checks the magic
// byte and that the length covers at least the header; it does not check
// that b holds the whole batch, nor its CRC (see Check).
func ReadHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrCorrupt
	}
	if b[OffMagic] != 2 {
		return Header{}, ErrMagic
	}
	size := Size(b)
	if size < HeaderSize {
		return Header{}, ErrCorrupt
	}
	return Header{
		BaseOffset:      BaseOffset(b),
		LeaderEpoch:     int32(binary.BigEndian.Uint32(b[OffLeaderEpoch:])),
		Attributes:      int16(binary.BigEndian.Uint16(b[OffAttributes:])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(b[OffLastOffsetDelta:])),
		BaseTimestamp:   int64(binary.BigEndian.Uint64(b[OffBaseTimestamp:])),
		MaxTimestamp:    int64(binary.BigEndian.Uint64(b[OffMaxTimestamp:])),
		ProducerID:      int64(binary.BigEndian.Uint64(b[OffProducerID:])),
		ProducerEpoch:   int16(binary.BigEndian.Uint16(b[OffProducerEpoch:])),
		BaseSequence:    int32(binary.BigEndian.Uint32(b[OffBaseSequence:])),
		RecordCount:     int32(binary.BigEndian.Uint32(b[OffRecordCount:])),
		Size:            int(size),
	}, nil
}

// Size returns the size of the batch at the start of b, its length prefix
// included, from the length field alone: it stands in the same place in
// magic 0 and 1 message sets. b must hold LengthPrefix bytes; in a corrupt
// batch the size may be below HeaderSize, even negative.
func Size(b []byte) int64 {
	return LengthPrefix + int64(int32(binary.BigEndian.Uint32(b[OffLength:])))
}

// BaseOffset returns the offset of the first record of the batch at the
// start of b (any magic); b must hold 8 bytes.
func BaseOffset(b []byte) int64 { return int64(binary.BigEndian.Uint64(b[OffBaseOffset:])) }

// Check reads the header of the batch at the start of b and checks that b
// holds all of it and that its CRC32C (over attributes to the end) holds.
func Check(b []byte) (Header, error) {
	h, err := ReadHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size > len(b) || CRC(b[:h.Size]) != binary.BigEndian.Uint32(b[OffCRC:]) {
		return h, ErrCorrupt
	}
	return h, nil
}

// CRC computes the CRC32C of the whole batch b as its header stores it.
func CRC(b []byte) uint32 { return crc32.Checksum(b[OffAttributes:], castagnoli) }

// SetCRC writes the CRC of the whole batch b into its header.
func SetCRC(b []byte) { binary.BigEndian.PutUint32(b[OffCRC:], CRC(b)) }

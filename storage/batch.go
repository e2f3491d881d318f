package storage

import (
	"errors"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// maxBatchSize bounds a batch length read from disk, so a corrupt length
// cannot make recovery allocate gigabytes.
const maxBatchSize = 1 << 30

// ErrCorrupt is returned for a batch whose header or CRC does not check
// (the record batch layout's own error, so errors.Is holds across layers).
var ErrCorrupt = recordbatch.ErrCorrupt

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

// describe turns a header read from disk into a Batch, refusing what no
// stored batch can be: a negative base offset or delta, a length over
// maxBatchSize.
func describe(h recordbatch.Header, err error) (Batch, error) {
	if errors.Is(err, recordbatch.ErrMagic) {
		return Batch{}, ErrCorrupt // a stored batch is always v2
	}
	if err != nil {
		return Batch{}, err
	}
	if h.BaseOffset < 0 || h.LastOffsetDelta < 0 || h.Size > recordbatch.LengthPrefix+maxBatchSize {
		return Batch{}, ErrCorrupt
	}
	return Batch{
		Base:          h.BaseOffset,
		Last:          h.Last(),
		MaxTimestamp:  h.MaxTimestamp,
		ProducerID:    h.ProducerID,
		ProducerEpoch: h.ProducerEpoch,
		BaseSequence:  h.BaseSequence,
		Size:          h.Size,
	}, nil
}

// parseHeader reads the fixed header at the start of h (at least
// recordbatch.HeaderSize bytes) without checking the CRC.
func parseHeader(h []byte) (Batch, error) { return describe(recordbatch.ReadHeader(h)) }

// ParseBatch checks the whole batch at the start of b (header and CRC32C
// over attributes..end) and describes it.
func ParseBatch(b []byte) (Batch, error) { return describe(recordbatch.Check(b)) }

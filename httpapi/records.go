package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/codec/recordbatch"
)

// Decoder state charged on top of the output while a batch inflates: zstd
// and gzip decoders cost what the HTTP body decoders of the same coding
// cost (httpcodec.DecoderState: the zstd window is capped at
// httpcodec.ZstdMaxWindow); pierrec/lz4 allocates at most two blocks of its
// largest size (4 MiB).
var (
	zstdState = httpcodec.DecoderState("zstd")
	gzipState = httpcodec.DecoderState("gzip")
)

const lz4State = 8 << 20

// batchDecoder reads the records of stored v2 batches for one REST fetch
// answer. Every buffer it allocates is charged to ch as it grows, and the
// decompressed bytes of the whole answer are capped at maxOut.
type batchDecoder struct {
	ch     *charge
	maxOut int64 // decompressed bytes allowed for the whole answer
	used   int64 // decompressed bytes so far
	// room returns the bytes left in the answer (nil: no bound). Keys and
	// values take at least as many bytes in the answer as in the batch, so
	// once a record is in the answer a batch that would inflate past room
	// is left for the next fetch (where it comes first) instead of
	// inflated: it could not fit anyway, short of record headers, which
	// the answer does not carry.
	room func() int64
	// passed, when set, is told the offset after each batch the decoder
	// is done with (every record emitted or before from, or a control
	// batch): a consumer's position moves past it even when it emitted
	// nothing (compacted gaps, transaction markers).
	passed func(next int64)
}

// errTooLarge reports a batch that does not fit in what remains of the
// answer's decompressed bytes.
var errTooLarge = errors.New("decompressed batch too large")

// corruptBatchError reports a stored batch that cannot be decoded; it is
// the consumer's problem (an answer naming the batch and where to resume),
// never the server's.
type corruptBatchError struct {
	base, next int64 // the batch's base offset, and the offset after it
	err        error
}

func (e *corruptBatchError) Error() string {
	return fmt.Sprintf("corrupt record batch at offset %d (read from offset %d to skip it): %v", e.base, e.next, e.err)
}

func (e *corruptBatchError) Unwrap() error { return e.err }

// bigBatchError reports a batch that alone inflates past the answer's cap.
type bigBatchError struct {
	base, next int64
}

func (e *bigBatchError) Error() string {
	return fmt.Sprintf("the record batch at offset %d inflates to more than the REST answer may hold (read from offset %d to skip it)", e.base, e.next)
}

// decode emits the records of the v2 batches in raw at or after offset
// from, until emit returns false. Control batches are skipped, and so is a
// partial batch at the end (Kafka may cut the last one). A batch that does
// not fit in the remaining decompressed bytes ends the answer, or fails
// with *bigBatchError when nothing was emitted yet; a batch that cannot be
// decoded ends the answer, or fails with *corruptBatchError when nothing
// was emitted yet; errBudget when the memory budget runs out.
func (d *batchDecoder) decode(raw []byte, from int64, emit func(off int64, key, value []byte) bool) error {
	emitted := false
	for len(raw) >= recordbatch.HeaderSize {
		h, err := recordbatch.ReadHeader(raw)
		if errors.Is(err, recordbatch.ErrMagic) {
			// Message sets of magic 0/1 are not served; the length
			// field sits where v2's does, so the walk goes on.
			h.Size = int(recordbatch.Size(raw))
			if h.Size < recordbatch.HeaderSize || h.Size > len(raw) {
				return nil
			}
			raw = raw[h.Size:]
			continue
		}
		if err != nil || h.Size > len(raw) {
			return nil
		}
		batch := raw[:h.Size]
		raw = raw[h.Size:]
		base := h.BaseOffset
		next := base + max(int64(h.LastOffsetDelta), 0) + 1
		if next <= from {
			continue // wholly before from
		}
		if h.Attributes&recordbatch.AttrControl != 0 {
			if d.passed != nil {
				d.passed(next)
			}
			continue // transaction markers
		}
		n := h.RecordCount
		attrs := h.Attributes
		allowance := d.maxOut - d.used
		if emitted && d.room != nil {
			allowance = min(allowance, d.room())
		}
		recs, charged, err := d.inflate(attrs&recordbatch.AttrCompression, batch[recordbatch.HeaderSize:], allowance)
		switch {
		case errors.Is(err, errBudget):
			return err
		case errors.Is(err, errTooLarge):
			if emitted {
				return nil
			}
			return &bigBatchError{base: base, next: next}
		case err != nil:
			if emitted {
				return nil
			}
			return &corruptBatchError{base: base, next: next, err: err}
		}
		stop := false
		for i := int32(0); i < n && len(recs) > 0; i++ {
			delta, key, value, rest, err := recordbatch.NextRecord(recs)
			if err != nil {
				d.ch.give(charged)
				if emitted {
					return nil
				}
				return &corruptBatchError{base: base, next: next, err: fmt.Errorf("record %d: %w", i, err)}
			}
			recs = rest
			if off := base + int64(delta); off >= from {
				if !emit(off, key, value) {
					stop = true
					break
				}
				emitted = true
			}
		}
		// The records were copied into the answer: the batch is garbage.
		d.ch.give(charged)
		if stop {
			return nil
		}
		if d.passed != nil {
			d.passed(next)
		}
	}
	return nil
}

// inflate decompresses a batch's records within room bytes, returning them and the bytes charged for them. A decoder that panics
// on hostile input is a corrupt batch, not a crash.
func (d *batchDecoder) inflate(codec int16, src []byte, room int64) (out []byte, charged int64, err error) {
	if codec == 0 {
		return src, 0, nil // part of the fetched bytes, charged already
	}
	if room <= 0 {
		return nil, 0, errTooLarge
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("decoder failed: %v", p)
		}
		if err != nil {
			d.ch.give(charged)
			charged = 0
			return
		}
		d.used += int64(len(out))
	}()
	return decompress(codec, src, room, d.ch)
}

// decompress inflates the records of a batch with codec (attributes & 7)
// into at most maxOut bytes, charging its output and decoder state to ch.
// Every length read from src is checked against what remains before it is
// used. It returns the output and the bytes charged (to give back when the
// output is dropped).
func decompress(codec int16, src []byte, maxOut int64, ch *charge) ([]byte, int64, error) {
	switch codec {
	case 1:
		return inflateStream(ch, gzipState, maxOut, func() (io.Reader, func(), error) {
			zr, err := gzip.NewReader(bytes.NewReader(src))
			if err != nil {
				return nil, nil, fmt.Errorf("gzip: %w", err)
			}
			return zr, func() { _ = zr.Close() }, nil
		})
	case 2:
		if !recordbatch.IsXerial(src) {
			n, err := snappy.DecodedLen(src)
			if err != nil {
				return nil, 0, fmt.Errorf("snappy: %w", err)
			}
			if int64(n) > maxOut {
				return nil, 0, errTooLarge
			}
			out, err := ch.grow(nil, n)
			if err != nil {
				return nil, 0, err
			}
			out, err = snappyInto(out, src, n)
			return out, int64(cap(out)), err
		}
		return xerial(src, maxOut, ch)
	case 3:
		return inflateStream(ch, lz4State, maxOut, func() (io.Reader, func(), error) {
			return lz4.NewReader(bytes.NewReader(src)), func() {}, nil
		})
	case 4:
		// A frame that declares its size (every Kafka client's does) is
		// refused at once when too large, else read into a buffer of
		// exactly that size.
		var h zstd.Header
		if h.Decode(src) == nil && h.HasFCS && h.FrameContentSize <= uint64(maxOut) {
			return zstdSized(src, int(h.FrameContentSize), maxOut, ch)
		} else if h.HasFCS {
			return nil, 0, errTooLarge
		}
		return inflateStream(ch, zstdState, maxOut, func() (io.Reader, func(), error) {
			zr, err := newZstd(bytes.NewReader(src), maxOut)
			if err != nil {
				return nil, nil, err
			}
			return zr, zr.Close, nil
		})
	}
	return nil, 0, fmt.Errorf("unknown compression codec %d", codec)
}

func newZstd(r io.Reader, maxOut int64) (*zstd.Decoder, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(httpcodec.ZstdMaxWindow), zstd.WithDecoderMaxMemory(uint64(maxOut)))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return zr, nil
}

// zstdSized decodes zstd data whose first frame declares its size (every
// Kafka client's does) straight into one buffer of that size: a
// single-segment frame then needs no history buffer of its own.
func zstdSized(src []byte, size int, maxOut int64, ch *charge) ([]byte, int64, error) {
	if !ch.take(zstdState) {
		return nil, 0, errBudget
	}
	defer ch.give(zstdState)
	dst, err := ch.grow(nil, size)
	if err != nil {
		return nil, 0, err
	}
	charged := int64(cap(dst))
	zr, err := newZstd(nil, maxOut)
	if err != nil {
		return nil, charged, err
	}
	defer zr.Close()
	out, err := zr.DecodeAll(src, dst[:0])
	if extra := int64(cap(out)) - charged; extra > 0 {
		// More frames followed: the decoder grew the buffer (within maxOut).
		if !ch.take(extra) {
			return nil, charged, errBudget
		}
		charged += extra
	}
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded) || int64(len(out)) > maxOut:
		return nil, charged, errTooLarge
	case err != nil:
		return nil, charged, fmt.Errorf("zstd: %w", err)
	}
	return out, charged, nil
}

// xerial decodes the Java client's snappy framing.
func xerial(src []byte, maxOut int64, ch *charge) ([]byte, int64, error) {
	chunks, err := recordbatch.XerialChunks(src)
	if err != nil {
		return nil, 0, err
	}
	var out []byte
	for len(chunks) > 0 {
		var chunk []byte
		if chunk, chunks, err = recordbatch.NextXerialBlock(chunks); err != nil {
			return nil, int64(cap(out)), err
		}
		dl, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, int64(cap(out)), fmt.Errorf("snappy: %w", err)
		}
		if int64(len(out))+int64(dl) > maxOut {
			return nil, int64(cap(out)), errTooLarge
		}
		grown, err := ch.grow(out, dl)
		if err != nil {
			return nil, int64(cap(out)), err
		}
		out = grown
		if out, err = snappyInto(out, chunk, dl); err != nil {
			return nil, int64(cap(out)), err
		}
	}
	return out, int64(cap(out)), nil
}

// snappyInto decodes one snappy block of decoded length n after out's
// bytes; out has room for n more.
func snappyInto(out, block []byte, n int) ([]byte, error) {
	l := len(out)
	dst := out[l : l+n]
	b, err := snappy.Decode(dst, block)
	if err != nil {
		return out, fmt.Errorf("snappy: %w", err)
	}
	if len(b) != n || (n > 0 && &b[0] != &dst[0]) {
		return out, errors.New("snappy: block decoded to a different length than it announced")
	}
	return out[:l+n], nil
}

// inflateStream reads a streaming decoder to its end into a buffer that
// grows (and is charged) as bytes come out, doubling from 32 KiB up to
// maxOut+1, failing with errTooLarge past maxOut. The decoder's own state
// is charged while it runs.
func inflateStream(ch *charge, state, maxOut int64, open func() (io.Reader, func(), error)) ([]byte, int64, error) {
	if !ch.take(state) {
		return nil, 0, errBudget
	}
	defer ch.give(state)
	r, closeFn, err := open()
	if err != nil {
		return nil, 0, err
	}
	defer closeFn()
	var out []byte
	ceiling := int(min(maxOut+1, math.MaxInt32))
	for {
		if len(out) == cap(out) {
			want := min(max(2*cap(out), 32<<10), ceiling)
			if want <= len(out) {
				return nil, int64(cap(out)), errTooLarge
			}
			grown, err := ch.growTo(out, want)
			if err != nil {
				return nil, int64(cap(out)), err
			}
			out = grown
		}
		room := int64(cap(out) - len(out))
		if rem := maxOut + 1 - int64(len(out)); room > rem {
			room = rem
		}
		n, err := r.Read(out[len(out) : len(out)+int(room)])
		out = out[:len(out)+n]
		if int64(len(out)) > maxOut {
			return nil, int64(cap(out)), errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return out, int64(cap(out)), nil
		}
		if err != nil {
			return nil, int64(cap(out)), err
		}
	}
}

// keyPartition is the partition among n of a record with key: Kafka's
// default partitioner (Utils.toPositive(Utils.murmur2(key)) % n), which
// franz-go's default (KafkaHasher(murmur2)) follows too, so a key lands on
// the same partition whether it came over REST, from a Java client or from
// franz-go. franz-go does not export its murmur2 (only a Partitioner that
// takes a whole *kgo.Record); TestKeyPartitionIsFranzGos checks this copy
// against it.
func keyPartition(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// murmur2 is the Kafka Java client's key hash (Utils.murmur2); Kafka's
// UtilsTest vectors are TestMurmur2KafkaVectors.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func sortStrings(s []string) { sort.Strings(s) }

func sortPartitions(p []partitionInfo) {
	sort.Slice(p, func(i, j int) bool { return p[i].Partition < p[j].Partition })
}

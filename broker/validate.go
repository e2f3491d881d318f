package broker

// Validation of produced record batches, as Apache Kafka's LogValidator
// does it: a batch is stored only when its header agrees with its records
// (count = lastOffsetDelta+1, every record's offset delta in sequence, the
// records ending exactly where the batch does), its timestamps are within
// the configured bounds and, when compressed, it inflates to at most a
// bounded size. Without this one batch claiming lastOffsetDelta = 2^31-1
// moves the log end by 2^31 and consumers skip other producers' batches.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// Validation failures; produce maps them to Kafka codes.
var (
	// errInvalidRecord: the batch's header and records disagree (INVALID_RECORD).
	errInvalidRecord = errors.New("invalid record batch")
	// errInvalidTimestamp: a CreateTime timestamp outside the bounds (INVALID_TIMESTAMP).
	errInvalidTimestamp = errors.New("record timestamp out of range")
	// errInflatedTooLarge: a compressed batch inflates beyond the bound (MESSAGE_TOO_LARGE).
	errInflatedTooLarge = errors.New("compressed batch inflates beyond the bound")
)

// minRecordBody is the smallest encoding of a record after its length:
// attributes, timestamp delta, offset delta, key length, value length and
// header count, one byte each.
const minRecordBody = 6

// inflateRatio bounds a compressed batch's inflated records to this many
// times the topic's max.message.bytes (and at least minInflateBound): the
// default clients (franz-go, Java, librdkafka) cap a batch at about 1 MB
// before compression, so legitimate batches are far below it, while a
// 3 KB zstd bomb that inflates to 99 MiB is refused.
const (
	inflateRatio    = 16
	minInflateBound = 16 << 20
	// zstdMaxWindow bounds a zstd decoder's window (producers use 8 MiB
	// at most at their default levels).
	zstdMaxWindow = 32 << 20
)

// timestampBounds are Kafka's message.timestamp.before.max.ms and
// message.timestamp.after.max.ms: a CreateTime timestamp more than before
// in the past or after in the future is refused. MaxInt64 means unbounded.
type timestampBounds struct {
	before, after int64
}

// check reports whether ts (ms) is acceptable at now (ms).
func (tb timestampBounds) check(ts, now int64) error {
	if tb.before != math.MaxInt64 && ts < now-tb.before {
		return fmt.Errorf("%w: timestamp %d is more than %d ms before the broker's time %d (message.timestamp.before.max.ms)",
			errInvalidTimestamp, ts, tb.before, now)
	}
	if tb.after != math.MaxInt64 && ts > now+tb.after {
		return fmt.Errorf("%w: timestamp %d is more than %d ms after the broker's time %d (message.timestamp.after.max.ms)",
			errInvalidTimestamp, ts, tb.after, now)
	}
	return nil
}

// batchCheck is what validating one batch needs to know.
type batchCheck struct {
	createTime bool  // topic uses CreateTime: bound the timestamps
	now        int64 // broker time, ms
	bounds     timestampBounds
	maxInflate int64 // bound on a compressed batch's inflated records
}

// inflaters pools decompressors: a zstd decoder costs hundreds of KiB to
// build, and produce validates every compressed batch.
type inflaters struct {
	zstd sync.Pool // *zstd.Decoder
	gzip sync.Pool // *gzip.Reader
	lz4  sync.Pool // *lz4.Reader
	bufs sync.Pool // *bufio.Reader
	// plain holds buffers of up to maxPooledInflate bytes for raw snappy
	// batches inflated whole (walkSnappy).
	plain sync.Pool // *[]byte
}

// validateBatch checks one batch whose header h has been parsed (and CRC
// checked) by parseBatch. It returns the largest record timestamp, which
// Kafka writes into the stored header for CreateTime topics.
func (in *inflaters) validateBatch(raw []byte, h *recordbatch.Header, c *batchCheck) (maxTS int64, err error) {
	if h.RecordCount <= 0 {
		return 0, fmt.Errorf("%w: record count %d", errInvalidRecord, h.RecordCount)
	}
	if int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		return 0, fmt.Errorf("%w: record count %d does not match lastOffsetDelta %d", errInvalidRecord, h.RecordCount, h.LastOffsetDelta)
	}
	if h.Attributes&recordbatch.AttrControl != 0 {
		return 0, fmt.Errorf("%w: clients may not write control batches", errInvalidRecord)
	}
	if h.ProducerID >= 0 && h.BaseSequence < 0 {
		return 0, fmt.Errorf("%w: producer id %d with sequence %d", errInvalidRecord, h.ProducerID, h.BaseSequence)
	}
	codec := h.Attributes & 0x07
	body := raw[recordbatch.HeaderSize:h.Size]
	if codec == 0 {
		if maxTS, ok := walkPlain(body, h, c); ok {
			return maxTS, nil
		}
		// walkPlain accepts exactly what walkRecords accepts; the general
		// walker runs again on a refused batch only to say why.
		src := recordReader{b: body}
		maxTS, err = walkRecords(&src, h, c)
		if err == nil && len(src.b) != 0 {
			err = fmt.Errorf("%w: %d bytes after the last record", errInvalidRecord, len(src.b))
		}
		return maxTS, err
	}
	if codec == 2 && !recordbatch.IsXerial(body) {
		// Raw snappy (franz-go's default) inflates in one block, which the
		// stream below holds whole too: walk it in place. A refused batch
		// goes through the stream for its error.
		if maxTS, ok := in.walkSnappy(body, h, c); ok {
			return maxTS, nil
		}
	}
	r, done, err := in.open(codec, body, c.maxInflate)
	if err != nil {
		return 0, err
	}
	defer done()
	maxTS, err = walkRecords(&recordReader{br: r}, h, c)
	if err != nil {
		return 0, err
	}
	if _, err := r.ReadByte(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%w: data after the last record", errInvalidRecord)
		}
		return 0, inflateErr(err)
	}
	return maxTS, nil
}

// maxPooledInflate bounds the raw snappy batches walkSnappy inflates whole
// into a pooled buffer. Larger ones (rare: clients cap a batch near 1 MB)
// are left to the stream, so that a batch refused after inflating is never
// inflated twice at a size worth an attacker's while.
const maxPooledInflate = 1 << 20

// walkSnappy inflates a raw snappy batch of at most maxPooledInflate bytes
// (its announced length checked before a buffer is taken) and walks its
// records with walkPlain. It reports only whether the batch is valid; false
// also for a larger batch, which the caller walks from the stream.
func (in *inflaters) walkSnappy(src []byte, h *recordbatch.Header, c *batchCheck) (int64, bool) {
	n, err := snappyLen(src)
	if err != nil || int64(n) > c.maxInflate || n > maxPooledInflate {
		return 0, false
	}
	bp, _ := in.plain.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		// A power of two from 64 KiB: a few sizes serve every batch.
		b := make([]byte, 0, max(64<<10, 1<<bits.Len(uint(n-1))))
		bp = &b
	}
	defer in.plain.Put(bp)
	out, err := snappy.Decode((*bp)[:cap(*bp)], src)
	if err != nil {
		return 0, false
	}
	return walkPlain(out, h, c)
}

// recordReader reads records from an uncompressed batch in place (b) or
// from an inflating stream (br), counting the bytes it consumed. It is one
// concrete type so that the uncompressed path, which every produce takes,
// costs no interface call per byte.
type recordReader struct {
	b  []byte
	br *bufio.Reader
	n  int64
}

// errShort is a record that ends before its fields do.
var errShort = fmt.Errorf("%w: record truncated", errInvalidRecord)

func (r *recordReader) readByte() (byte, error) {
	if r.br != nil {
		c, err := r.br.ReadByte()
		if err == nil {
			r.n++
		}
		return c, err
	}
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	r.n++
	return c, nil
}

// varint reads a zigzag varint (at most 10 bytes).
func (r *recordReader) varint() (int64, error) {
	if r.br == nil {
		v, k := binary.Varint(r.b)
		if k <= 0 {
			return 0, fmt.Errorf("%w: bad varint", errInvalidRecord)
		}
		r.b = r.b[k:]
		r.n += int64(k)
		return v, nil
	}
	var ux uint64
	for shift := uint(0); shift < 70; shift += 7 {
		c, err := r.readByte()
		if err != nil {
			return 0, err
		}
		ux |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(ux>>1) ^ -int64(ux&1), nil
		}
	}
	return 0, fmt.Errorf("%w: bad varint", errInvalidRecord)
}

// skip discards a length-prefixed field of length l (-1 = null) that must
// fit in the left bytes of its record.
func (r *recordReader) skip(l int64, nullable bool, left int64) error {
	if l < -1 || (l == -1 && !nullable) || l > left {
		return fmt.Errorf("%w: field length %d", errInvalidRecord, l)
	}
	if l <= 0 {
		return nil
	}
	if r.br == nil {
		if l > int64(len(r.b)) {
			return errShort
		}
		r.b = r.b[l:]
		r.n += l
		return nil
	}
	n, err := r.br.Discard(int(l))
	r.n += int64(n)
	return err
}

// walkRecords reads the batch's records: each one's length must hold it
// exactly, its offset delta must be its index, its timestamp within bounds.
func walkRecords(cs *recordReader, h *recordbatch.Header, c *batchCheck) (int64, error) {
	maxTS := int64(math.MinInt64)
	for i := int32(0); i < h.RecordCount; i++ {
		l, err := cs.varint()
		if err != nil {
			return 0, recordErr(i, err)
		}
		if l < minRecordBody || l > math.MaxInt32 {
			return 0, fmt.Errorf("%w: record %d has length %d", errInvalidRecord, i, l)
		}
		start := cs.n
		left := func() int64 { return l - (cs.n - start) }
		if _, err := cs.readByte(); err != nil { // attributes
			return 0, recordErr(i, err)
		}
		tsDelta, err := cs.varint()
		if err != nil {
			return 0, recordErr(i, err)
		}
		offDelta, err := cs.varint()
		if err != nil {
			return 0, recordErr(i, err)
		}
		if offDelta != int64(i) {
			return 0, fmt.Errorf("%w: record %d has offset delta %d", errInvalidRecord, i, offDelta)
		}
		ts := h.BaseTimestamp + tsDelta
		if c.createTime {
			if err := c.bounds.check(ts, c.now); err != nil {
				return 0, err
			}
		}
		maxTS = max(maxTS, ts)
		for _, field := range [2]string{"key", "value"} {
			n, err := cs.varint()
			if err != nil {
				return 0, recordErr(i, err)
			}
			if err := cs.skip(n, true, left()); err != nil {
				return 0, recordErr(i, fmt.Errorf("%s: %w", field, err))
			}
		}
		headers, err := cs.varint()
		if err != nil {
			return 0, recordErr(i, err)
		}
		if headers < 0 || headers > left() {
			return 0, fmt.Errorf("%w: record %d has %d headers", errInvalidRecord, i, headers)
		}
		for j := int64(0); j < headers; j++ {
			kl, err := cs.varint()
			if err != nil {
				return 0, recordErr(i, err)
			}
			if err := cs.skip(kl, false, left()); err != nil {
				return 0, recordErr(i, fmt.Errorf("header key: %w", err))
			}
			vl, err := cs.varint()
			if err != nil {
				return 0, recordErr(i, err)
			}
			if err := cs.skip(vl, true, left()); err != nil {
				return 0, recordErr(i, fmt.Errorf("header value: %w", err))
			}
		}
		if left() != 0 {
			return 0, fmt.Errorf("%w: record %d declares %d bytes but holds %d", errInvalidRecord, i, l, cs.n-start)
		}
	}
	return maxTS, nil
}

// walkPlain is walkRecords for an uncompressed batch, the path every
// produce of uncompressed records takes: the same checks (each record's
// length within [minRecordBody, MaxInt32] and holding its fields exactly,
// its offset delta equal to its index, its timestamp within the bounds, key,
// value and header lengths within the record, no bytes after the last
// record) made on the bytes in place, with one-byte varints decoded inline
// and the timestamp bounds computed once per batch. It reports only
// whether the batch is valid (and its largest timestamp): a refused batch
// is walked again by walkRecords for the error, so the two cannot answer
// differently (FuzzWalkPlainAgreesWithWalkRecords).
func walkPlain(b []byte, h *recordbatch.Header, c *batchCheck) (int64, bool) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if c.createTime {
		// The same arithmetic as timestampBounds.check, once per batch.
		if c.bounds.before != math.MaxInt64 {
			lo = c.now - c.bounds.before
		}
		if c.bounds.after != math.MaxInt64 {
			hi = c.now + c.bounds.after
		}
	}
	maxTS := int64(math.MinInt64)
	base := h.BaseTimestamp
	pos := 0
	for i := int32(0); i < h.RecordCount; i++ {
		l, n := varint12(b, pos)
		if n == 0 {
			l, n = varintAt(b, pos)
		}
		if n <= 0 || l < minRecordBody || l > math.MaxInt32 || l > int64(len(b)-pos-n) {
			return 0, false
		}
		// Every read below stays within the record: walkRecords refuses a
		// record whose fields run past its length, and so does this.
		pos += n
		rec := b[pos : pos+int(l)]
		pos += int(l)
		j := 1 // attributes
		tsDelta, n := varint12(rec, j)
		if n == 0 {
			tsDelta, n = varintAt(rec, j)
		}
		if n <= 0 {
			return 0, false
		}
		j += n
		offDelta, n := varint12(rec, j)
		if n == 0 {
			offDelta, n = varintAt(rec, j)
		}
		if n <= 0 || offDelta != int64(i) {
			return 0, false
		}
		j += n
		ts := base + tsDelta
		if ts < lo || ts > hi {
			return 0, false
		}
		maxTS = max(maxTS, ts)
		for range 2 { // key, value: nullable
			fl, n := varint12(rec, j)
			if n == 0 {
				fl, n = varintAt(rec, j)
			}
			if n <= 0 {
				return 0, false
			}
			j += n
			if fl < -1 || fl > int64(len(rec)-j) {
				return 0, false
			}
			if fl > 0 {
				j += int(fl)
			}
		}
		headers, n := varint12(rec, j)
		if n == 0 {
			headers, n = varintAt(rec, j)
		}
		if n <= 0 {
			return 0, false
		}
		j += n
		if headers < 0 || headers > int64(len(rec)-j) {
			return 0, false
		}
		for range headers {
			kl, n := varint12(rec, j)
			if n == 0 {
				kl, n = varintAt(rec, j)
			}
			if n <= 0 {
				return 0, false
			}
			j += n
			if kl < 0 || kl > int64(len(rec)-j) { // header keys are not nullable
				return 0, false
			}
			j += int(kl)
			vl, n := varint12(rec, j)
			if n == 0 {
				vl, n = varintAt(rec, j)
			}
			if n <= 0 {
				return 0, false
			}
			j += n
			if vl < -1 || vl > int64(len(rec)-j) {
				return 0, false
			}
			if vl > 0 {
				j += int(vl)
			}
		}
		if j != len(rec) {
			return 0, false
		}
	}
	return maxTS, pos == len(b)
}

// varint12 decodes a zigzag varint of one or two bytes at b[i:], the
// length of nearly every field of a record; n is 0 for a longer one or
// none (varintAt decodes those). It makes no call, so it is inlined into
// walkPlain's loop, where a call per field was a sixth of a producer's
// CPU at 100-byte records.
func varint12(b []byte, i int) (v int64, n int) {
	var ux uint64
	if uint(i) < uint(len(b)) && b[i] < 0x80 {
		ux, n = uint64(b[i]), 1
	} else if uint(i+1) < uint(len(b)) && b[i+1] < 0x80 {
		ux, n = uint64(b[i]&0x7f)|uint64(b[i+1])<<7, 2
	}
	return int64(ux>>1) ^ -int64(ux&1), n
}

// varintAt decodes the zigzag varint at b[i:] as binary.Varint does,
// returning its value and length (<= 0: truncated or overflowing): the
// fields varint12 does not decode.
func varintAt(b []byte, i int) (int64, int) {
	if i >= len(b) {
		return 0, 0
	}
	return binary.Varint(b[i:])
}

// recordErr wraps a read failure inside record i; a short read or a bad
// varint is an invalid record, an inflation failure keeps its own class.
func recordErr(i int32, err error) error {
	if errors.Is(err, errInflatedTooLarge) || errors.Is(err, errInvalidRecord) {
		return fmt.Errorf("record %d: %w", i, err)
	}
	return fmt.Errorf("%w: record %d: %v", errInvalidRecord, i, err)
}

func inflateErr(err error) error {
	if errors.Is(err, errInflatedTooLarge) || errors.Is(err, errInvalidRecord) {
		return err
	}
	return fmt.Errorf("%w: %v", errInvalidRecord, err)
}

// boundedReader fails once more than n bytes have been read through it.
type boundedReader struct {
	r io.Reader
	n int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if b.n < 0 {
		return n, errInflatedTooLarge
	}
	return n, err
}

// open returns a reader of the inflated records of a compressed batch,
// failing past limit bytes, and a function that returns its parts to the
// pools.
func (in *inflaters) open(codec int16, src []byte, limit int64) (*bufio.Reader, func(), error) {
	var r io.Reader
	var release func()
	switch codec {
	case 1:
		zr, _ := in.gzip.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", errInvalidRecord, err)
		}
		r, release = zr, func() { in.gzip.Put(zr) }
	case 2:
		sr, err := newSnappyReader(src, limit)
		if err != nil {
			return nil, nil, err
		}
		r = sr
	case 3:
		lr, _ := in.lz4.Get().(*lz4.Reader)
		if lr == nil {
			lr = lz4.NewReader(bytes.NewReader(src))
		} else {
			lr.Reset(bytes.NewReader(src))
		}
		r, release = lr, func() { in.lz4.Put(lr) }
	case 4:
		zr, _ := in.zstd.Get().(*zstd.Decoder)
		var err error
		if zr == nil {
			// The window bounds the decoder's own buffers; the inflated
			// size is bounded by the reader below.
			zr, err = zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(zstdMaxWindow), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %v", errInvalidRecord, err)
		}
		r, release = zr, func() { _ = zr.Reset(nil); in.zstd.Put(zr) }
	default:
		return nil, nil, fmt.Errorf("%w: unknown compression codec %d", errInvalidRecord, codec)
	}
	bounded := &boundedReader{r: r, n: limit}
	br, _ := in.bufs.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(bounded, 4096)
	} else {
		br.Reset(bounded)
	}
	return br, func() {
		br.Reset(nil)
		in.bufs.Put(br)
		if release != nil {
			release()
		}
	}, nil
}

// snappyReader inflates raw snappy or the Java client's xerial framing one
// block at a time; each block's announced size is checked against what is
// left of the bound before its buffer is allocated.
type snappyReader struct {
	src    []byte
	xerial bool
	left   int64
	out    []byte
}

// snappyMaxRatio bounds what a snappy block can inflate to: its densest
// element, a copy with a two-byte offset, writes 64 bytes for 3.
const snappyMaxRatio = 22

// snappyLen returns the inflated length a snappy block announces, refusing
// one that announces more than its bytes can encode: the buffer it is
// inflated into is sized by that number before a byte is inflated, so a
// 10-byte block claiming the whole inflate bound would take that much
// memory for nothing.
func snappyLen(block []byte) (int, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return 0, fmt.Errorf("%w: snappy: %v", errInvalidRecord, err)
	}
	if n > snappyMaxRatio*len(block) {
		return 0, fmt.Errorf("%w: snappy: block of %d bytes announces %d inflated, more than it can encode", errInvalidRecord, len(block), n)
	}
	return n, nil
}

func newSnappyReader(src []byte, limit int64) (*snappyReader, error) {
	s := &snappyReader{src: src, left: limit}
	if recordbatch.IsXerial(src) {
		chunks, err := recordbatch.XerialChunks(src)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errInvalidRecord, err)
		}
		s.src, s.xerial = chunks, true
	}
	return s, nil
}

func (s *snappyReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if len(s.src) == 0 {
			return 0, io.EOF
		}
		block := s.src
		if s.xerial {
			var err error
			if block, s.src, err = recordbatch.NextXerialBlock(s.src); err != nil {
				return 0, fmt.Errorf("%w: %v", errInvalidRecord, err)
			}
		} else {
			s.src = nil
		}
		n, err := snappyLen(block)
		if err != nil {
			return 0, err
		}
		if int64(n) > s.left {
			return 0, errInflatedTooLarge
		}
		s.left -= int64(n)
		if s.out, err = snappy.Decode(s.out[:cap(s.out)], block); err != nil {
			return 0, fmt.Errorf("%w: snappy: %v", errInvalidRecord, err)
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// defaultTimestampAfterMax is Kafka 4.0's message.timestamp.after.max.ms.
const defaultTimestampAfterMax = time.Hour

// timestampBoundsOf reads the configured bounds (zero: the default,
// negative: unbounded).
func timestampBoundsOf(before, after time.Duration) timestampBounds {
	ms := func(d, def time.Duration) int64 {
		switch {
		case d == 0 && def == 0, d < 0:
			return math.MaxInt64
		case d == 0:
			return def.Milliseconds()
		}
		return d.Milliseconds()
	}
	return timestampBounds{before: ms(before, 0), after: ms(after, defaultTimestampAfterMax)}
}

// MillisOrOff converts a limit in milliseconds where -1 means off into a
// Config duration (negative: unbounded).
func MillisOrOff(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

package broker

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// FuzzWalkPlainAgreesWithWalkRecords: the uncompressed fast path
// (walkPlain) accepts exactly the records the general walker
// (walkRecords, which also walks inflated batches) accepts, with the same
// largest timestamp, whatever the bytes, record count, timestamps and
// bounds. validateBatch answers a batch walkPlain refuses with
// walkRecords' error, so agreeing here means the produce answers did not
// change.
func FuzzWalkPlainAgreesWithWalkRecords(f *testing.F) {
	const now = 1_700_000_000_000
	body := func(raw []byte) []byte { return raw[recordbatch.HeaderSize:] }
	f.Add(body(testBatch(3, now, "v")), uint16(3), int64(now), true, int64(now), int64(-1), int64(0))
	f.Add(body(testBatch(2, now, string(make([]byte, 300)))), uint16(2), int64(now), true, int64(now), int64(1000), int64(1000))
	f.Add(body(testBatch(2, now, "xy")), uint16(2), int64(now-5000), true, int64(now), int64(1000), int64(-1))
	f.Add(body(testBatch(1, now, "")), uint16(1), int64(now), false, int64(now), int64(0), int64(0))
	// A record with a key and two headers (one null value), then a byte too many.
	var r []byte
	r = append(r, 0)
	r = binary.AppendVarint(r, 7)
	r = binary.AppendVarint(r, 0)
	r = binary.AppendVarint(r, 1)
	r = append(r, 'k')
	r = binary.AppendVarint(r, -1)
	r = binary.AppendVarint(r, 2)
	r = binary.AppendVarint(r, 2)
	r = append(r, "h1"...)
	r = binary.AppendVarint(r, 1)
	r = append(r, 'v')
	r = binary.AppendVarint(r, 1)
	r = append(r, 'h')
	r = binary.AppendVarint(r, -1)
	rec := binary.AppendVarint(nil, int64(len(r)))
	rec = append(rec, r...)
	f.Add(rec, uint16(1), int64(now), true, int64(now), int64(-1), int64(0))
	f.Add(append(rec, 0), uint16(1), int64(now), true, int64(now), int64(-1), int64(0))
	f.Add([]byte{0x8c, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, uint16(1), int64(0), false, int64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, count uint16, baseTS int64, createTime bool, nowMS, before, after int64) {
		h := recordbatch.Header{RecordCount: int32(count%64) + 1, BaseTimestamp: baseTS}
		c := batchCheck{createTime: createTime, now: nowMS, bounds: timestampBounds{before: before, after: after}}
		if before < 0 {
			c.bounds.before = math.MaxInt64
		}
		if after < 0 {
			c.bounds.after = math.MaxInt64
		}
		fast, ok := walkPlain(b, &h, &c)
		src := recordReader{b: b}
		slow, err := walkRecords(&src, &h, &c)
		slowOK := err == nil && len(src.b) == 0
		if ok != slowOK {
			t.Fatalf("walkPlain ok=%v, walkRecords err=%v (%d bytes left)", ok, err, len(src.b))
		}
		if ok && fast != slow {
			t.Fatalf("max timestamp: walkPlain %d, walkRecords %d", fast, slow)
		}
	})
}

// FuzzWalkSnappyAgreesWithStream: a raw snappy batch walked whole
// (walkSnappy) is accepted exactly when the streaming inflater and
// walkRecords accept it, with the same largest timestamp, for records
// compressed by the test and for arbitrary bytes taken as compressed
// data, under a small inflate bound too.
func FuzzWalkSnappyAgreesWithStream(f *testing.F) {
	const now = 1_700_000_000_000
	f.Add(testBatch(3, now, "v")[recordbatch.HeaderSize:], uint16(3), true, int64(1<<20))
	f.Add(testBatch(40, now, string(make([]byte, 100)))[recordbatch.HeaderSize:], uint16(40), true, int64(1<<20))
	f.Add(testBatch(40, now, string(make([]byte, 100)))[recordbatch.HeaderSize:], uint16(40), true, int64(100))
	f.Add([]byte{0x05, 0x10, 0x00, 0x01}, uint16(1), false, int64(1<<20))
	var in inflaters // its pools are shared by the runs, as by produce requests
	f.Fuzz(func(t *testing.T, b []byte, count uint16, encode bool, limit int64) {
		src := b
		if encode {
			src = s2.EncodeSnappy(nil, b)
		}
		if recordbatch.IsXerial(src) {
			return // the xerial framing is not walked whole
		}
		// The bound below keeps every batch within maxPooledInflate, which
		// walkSnappy walks whole.
		h := recordbatch.Header{RecordCount: int32(count%64) + 1, BaseTimestamp: now}
		c := batchCheck{createTime: true, now: now, bounds: timestampBoundsOf(0, 0), maxInflate: min(max(limit, 0), 256<<10)}
		fast, ok := in.walkSnappy(src, &h, &c)
		slowOK := false
		var slow int64
		r, done, err := in.open(2, src, c.maxInflate)
		if err == nil {
			slow, err = walkRecords(&recordReader{br: r}, &h, &c)
			if err == nil {
				_, eof := r.ReadByte()
				slowOK = eof == io.EOF
			}
			done()
		}
		if ok != slowOK {
			t.Fatalf("walkSnappy ok=%v, stream ok=%v (err %v)", ok, slowOK, err)
		}
		if ok && fast != slow {
			t.Fatalf("max timestamp: walkSnappy %d, stream %d", fast, slow)
		}
	})
}

// TestWalkSnappyKeepsOnlySmallBuffers: raw snappy batches up to
// maxPooledInflate bytes inflated are walked whole (walkSnappy), larger
// ones are left to the stream (and still accepted by validateBatch), past
// the inflate bound refused; no buffer larger than maxPooledInflate is kept
// for the next batch.
func TestWalkSnappyKeepsOnlySmallBuffers(t *testing.T) {
	const now = 1_700_000_000_000
	for _, tc := range []struct {
		name      string
		records   int
		value     int
		bound     int64
		whole     bool  // walkSnappy accepts it
		validated error // validateBatch's answer
	}{
		{"100 B records, walked whole", 1000, 100, minInflateBound, true, nil},
		{"2 MB batch, left to the stream", 2000, 1024, minInflateBound, false, nil},
		{"past the inflate bound", 2000, 1024, 1 << 20, false, errInflatedTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := testBatch(tc.records, now, string(make([]byte, tc.value)))
			src := s2.EncodeSnappy(nil, raw[recordbatch.HeaderSize:])
			h, err := parseBatch(raw)
			if err != nil {
				t.Fatal(err)
			}
			h.Attributes |= 2
			c := batchCheck{createTime: true, now: now, bounds: timestampBoundsOf(0, 0), maxInflate: tc.bound}
			var in inflaters
			maxTS, ok := in.walkSnappy(src, &h, &c)
			if ok != tc.whole || (ok && maxTS != now) {
				t.Fatalf("walkSnappy = %d, %v; want %v with max timestamp %d", maxTS, ok, tc.whole, now)
			}
			if bp, _ := in.plain.Get().(*[]byte); bp != nil && cap(*bp) > maxPooledInflate {
				t.Fatalf("pooled a buffer of %d bytes (max %d)", cap(*bp), maxPooledInflate)
			}
			batch := append(append([]byte(nil), raw[:recordbatch.HeaderSize]...), src...)
			h.Size = len(batch)
			_, err = in.validateBatch(batch, &h, &c)
			if (tc.validated == nil) != (err == nil) || (tc.validated != nil && !errors.Is(err, tc.validated)) {
				t.Fatalf("validateBatch: %v, want %v", err, tc.validated)
			}
		})
	}
}

// TestSnappyLenRefusesImpossibleLengths: a snappy block is refused when it
// announces more inflated bytes than its own bytes can encode (its buffer
// would be sized by that number first), and real blocks at the densest
// ratio the encoder reaches (all zeros) pass.
func TestSnappyLenRefusesImpossibleLengths(t *testing.T) {
	zeros := s2.EncodeSnappy(nil, make([]byte, 4<<20))
	if n, err := snappyLen(zeros); err != nil || n != 4<<20 {
		t.Fatalf("4 MiB of zeros (%d bytes encoded): %d, %v", len(zeros), n, err)
	}
	// The varint length 1 MiB, then one literal byte: 5 bytes claiming 1 MiB.
	lie := binary.AppendUvarint(nil, 1<<20)
	lie = append(lie, 0, 'x')
	if _, err := snappyLen(lie); !errors.Is(err, errInvalidRecord) {
		t.Fatalf("a %d-byte block announcing 1 MiB: %v, want invalid record", len(lie), err)
	}
	var in inflaters
	c := batchCheck{maxInflate: 64 << 20}
	if _, ok := in.walkSnappy(lie, &recordbatch.Header{}, &c); ok {
		t.Fatal("walkSnappy accepted the lying block")
	}
	if bp, _ := in.plain.Get().(*[]byte); bp != nil {
		t.Fatalf("walkSnappy took a buffer of %d bytes for it", cap(*bp))
	}
}

package broker

import (
	"encoding/binary"
	"math"
	"testing"

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

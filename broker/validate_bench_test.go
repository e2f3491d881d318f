package broker

import (
	"testing"
	"time"
)

// BenchmarkValidateBatch measures produce validation of a 1000-record
// batch of 1 KiB values, uncompressed and zstd (what it adds per batch),
// and of a 1000-record batch of 100 B values, where the per-record walk
// dominates (issue 17: produce 100 B).
func BenchmarkValidateBatch(b *testing.B) {
	now := time.Now().UnixMilli()
	plain := testBatch(1000, now, string(make([]byte, 1024)))
	small := testBatch(1000, now, string(make([]byte, 100)))
	t := &testing.T{}
	zstdBatch := compressBatch(t, plain, 4, nil)
	snappySmall := compressBatch(t, small, 2, nil)
	for _, c := range []struct {
		name     string
		raw      []byte
		inflated int // bytes of records the walk reads
	}{{"uncompressed", plain, len(plain)}, {"zstd", zstdBatch, len(plain)}, {"uncompressed-100B", small, len(small)}, {"snappy-100B", snappySmall, len(small)}} {
		b.Run(c.name, func(b *testing.B) {
			var in inflaters
			check := batchCheck{createTime: true, now: now, bounds: timestampBoundsOf(0, 0), maxInflate: minInflateBound}
			h, err := parseBatch(c.raw)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(c.inflated))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.validateBatch(c.raw, &h, &check); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseAndValidate100B is the whole per-batch check produce makes
// for a 1000-record batch of 100 B values: header and CRC32C
// (parseBatch), then the records (validateBatch).
func BenchmarkParseAndValidate100B(b *testing.B) {
	now := time.Now().UnixMilli()
	raw := testBatch(1000, now, string(make([]byte, 100)))
	var in inflaters
	check := batchCheck{createTime: true, now: now, bounds: timestampBoundsOf(0, 0), maxInflate: minInflateBound}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := parseBatch(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := in.validateBatch(raw, &h, &check); err != nil {
			b.Fatal(err)
		}
	}
}

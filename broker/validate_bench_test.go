package broker

import (
	"testing"
	"time"
)

// BenchmarkValidateBatch measures produce validation of a 1000-record
// batch of 1 KiB values, uncompressed and zstd (what it adds per batch).
func BenchmarkValidateBatch(b *testing.B) {
	now := time.Now().UnixMilli()
	plain := testBatch(1000, now, string(make([]byte, 1024)))
	t := &testing.T{}
	zstdBatch := compressBatch(t, plain, 4, nil)
	for _, c := range []struct {
		name string
		raw  []byte
	}{{"uncompressed", plain}, {"zstd", zstdBatch}} {
		b.Run(c.name, func(b *testing.B) {
			var in inflaters
			check := batchCheck{createTime: true, now: now, bounds: timestampBoundsOf(0, 0), maxInflate: minInflateBound}
			h, err := parseBatch(c.raw)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.validateBatch(c.raw, &h, &check); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

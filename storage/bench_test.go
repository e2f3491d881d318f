package storage

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkAppend appends one stamped batch per op (fsync never: the cost
// of the write path itself).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			l, _ := openLog(b, b.TempDir(), func(o *Options) { o.IndexIntervalBytes = DefaultIndexIntervalBytes })
			raw, info := testBatch(0, 1, 1, make([]byte, size))
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				info.Base, info.Last = int64(i), int64(i)
				binary.BigEndian.PutUint64(raw, uint64(i)) // as the broker stamps it
				if err := l.Append(raw, info, 1<<30); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead reads 1 MiB fetches from random offsets of a 64 MiB log
// (from the page cache).
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			l, _ := openLog(b, b.TempDir(), func(o *Options) { o.IndexIntervalBytes = DefaultIndexIntervalBytes })
			raw, info := testBatch(0, 1, 1, make([]byte, size))
			n := (64 << 20) / len(raw)
			for i := 0; i < n; i++ {
				info.Base, info.Last = int64(i), int64(i)
				binary.BigEndian.PutUint64(raw, uint64(i)) // as the broker stamps it
				if err := l.Append(raw, info, 16<<20); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				off := int64((i * 7919) % n)
				out, err := l.Read(off, 1<<20, true)
				if err != nil || len(out) == 0 {
					b.Fatal(err, len(out))
				}
			}
		})
	}
}

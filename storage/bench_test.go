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

// BenchmarkOpen measures recovery (Open of an existing partition log) for
// logs of 64 MiB and 512 MiB in 64 MiB segments: only the tail of the last
// segment is scanned, so the time should not grow with the data (the
// README's start-up claim). Each op closes and reopens the same log.
func BenchmarkOpen(b *testing.B) {
	for _, total := range []int64{64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("log=%dMiB", total>>20), func(b *testing.B) {
			dir := b.TempDir()
			opts := func(o *Options) { o.IndexIntervalBytes = DefaultIndexIntervalBytes }
			l, _ := openLog(b, dir, opts)
			raw, info := testBatch(0, 1, 1, make([]byte, 10_000))
			for i := int64(0); i*int64(len(raw)) < total; i++ {
				info.Base, info.Last = i, i
				binary.BigEndian.PutUint64(raw, uint64(i))
				if err := l.Append(raw, info, 64<<20); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o := Options{Dir: dir, Name: "t[0]", Logger: quiet()}
				opts(&o)
				l, _, err := Open(o)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				l.Close()
				b.StartTimer()
			}
		})
	}
}

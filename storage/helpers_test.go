package storage

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testBatch builds a stamped v2 batch of n records at base, timestamped ts.
func testBatch(base int64, n int, ts int64, value []byte) ([]byte, Batch) {
	var recs []byte
	for i := 0; i < n; i++ {
		var r []byte
		r = append(r, 0)
		r = binary.AppendVarint(r, 0)
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, -1)
		r = binary.AppendVarint(r, int64(len(value)))
		r = append(r, value...)
		r = binary.AppendVarint(r, 0)
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: base, Magic: 2, LastOffsetDelta: int32(n - 1),
		FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(n), Records: recs,
	}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	info, err := ParseBatch(raw)
	if err != nil {
		panic(err)
	}
	return raw, info
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openLog(t testing.TB, dir string, mod func(*Options)) (*Log, Recovery) {
	t.Helper()
	o := Options{Dir: dir, Name: "t[0]", Logger: quiet(), IndexIntervalBytes: 256}
	if mod != nil {
		mod(&o)
	}
	l, rec, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, rec
}

// appendN appends count batches of per records each and returns them.
func appendN(t testing.TB, l *Log, count, per int, ts int64, segBytes int64) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < count; i++ {
		raw, info := testBatch(l.Stats().Next, per, ts, bytes.Repeat([]byte{byte(i)}, 50))
		if err := l.Append(raw, info, segBytes); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, raw)
	}
	return out
}

// readAll reads every batch from offset on, one Read at a time.
func readAll(t testing.TB, l *Log, from int64) []byte {
	t.Helper()
	var all []byte
	off := from
	for off < l.Stats().Next {
		b, err := l.Read(off, 1000, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		if len(b) == 0 {
			t.Fatalf("read %d: nothing before the end %d", off, l.Stats().Next)
		}
		all = append(all, b...)
		for len(b) > 0 {
			info, err := ParseBatch(b)
			if err != nil {
				t.Fatalf("read %d: %v", off, err)
			}
			off = info.Last + 1
			b = b[info.Size:]
		}
	}
	return all
}

var _ = time.Now

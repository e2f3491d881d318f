package httpapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/limits"
)

// hostileBatch wraps records (as stored, compressed with codec) in a v2
// batch header with a valid CRC.
func hostileBatch(codec int16, records []byte, n int32) []byte {
	b := make([]byte, recordbatch.HeaderSize, recordbatch.HeaderSize+len(records))
	binary.BigEndian.PutUint32(b[recordbatch.OffLength:], uint32(recordbatch.HeaderSize-recordbatch.LengthPrefix+len(records)))
	b[recordbatch.OffMagic] = 2
	binary.BigEndian.PutUint16(b[recordbatch.OffAttributes:], uint16(codec))
	binary.BigEndian.PutUint32(b[recordbatch.OffLastOffsetDelta:], uint32(n-1))
	binary.BigEndian.PutUint32(b[recordbatch.OffRecordCount:], uint32(n))
	b = append(b, records...)
	recordbatch.SetCRC(b)
	return b
}

func record(value []byte) []byte {
	r := kmsg.Record{Value: value}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	return r.AppendTo(nil)
}

func compressed(t testing.TB, codec int16, b []byte) []byte {
	var out bytes.Buffer
	switch codec {
	case 1:
		w := gzip.NewWriter(&out)
		_, _ = w.Write(b)
		_ = w.Close()
	case 2:
		return snappy.Encode(nil, b)
	case 3:
		w := lz4.NewWriter(&out)
		_, _ = w.Write(b)
		_ = w.Close()
	case 4:
		e, _ := zstd.NewWriter(nil)
		defer e.Close()
		return e.EncodeAll(b, nil)
	default:
		return b
	}
	return out.Bytes()
}

// decodeAll runs a decoder with a budget of budget bytes and an answer cap
// of maxOut, and checks that everything charged comes back.
func decodeAll(t *testing.T, raw []byte, maxOut, budget int64) ([]string, error) {
	t.Helper()
	b := limits.NewBudget(budget, 0)
	ch := &charge{b: b}
	d := &batchDecoder{ch: ch, maxOut: maxOut}
	var got []string
	err := d.decode(raw, 0, func(_ int64, _, v []byte) bool {
		got = append(got, string(v))
		return true
	})
	if held := ch.held.Load(); held != b.Used() || held < 0 {
		t.Fatalf("charge holds %d, budget used %d", held, b.Used())
	}
	ch.release()
	if b.Used() != 0 {
		t.Fatalf("budget holds %d after release", b.Used())
	}
	return got, err
}

// TestDecodeHostileStoredBatches: every decompressor validates lengths
// before slicing. A batch that cannot be decoded is a *corruptBatchError
// naming its offsets, a bomb is a *bigBatchError (or errBudget), and none
// panics.
func TestDecodeHostileStoredBatches(t *testing.T) {
	t.Parallel()
	bigZeros := make([]byte, 64<<20)
	xerial := func(chunks ...[]byte) []byte {
		b := append([]byte{}, recordbatch.XerialMagic...)
		b = append(b, 0, 0, 0, 1, 0, 0, 0, 1)
		for _, c := range chunks {
			b = append(b, c...)
		}
		return b
	}
	be32 := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cases := []struct {
		name    string
		batch   []byte
		want    string // "ok", "corrupt", "big" or "budget"
		records int
	}{
		{"snappy: only the xerial magic (issue 14's poison)", hostileBatch(2, []byte(recordbatch.XerialMagic), 1), "corrupt", 0},
		{"snappy: xerial header cut after 12 bytes", hostileBatch(2, xerial()[:12], 1), "corrupt", 0},
		{"snappy: xerial chunk length of 2 bytes", hostileBatch(2, append(xerial(), 0, 1), 1), "corrupt", 0},
		{"snappy: xerial chunk claims 4 GiB", hostileBatch(2, xerial(be32(0xffffffff), []byte{1, 2, 3}), 1), "corrupt", 0},
		{"snappy: xerial chunk of garbage", hostileBatch(2, xerial(be32(3), []byte{0xff, 0xff, 0xff}), 1), "corrupt", 0},
		{"snappy: block claiming 4 GiB", hostileBatch(2, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0}, 1), "big", 0},
		{"snappy: good xerial", hostileBatch(2, xerial(be32(uint32(len(compressed(t, 2, record([]byte("x")))))), compressed(t, 2, record([]byte("x")))), 1), "ok", 1},
		{"gzip: garbage", hostileBatch(1, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2}, 1), "corrupt", 0},
		{"gzip: 64 MiB bomb", hostileBatch(1, compressed(t, 1, bigZeros), 1), "big", 0},
		{"lz4: garbage", hostileBatch(3, []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x70, 0xb9, 0xff, 0xff, 0xff, 0x7f}, 1), "corrupt", 0},
		{"lz4: 64 MiB bomb", hostileBatch(3, compressed(t, 3, bigZeros), 1), "big", 0},
		{"zstd: garbage", hostileBatch(4, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff}, 1), "corrupt", 0},
		{"zstd: 64 MiB bomb", hostileBatch(4, compressed(t, 4, bigZeros), 1), "big", 0},
		{"zstd: good", hostileBatch(4, compressed(t, 4, record([]byte("z"))), 1), "ok", 1},
		{"unknown codec 6", hostileBatch(6, []byte{1, 2, 3}, 1), "corrupt", 0},
		{"record length past the batch", hostileBatch(0, []byte{0x7e, 0, 0, 0}, 1), "corrupt", 0},
		{"record key length past the record", hostileBatch(0, []byte{0x0a, 0, 0, 0, 0x7e, 0, 0}, 1), "corrupt", 0},
		{"record value length -2", hostileBatch(0, []byte{0x08, 0, 0, 0, 1, 3, 0, 0}, 1), "corrupt", 0},
		{"record count claims 2^31-1 with one record", hostileBatch(0, record([]byte("v")), 1<<31-1), "ok", 1},
		{"batch length below the header", append(hostileBatch(0, record(nil), 1)[:8], 0, 0, 0, 1), "ok", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeAll(t, c.batch, 16<<20, 1<<30)
			var corrupt *corruptBatchError
			var big *bigBatchError
			switch c.want {
			case "ok":
				if err != nil {
					t.Fatalf("err %v", err)
				}
			case "corrupt":
				if !errors.As(err, &corrupt) || corrupt.base != 0 || corrupt.next != 1 {
					t.Fatalf("err %v, want a corrupt batch at 0 (next 1)", err)
				}
			case "big":
				if !errors.As(err, &big) {
					t.Fatalf("err %v, want a batch too big", err)
				}
			}
			if len(got) != c.records {
				t.Fatalf("%d records, want %d", len(got), c.records)
			}
		})
	}
}

// TestDecodeRefusesWhatTheBudgetCannotHold: a batch inflating to 8 MiB
// under a 4 MiB budget is errBudget, nothing stays charged.
func TestDecodeRefusesWhatTheBudgetCannotHold(t *testing.T) {
	t.Parallel()
	for _, codec := range []int16{1, 2, 3, 4} {
		batch := hostileBatch(codec, compressed(t, codec, record(make([]byte, 8<<20))), 1)
		if _, err := decodeAll(t, batch, 16<<20, 4<<20); !errors.Is(err, errBudget) {
			t.Fatalf("codec %d: err %v, want errBudget", codec, err)
		}
	}
}

// TestDecodeCorruptBatchAfterGoodOnes: records before a corrupt batch are
// answered; the corrupt batch is reported by the fetch that starts at it.
func TestDecodeCorruptBatchAfterGoodOnes(t *testing.T) {
	good := hostileBatch(0, record([]byte("a")), 1)
	bad := hostileBatch(2, []byte(recordbatch.XerialMagic), 1)
	binary.BigEndian.PutUint64(bad, 1)
	got, err := decodeAll(t, append(append([]byte{}, good...), bad...), 16<<20, 1<<30)
	if err != nil || len(got) != 1 || got[0] != "a" {
		t.Fatalf("good then bad: %q %v", got, err)
	}
	_, err = decodeAll(t, bad, 16<<20, 1<<30)
	var corrupt *corruptBatchError
	if !errors.As(err, &corrupt) || corrupt.base != 1 || corrupt.next != 2 {
		t.Fatalf("bad alone: %v", err)
	}
}

// FuzzDecodeStoredBatches: no input makes the REST record decoder panic,
// emit a record outside its input, or keep a charge.
func FuzzDecodeStoredBatches(f *testing.F) {
	f.Add(hostileBatch(2, []byte(recordbatch.XerialMagic), 1))
	f.Add(hostileBatch(0, record([]byte("v")), 1))
	for _, codec := range []int16{1, 2, 3, 4} {
		f.Add(hostileBatch(codec, compressed(f, codec, record([]byte("fuzz"))), 1))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := limits.NewBudget(64<<20, 0)
		ch := &charge{b: b}
		d := &batchDecoder{ch: ch, maxOut: 1 << 20}
		_ = d.decode(raw, 0, func(off int64, k, v []byte) bool {
			if len(k) > 1<<20 || len(v) > 1<<20 {
				t.Fatalf("record of %d+%d bytes from a 1 MiB cap", len(k), len(v))
			}
			checkRecordJSON(t, k, v, off)
			return true
		})
		if ch.held.Load() != b.Used() {
			t.Fatalf("charge %d, budget %d", ch.held.Load(), b.Used())
		}
		ch.release()
		if b.Used() != 0 {
			t.Fatalf("budget holds %d after release", b.Used())
		}
	})
}

// TestBuildBatchIsWhatKafkaReads: a built batch parses with kmsg, its CRC
// holds, and its records (null, empty and non-empty keys and values) read
// back as written.
func TestBuildBatchIsWhatKafkaReads(t *testing.T) {
	recs := []recordbatch.Record{{Value: []byte("v0"), Timestamp: 1234}, {Key: []byte("k1"), Timestamp: 1234}, {Key: []byte{}, Value: []byte{}, Timestamp: 1234}, {Key: []byte("k3"), Value: bytes.Repeat([]byte("x"), 300), Timestamp: 1234}}
	raw := recordbatch.Build(recs)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	if rb.NumRecords != 4 || rb.LastOffsetDelta != 3 || rb.FirstTimestamp != 1234 || rb.ProducerID != -1 ||
		int(rb.Length) != len(raw)-12 || uint32(rb.CRC) != recordbatch.CRC(raw) {
		t.Fatalf("header %+v", rb)
	}
	var i int
	_, err := decodeAll(t, raw, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	d := &batchDecoder{ch: &charge{b: limits.NewBudget(1<<20, 0)}, maxOut: 1 << 20}
	_ = d.decode(raw, 0, func(off int64, k, v []byte) bool {
		if off != int64(i) || (k == nil) != (recs[i].Key == nil) || (v == nil) != (recs[i].Value == nil) ||
			!bytes.Equal(k, recs[i].Key) || !bytes.Equal(v, recs[i].Value) {
			t.Fatalf("record %d: offset %d key %q value %q", i, off, k, v)
		}
		i++
		return true
	})
	if i != 4 {
		t.Fatalf("%d records read back", i)
	}
}

// checkRecordJSON: a record's JSON, in both formats, is valid and no longer
// than recordJSONBound says (the answer's size checks rely on it).
func checkRecordJSON(t *testing.T, k, v []byte, off int64) {
	for _, asJSON := range []bool{false, true} {
		out := appendRecordJSON(nil, "a-topic", k, v, 2147483647, off, asJSON)
		if bound := recordJSONBound("a-topic", k, v, asJSON); int64(len(out)) > bound {
			t.Fatalf("JSON of %d bytes over its bound %d (json %v)", len(out), bound, asJSON)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	}
}

// TestRecordJSONBound: keys and values that need escaping, invalid UTF-8,
// U+2028 and JSON documents are rendered as valid JSON within the bound.
func TestRecordJSONBound(t *testing.T) {
	for _, v := range [][]byte{nil, {}, []byte(`{"a": [1, 2]}`), []byte(" 12 "), []byte("text \"q\" \\ \n\t\x01"),
		{0xff, 0xfe, 'a'}, []byte("\u2028\u2029é"), bytes.Repeat([]byte{0}, 100)} {
		checkRecordJSON(t, v, v, 1<<40)
	}
}

package recordbatch_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// TestBuildIsWhatKafkaReads: a built batch parses with kmsg (franz-go's
// reading of the protocol), its header reads back through ReadHeader and
// Check, and its records through NextRecord.
func TestBuildIsWhatKafkaReads(t *testing.T) {
	recs := []recordbatch.Record{{Value: []byte("v0"), Timestamp: 1234}, {Key: []byte("k1"), Timestamp: 1234}, {Key: []byte{}, Value: []byte{}, Timestamp: 1234}, {Key: []byte("k3"), Value: bytes.Repeat([]byte("x"), 300), Timestamp: 1234}}
	raw := recordbatch.Build(recs)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.Check(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != len(raw) || int(rb.Length) != len(raw)-recordbatch.LengthPrefix || uint32(rb.CRC) != recordbatch.CRC(raw) ||
		h.RecordCount != rb.NumRecords || h.LastOffsetDelta != rb.LastOffsetDelta || h.BaseTimestamp != rb.FirstTimestamp ||
		h.MaxTimestamp != rb.MaxTimestamp || h.ProducerID != rb.ProducerID || h.ProducerEpoch != rb.ProducerEpoch ||
		h.BaseSequence != rb.FirstSequence || h.LeaderEpoch != rb.PartitionLeaderEpoch || h.Attributes != rb.Attributes {
		t.Fatalf("header %+v, kmsg %+v", h, rb)
	}
	rest := raw[recordbatch.HeaderSize:]
	for i, want := range recs {
		delta, k, v, next, err := recordbatch.NextRecord(rest)
		if err != nil || int(delta) != i || !bytes.Equal(k, want.Key) || !bytes.Equal(v, want.Value) ||
			(k == nil) != (want.Key == nil) || (v == nil) != (want.Value == nil) {
			t.Fatalf("record %d: delta %d key %q value %q err %v", i, delta, k, v, err)
		}
		rest = next
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the last record", len(rest))
	}
}

// TestCheckRefusesDamage: each kind of damage is caught, with the error
// that names it.
func TestCheckRefusesDamage(t *testing.T) {
	good := recordbatch.Build([]recordbatch.Record{{Value: []byte("hello"), Timestamp: 1}})
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"a record byte flipped", func(b []byte) []byte { b[len(b)-2] ^= 1; return b }, recordbatch.ErrCorrupt},
		{"an attribute flipped", func(b []byte) []byte { b[recordbatch.OffAttributes+1] ^= 1; return b }, recordbatch.ErrCorrupt},
		{"magic 1", func(b []byte) []byte { b[recordbatch.OffMagic] = 1; return b }, recordbatch.ErrMagic},
		{"cut short", func(b []byte) []byte { return b[:len(b)-1] }, recordbatch.ErrCorrupt},
		{"shorter than a header", func(b []byte) []byte { return b[:recordbatch.HeaderSize-1] }, recordbatch.ErrCorrupt},
		{"length below the header", func(b []byte) []byte { b[recordbatch.OffLength+3] = 10; return b }, recordbatch.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := recordbatch.Check(tc.damage(bytes.Clone(good))); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := recordbatch.Check(good); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
}

// TestNextRecordRefusesLengthsPastTheEnd: every length a record carries is
// checked against the bytes that remain.
func TestNextRecordRefusesLengthsPastTheEnd(t *testing.T) {
	recs := recordbatch.Build([]recordbatch.Record{{Key: []byte("key"), Value: []byte("value"), Timestamp: 1, Headers: [][2][]byte{{[]byte("h"), []byte("v")}}}})[recordbatch.HeaderSize:]
	for cut := 0; cut < len(recs); cut++ {
		if _, _, _, _, err := recordbatch.NextRecord(recs[:cut]); err == nil {
			t.Fatalf("record cut to %d of %d bytes parsed", cut, len(recs))
		}
	}
}

package loop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/loop"
)

func TestCompressionCodecsRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "codec-" + tc.name
			prod := newClient(t, srv.KafkaAddr(), kgo.ProducerBatchCompression(tc.codec), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
			var recs []*kgo.Record
			for i := 0; i < 200; i++ {
				recs = append(recs, &kgo.Record{Value: bytes.Repeat([]byte{byte(i)}, 100+i)})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cons := newClient(t, srv.KafkaAddr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			n := 0
			for n < len(recs) {
				fs := cons.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if !bytes.Equal(r.Value, recs[n].Value) {
						t.Fatalf("record %d differs", n)
					}
					n++
				})
			}
		})
	}
}

func TestLargeRecordRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	val := make([]byte, 900<<10)
	_, _ = rand.Read(val)
	prod := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("big"), kgo.AllowAutoTopicCreation())
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, srv.KafkaAddr(), kgo.ConsumeTopics("big"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || !bytes.Equal(recs[0].Value, val) {
		t.Fatalf("got %d records", len(recs))
	}
}

func TestHugeAnnouncedFrameClosesWithoutGrowth(t *testing.T) {
	srv := testserver.Start(t)
	before := loop.ResidentBytes()
	c := dialFrom(t, "", srv.KafkaAddr())
	var frame [14]byte
	binary.BigEndian.PutUint32(frame[:], 2<<30-1) // ~2 GB
	binary.BigEndian.PutUint16(frame[4:], 0)      // Produce
	binary.BigEndian.PutUint16(frame[6:], 9)
	if _, err := c.Write(frame[:]); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, time.Second)
	if grown := loop.ResidentBytes() - before; grown > 8<<20 {
		t.Fatalf("RSS grew by %d bytes", grown)
	}
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
}

func TestRandomBytesCloseOnlyThatConnection(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	good := dialFrom(t, "", srv.KafkaAddr())
	expectServed(t, good)
	// Seeded, so the bytes are the same every run: random bytes may by
	// chance form the start of a valid header that asks for more bytes
	// (the server then rightly waits for them); these 20 do not.
	rng := mrand.New(mrand.NewSource(7))
	for i := 0; i < 20; i++ {
		bad := dialFrom(t, "", srv.KafkaAddr())
		junk := make([]byte, 1024)
		_, _ = rng.Read(junk)
		binary.BigEndian.PutUint32(junk, uint32(len(junk)-4)) // a plausible length, garbage after
		if i%2 == 1 {
			_, _ = rng.Read(junk[:4]) // and sometimes a garbage length too
		}
		_, _ = bad.Write(junk)
		expectClosed(t, bad, 3*time.Second)
	}
	expectServed(t, good)
}

func TestUnsupportedAPIVersionsVersionGetsRanges(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := dialFrom(t, "", srv.KafkaAddr())
	req := kmsg.NewPtrApiVersionsRequest()
	// A version from the future: encode v3 and patch the version field, as
	// a newer client would send it.
	req.SetVersion(3)
	b := request(req, 5)
	binary.BigEndian.PutUint16(b[6:], 99)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_, body := readResponse(t, c, false)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 35 || len(resp.ApiKeys) == 0 {
		t.Fatalf("code %d with %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	expectServed(t, c) // the connection stays usable
}

package broker_test

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// roundTrip writes one frame and reads the response frame on conn.
func roundTrip(t *testing.T, conn net.Conn, frame []byte) []byte {
	t.Helper()
	// A bound against hanging, not a speed target: under -race on two
	// loaded cores skimming a 120 MiB frame of empty partitions took
	// over 30 s.
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := conn.Write(frame); err != nil {
		t.Fatalf("write: %v", err)
	}
	var l [4]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		t.Fatalf("read response length: %v", err)
	}
	resp := make([]byte, 4+binary.BigEndian.Uint32(l[:]))
	copy(resp, l[:])
	if _, err := io.ReadFull(conn, resp[4:]); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp
}

// rawProduce sends a Produce v9 of records to topic/0 and returns the
// partition's error code.
func rawProduce(t *testing.T, addr, topic string, records []byte) int16 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("attacker")).AppendRequest(nil, req, 7)
	h := kafka.Header{APIKey: 0, APIVersion: 9, Flexible: true}
	resp, err := kafka.DecodeResponse(&h, roundTrip(t, conn, frame))
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

// liarBatch is a one-record batch claiming lastOffsetDelta = 2^31-1.
func liarBatch(ts int64) []byte {
	var rec []byte
	rec = append(rec, 0)
	rec = binary.AppendVarint(rec, 0)
	rec = binary.AppendVarint(rec, 0)
	rec = binary.AppendVarint(rec, -1)
	rec = binary.AppendVarint(rec, 3)
	rec = append(rec, "bad"...)
	rec = binary.AppendVarint(rec, 0)
	rb := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: math.MaxInt32, FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1,
		Records: append(binary.AppendVarint(nil, int64(len(rec))), rec...)}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// TestLastOffsetDeltaLiarCannotHideOtherProducers: two one-record batches
// claiming lastOffsetDelta = 2^31-1 moved the log end by 2^32, and a
// consumer reading from the start saw 2 of the 6 records of two honest
// producers. They are refused (INVALID_RECORD) and the consumer sees all 6.
func TestLastOffsetDeltaLiarCannotHideOtherProducers(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("shared"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "shared"); err != nil {
		t.Fatal(err)
	}
	produce := func(vals ...string) {
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("honest produce: %v", err)
			}
		}
	}
	produce("a1", "a2", "a3")
	for i := 0; i < 2; i++ {
		if code := rawProduce(t, srv.KafkaAddr(), "shared", liarBatch(time.Now().UnixMilli())); code != kafka.ErrInvalidRecord {
			t.Fatalf("liar batch %d answered %d, want INVALID_RECORD (87)", i, code)
		}
	}
	produce("b1", "b2", "b3")

	consumer, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics("shared"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 6 && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		consumer.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		pcancel()
	}
	if len(got) != 6 {
		t.Fatalf("consumer from the start saw %d of 6 records: %q", len(got), got)
	}
	off, err := kadm.NewClient(cl).ListEndOffsets(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := off.Lookup("shared", 0); end.Offset != 6 {
		t.Fatalf("log end %d, want 6", end.Offset)
	}
}

// manyPartitionsFrame is a Produce v7 request frame of about size bytes:
// one topic with empty (null) partitions of 8 bytes each.
func manyPartitionsFrame(size int) (frame []byte, partitions int) {
	partitions = (size - 64) / 8
	b := make([]byte, 4, size)
	b = binary.BigEndian.AppendUint16(b, 0) // Produce
	b = binary.BigEndian.AppendUint16(b, 7)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'a')
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null transactional id
	b = binary.BigEndian.AppendUint16(b, 1)      // acks
	b = binary.BigEndian.AppendUint32(b, 1000)
	b = binary.BigEndian.AppendUint32(b, 1) // topics
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'x')
	b = binary.BigEndian.AppendUint32(b, uint32(partitions))
	for i := 0; i < partitions; i++ {
		b = binary.BigEndian.AppendUint32(b, uint32(i))
		b = binary.BigEndian.AppendUint32(b, 0xffffffff) // null records
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, partitions
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// samplePeakHeap samples the heap in use every 5 ms until stop, which
// returns the peak.
func samplePeakHeap() (stop func() uint64) {
	var max uint64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > max {
				max = ms.HeapInuse
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return max }
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// onePartitionFrame is a Produce v7 frame of size bytes holding one
// partition whose records are the rest: the same bytes, none of the counts.
func onePartitionFrame(size int) []byte {
	b := make([]byte, 4, size)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, 7)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'a')
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint32(b, 1000)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'x')
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 0)
	rest := size - len(b) - 4
	b = binary.BigEndian.AppendUint32(b, uint32(rest))
	b = b[:len(b)+rest]
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// measure sends frame on a fresh connection and returns the answer, the
// peak heap growth and the bytes allocated meanwhile (in this process:
// the server runs in it).
func measure(t *testing.T, addr string, frame []byte) (resp []byte, growth int64, allocated uint64) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	base, before := heapInuse(), totalAlloc()
	stop := samplePeakHeap()
	resp = roundTrip(t, conn, frame)
	allocated = totalAlloc() - before
	return resp, int64(stop()) - int64(base), allocated
}

// TestManyPartitionsProduceIsBounded: a Produce holding millions of empty
// partitions, within --max-request-size (99 MiB of the default 100) or
// over it (120 MiB), made floodgate allocate 5.9 GB and 5.1 GB (~60x the
// frame) and answer with 472 MB (one entry per partition). Now it costs
// what a frame of the same size with one partition costs (the frame,
// charged to the budget, and gnet's inbound buffer while it arrives), and
// the answer names at most --max-partitions-per-request partitions. The
// test runs at a quarter of those sizes under a 25 MiB max-request-size:
// the same paths, and 60x a 24 MiB frame is still far past its bounds.
func TestManyPartitionsProduceIsBounded(t *testing.T) {
	const maxRequestSize = 25 << 20
	for _, c := range []struct {
		name string
		size int
	}{
		{"24 MiB within max-request-size", 24 << 20},
		{"30 MiB over max-request-size", 30 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := testserver.Start(t, testserver.WithLimits(func(l *limits.Config) { l.MaxRequestSize = maxRequestSize }))
			plain := onePartitionFrame(c.size)
			_, baseGrowth, baseAlloc := measure(t, srv.KafkaAddr(), plain)
			plain = nil
			frame, parts := manyPartitionsFrame(c.size)
			resp, growth, allocated := measure(t, srv.KafkaAddr(), frame)
			h := kafka.Header{APIKey: 0, APIVersion: 7}
			d, err := kafka.DecodeResponse(&h, resp)
			if err != nil {
				t.Fatal(err)
			}
			named := 0
			for _, rt := range d.(*kmsg.ProduceResponse).Topics {
				for _, rp := range rt.Partitions {
					named++
					if rp.ErrorCode == kafka.ErrNone {
						t.Fatalf("partition %d answered without an error", rp.Partition)
					}
				}
			}
			t.Logf("%d partitions in %d MiB: peak heap growth %d MiB (one-partition frame: %d MiB), allocated %d MiB (%d MiB), answer %d bytes naming %d partitions",
				parts, len(frame)>>20, growth>>20, baseGrowth>>20, allocated>>20, baseAlloc>>20, len(resp), named)
			if named == 0 || named > 10000 {
				t.Fatalf("answer names %d partitions, want 1..10000 (--max-partitions-per-request)", named)
			}
			if len(resp) > 1<<20 {
				t.Fatalf("answer of %d bytes, want under 1 MiB", len(resp))
			}
			if allocated > baseAlloc+32<<20 || growth > max(baseGrowth, 0)+64<<20 {
				t.Fatalf("the partitions cost %d MiB allocated, %d MiB of heap beyond a one-partition frame of the same size",
					(int64(allocated)-int64(baseAlloc))>>20, (growth-baseGrowth)>>20)
			}
		})
	}
}

// TestOversizeProduceWithoutPartitionsToNameIsClosed: an oversize Produce
// v2 (not skimmed: no partition to carry the error) was answered with an
// empty Produce response, which a client reads as success. The connection
// is closed instead (clients retry).
func TestOversizeProduceWithoutPartitionsToNameIsClosed(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.WithLimits(func(l *limits.Config) { l.MaxRequestSize = 64 << 10 }))
	frame := onePartitionFrame(1 << 20)
	binary.BigEndian.PutUint16(frame[6:], 2)  // Produce v2: no transactional id...
	frame = append(frame[:16], frame[18:]...) // ...so drop it
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	conn, err := net.Dial("tcp", srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	var l [4]byte
	if _, err := io.ReadFull(conn, l[:]); err == nil {
		t.Fatalf("answered (%d bytes) instead of closing", binary.BigEndian.Uint32(l[:]))
	}
}

package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/limits"
)

// TestProduceInPiecesKeepsRecordsIntact: a Produce frame that arrives in
// many reads is kept by the loop in the pieces it arrived in and written
// upstream as they are (loop.ChunkedRawKafkaHandler), never joined. Three
// producers (acks=all idempotent, acks=1, acks=0) send batches of up to
// 1 MB of records of 100 B to 24 KB, no compression, through the gateway
// (one upstream connection per broker, so frames of several clients
// queue behind each other and partial writes continue in the writer
// goroutine); every record must then read back byte for byte straight
// from kfake, and frames must have gone in pieces. Race builds poison
// every pooled buffer returned, so a piece returned or reused while a
// write still reads it shows up as corrupt records.
func TestProduceInPiecesKeepsRecordsIntact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []kgo.Opt
	}{
		{"acks=all idempotent", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
		{"acks=1, 5 in flight", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5)}},
		{"acks=0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
	}
	g := startGateway(t, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	direct := client(t, g.cluster.ListenAddrs()[0])
	const partitions, records = 3, 600
	topic := func(n int) string { return "pieces-" + strconv.Itoa(n) }
	for n := range tests {
		if _, err := kadm.NewClient(direct).CreateTopic(ctx, partitions, 1, nil, topic(n)); err != nil {
			t.Fatalf("create topic: %v", err)
		}
	}
	// All producers at once: their frames share each broker's one
	// upstream connection, so many wait in its queue for the writer.
	errs := make(chan error, len(tests))
	for n, tt := range tests {
		opts := append([]kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1 << 20),
			kgo.ProducerLinger(50 * time.Millisecond)}, tt.opts...)
		p := client(t, g.srv.KafkaAddr(), opts...)
		recs := make([]*kgo.Record, records)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic(n), Key: []byte(strconv.Itoa(i)), Value: answerValue(i)}
		}
		go func() {
			if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				errs <- fmt.Errorf("%s: produce through the gateway: %w", tt.name, err)
				return
			}
			errs <- nil
		}()
	}
	for range tests {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for n, tt := range tests {
		c := client(t, g.cluster.ListenAddrs()[0], kgo.ConsumeTopics(topic(n)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond))
		seen := make(map[int]bool, records)
		for len(seen) < records && ctx.Err() == nil {
			fs := c.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				i, err := strconv.Atoi(string(r.Key))
				if err != nil || i < 0 || i >= records {
					t.Fatalf("%s: record with key %q", tt.name, r.Key)
				}
				if !bytes.Equal(r.Value, answerValue(i)) {
					t.Fatalf("%s: record %d: %d bytes differ from the %d produced", tt.name, i, len(r.Value), len(answerValue(i)))
				}
				seen[i] = true
			})
		}
		if len(seen) < records {
			t.Fatalf("%s: %d of %d records read back", tt.name, len(seen), records)
		}
	}
	pieces := metricValue(t, g, "floodgate_gateway_produce_in_pieces_total")
	t.Logf("produce frames forwarded in pieces: %.0f of %.0f requests forwarded", pieces, metricValue(t, g, "floodgate_gateway_requests_forwarded_total"))
	if pieces < 3 {
		t.Fatalf("%.0f Produce frames went upstream in pieces; want at least one per producer", pieces)
	}
}

// TestProduceInPiecesOverTheBudgetIsRefusedAndReleased: a Produce frame
// kept in pieces whose next piece does not fit the memory budget is
// refused as it arrives, like a frame in one buffer: answered per
// partition with REQUEST_TIMED_OUT (retriable) while the rest of it is
// discarded as it streams in, every piece let go (the budget is back to
// nothing), and the connection served afterwards.
func TestProduceInPiecesOverTheBudgetIsRefusedAndReleased(t *testing.T) {
	t.Parallel()
	const budget = 2 << 20
	g := startGateway(t, 1, func(l *limits.Config) {
		l.MemoryLimitBytes = budget
		l.MaxRequestSize = 8 << 20
		l.MemoryPerIPPercent = 100
	})
	conn, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := onePartitionProduce(4<<20, 42) // refused before anything reads it
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = conn.Write(frame) }() // the answer may come before the last byte is taken
	if corr, resp := readProduceAnswer(t, conn); corr != 42 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 ||
		resp.Topics[0].Partitions[0].ErrorCode != kerr.RequestTimedOut.Code {
		t.Fatalf("answer: correlation id %d, %+v; want 42 and REQUEST_TIMED_OUT for orders/0", corr, resp.Topics)
	}
	// The connection goes on: an ApiVersions is answered once the rest of
	// the refused frame has streamed past.
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(0)
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, av, 43)); err != nil {
		t.Fatal(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatalf("connection not served after the refusal: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(head[4:])); corr != 43 {
		t.Fatalf("next answer has correlation id %d, want 43", corr)
	}
	if _, err := io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(head[:4])-4)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.srv.Budget().Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the budget still held after the refusal", g.srv.Budget().Used())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var refused uint64
	for _, reason := range []string{"memory", "memory_per_ip"} {
		refused += g.set.GetOrCreateCounter(`floodgate_requests_refused_total{reason="` + reason + `"}`).Get()
	}
	if refused != 1 {
		t.Fatalf("%v refusals for memory counted, want 1", refused)
	}
}

// TestProduceInPiecesThatFitsTheBudgetIsNotRefusedForDoubling: a frame's
// next piece is as large as all before it, but one that would pass the
// budget is cut to a step: a 1.8 MiB Produce under a 1.9 MiB budget,
// arriving in two writes, is forwarded, where doubling its first MiB
// refused it.
func TestProduceInPiecesThatFitsTheBudgetIsNotRefusedForDoubling(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1, func(l *limits.Config) {
		l.MemoryLimitBytes = 1900 << 10
		l.MaxRequestSize = 8 << 20
		l.MemoryPerIPPercent = 100
	})
	conn, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := onePartitionProduce(1800<<10, 44)
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(frame[:1<<20]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); g.srv.Budget().Used() < 1<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first MiB not charged: %d bytes", g.srv.Budget().Used())
		}
	}
	if _, err := conn.Write(frame[1<<20:]); err != nil {
		t.Fatal(err)
	}
	corr, resp := readProduceAnswer(t, conn)
	var refused uint64
	for _, reason := range []string{"memory", "memory_per_ip"} {
		refused += g.set.GetOrCreateCounter(`floodgate_requests_refused_total{reason="` + reason + `"}`).Get()
	}
	if refused != 0 || corr != 44 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 ||
		resp.Topics[0].Partitions[0].ErrorCode == kerr.RequestTimedOut.Code {
		t.Fatalf("answer: correlation id %d, %+v, %d refusals for memory; want 44, the upstream's answer for orders/0, none",
			corr, resp.Topics, refused)
	}
}

// onePartitionProduce is a Produce v7 frame (acks 1, client id "pieces")
// naming orders/0 with recordBytes of (unchecked) records.
func onePartitionProduce(recordBytes int, corr int32) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks, req.TimeoutMillis = 1, 5000
	part := kmsg.NewProduceRequestTopicPartition()
	part.Records = make([]byte, recordBytes)
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic, topic.Partitions = "orders", []kmsg.ProduceRequestTopicPartition{part}
	req.Topics = append(req.Topics, topic)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("pieces")).AppendRequest(nil, req, corr)
}

// produceFrame is a Produce v7 frame naming orders/0 to orders/2 with
// recordBytes of (unchecked) records each, with the given acks, client id
// and transactional id.
func produceFrame(t *testing.T, acks int16, clientID, txnID string, recordBytes int, corr int32) []byte {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks, req.TimeoutMillis = acks, 5000
	if txnID != "" {
		req.TransactionID = &txnID
	}
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "orders"
	for p := int32(0); p < 3; p++ {
		part := kmsg.NewProduceRequestTopicPartition()
		part.Partition, part.Records = p, make([]byte, recordBytes)
		topic.Partitions = append(topic.Partitions, part)
	}
	req.Topics = append(req.Topics, topic)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, req, corr)
}

// readProduceAnswer reads one Produce v7 answer and its correlation id.
func readProduceAnswer(t *testing.T, conn net.Conn) (int32, *kmsg.ProduceResponse) {
	t.Helper()
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(7)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(head[4:])), resp
}

// TestProduceInPiecesToAFailedUpstreamIsAnsweredPerPartition: a Produce
// frame kept in pieces whose upstream cannot be reached is answered with
// NOT_LEADER_OR_FOLLOWER (retriable) for every partition it names, read
// by a skimmer across the pieces: the frame is not copied into one
// buffer the memory budget never charged, and the budget is back to
// nothing afterwards.
func TestProduceInPiecesToAFailedUpstreamIsAnsweredPerPartition(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1, nil)
	conn, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	g.cluster.Close() // every upstream broker gone
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(produceFrame(t, 1, "pieces", "", 1<<20, 7)); err != nil {
		t.Fatal(err)
	}
	corr, resp := readProduceAnswer(t, conn)
	if corr != 7 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 3 {
		t.Fatalf("answer: correlation id %d, %+v; want 7 naming orders/0-2", corr, resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("orders/%d: error %d, want NOT_LEADER_OR_FOLLOWER", p.Partition, p.ErrorCode)
		}
	}
	if n := g.set.GetOrCreateCounter("floodgate_gateway_produce_in_pieces_total").Get(); n == 0 {
		t.Fatal("the frame did not go in pieces")
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.srv.Budget().Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the budget still held", g.srv.Budget().Used())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProduceAcksZeroBeyondTheFirstPieceIsNotAwaited: a client id and a
// transactional id of 32 KiB each put acks past the loop's first 64 KiB
// piece; the gateway reads it across the pieces, so an acks=0 Produce is
// not awaited from the upstream (which never answers one) and the
// client's next request is answered at once, not after the request
// timeout.
func TestProduceAcksZeroBeyondTheFirstPieceIsNotAwaited(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1, nil)
	conn, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	long := string(bytes.Repeat([]byte("c"), 32767))
	if _, err := conn.Write(produceFrame(t, 0, long, long, 256<<10, 8)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(0)
	if _, err := conn.Write(kmsg.NewRequestFormatter().AppendRequest(nil, av, 9)); err != nil {
		t.Fatal(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatalf("ApiVersions after an acks=0 Produce not answered: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(head[4:])); corr != 9 {
		t.Fatalf("first answer has correlation id %d, want 9 (acks=0 gets none)", corr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("ApiVersions answered after %v: the acks=0 Produce was awaited", d)
	}
	if n := g.set.GetOrCreateCounter("floodgate_gateway_produce_in_pieces_total").Get(); n == 0 {
		t.Fatal("the frame did not go in pieces")
	}
}

// TestProduceInPiecesOverTheRateIsRejectedPerPartition: with
// --throttle-mode reject, a Produce frame in pieces over its client's
// rate is answered THROTTLING_QUOTA_EXCEEDED for every partition it
// names, read by a skimmer across the pieces (the loop never joins them
// into a copy the budget did not charge), and the budget is back to
// nothing afterwards.
func TestProduceInPiecesOverTheRateIsRejectedPerPartition(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1, func(l *limits.Config) {
		l.ProduceRate = 1
		l.ThrottleMode = limits.ThrottleReject
	})
	conn, err := net.Dial("tcp", g.srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	const frames = 4
	for i := int32(0); i < frames; i++ {
		if _, err := conn.Write(produceFrame(t, 1, "pieces", "", 256<<10, 20+i)); err != nil {
			t.Fatal(err)
		}
	}
	rejected := 0
	for i := int32(0); i < frames; i++ {
		corr, resp := readProduceAnswer(t, conn)
		if corr != 20+i || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 3 {
			t.Fatalf("answer %d: correlation id %d, %+v; want %d naming orders/0-2", i, corr, resp.Topics, 20+i)
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code == kerr.ThrottlingQuotaExceeded.Code {
			rejected++
			for _, p := range resp.Topics[0].Partitions {
				if p.ErrorCode != code {
					t.Fatalf("answer %d: orders/%d error %d, want THROTTLING_QUOTA_EXCEEDED like orders/0", i, p.Partition, p.ErrorCode)
				}
			}
		}
	}
	if rejected == 0 {
		t.Fatalf("none of %d frames at 1 Produce/s was rejected", frames)
	}
	if n := g.set.GetOrCreateCounter("floodgate_gateway_produce_in_pieces_total").Get(); n == 0 {
		t.Fatal("no frame went in pieces")
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.srv.Budget().Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the budget still held", g.srv.Budget().Used())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d of %d frames rejected", rejected, frames)
}

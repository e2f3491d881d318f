package loop_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxTotal  int
		maxPerIP  int
		sources   []string // one connection each, in order
		wantAlive []bool
	}{
		{"connection over max-connections is closed, first ones keep working", 3, 100,
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}, []bool{true, true, true, false}},
		{"per-IP limit counts each source address apart", 100, 2,
			[]string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3", "127.0.0.3"},
			[]bool{true, true, true, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.Start(t, withLimits(func(l *limits.Config) {
				l.MaxConnections, l.MaxConnectionsPerIP = tt.maxTotal, tt.maxPerIP
			}))
			conns := make([]net.Conn, len(tt.sources))
			for i, src := range tt.sources {
				conns[i] = dialFrom(t, src, srv.KafkaAddr())
				if !tt.wantAlive[i] {
					expectClosed(t, conns[i], 3*time.Second)
				} else {
					expectServed(t, conns[i])
				}
			}
			for i, c := range conns {
				if tt.wantAlive[i] {
					expectServed(t, c)
				}
			}
			reason := "max_connections"
			if tt.maxPerIP < 100 {
				reason = "max_connections_per_ip"
			}
			if n := srv.Metrics.GetOrCreateCounter(`floodgate_connections_rejected_total{reason="` + reason + `"}`).Get(); n == 0 {
				t.Fatalf("rejection not counted under %s", reason)
			}
		})
	}
}

func TestIdleConnectionsAreReaped(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.IdleTimeout = 300 * time.Millisecond }))
	idle := dialFrom(t, "", srv.KafkaAddr())
	expectServed(t, idle)
	expectClosed(t, idle, 5*time.Second)
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_connections_closed_total{reason="idle"}`).Get(); n == 0 {
		t.Fatal("idle close not counted")
	}
}

// produceFrame builds a Produce v9 frame of about size bytes for two
// partitions of topic t.
func produceFrameHeader(t *testing.T, size int) (head []byte, bodyLen int) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks = -1
	req.TimeoutMillis = 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "big"
	for p := int32(0); p < 2; p++ {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = make([]byte, size/2)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return request(req, 77), 0
}

func TestOversizeProduceAnsweredPerPartitionWithoutBuffering(t *testing.T) {
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxRequestSize = 1 << 20 }))
	const size = 150 << 20
	frame, _ := produceFrameHeader(t, size)
	heapBefore := heapInuse()
	c := dialFrom(t, "", srv.KafkaAddr())
	go func() { _, _ = c.Write(frame) }()
	corr, body := readResponse(t, c, false)
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(7)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if corr != 77 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("corr %d response %+v", corr, resp)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 10 {
			t.Fatalf("partition %d: code %d, want MESSAGE_TOO_LARGE", p.Partition, p.ErrorCode)
		}
	}
	// The frame itself is in the test's heap (the client's copy); the
	// server must not have added another of its size.
	if grown := int64(heapInuse()) - int64(heapBefore); grown > size/4 {
		t.Fatalf("heap grew by %d bytes for a %d byte frame", grown, size)
	}
	expectServed(t, c) // the connection stays usable
	if srv.Metrics.GetOrCreateCounter("floodgate_request_too_large_total").Get() == 0 {
		t.Fatal("not counted")
	}
}

func TestPipeliningWithoutReadingIsBounded(t *testing.T) {
	t.Parallel()
	const memLimit = 8 << 20
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MaxInflight = 100
		l.MemoryLimitBytes = memLimit
	}))
	// 100,000 requests of ~1 KB (100 MB, far more than kernel buffers
	// hold), never reading a response.
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName = string(bytes.Repeat([]byte("x"), 1000))
	req.ClientSoftwareVersion = "1"
	one := request(req, 1)
	const n = 100000
	all := bytes.Repeat(one, n)
	c := dialFrom(t, "", srv.KafkaAddr())
	var written atomic.Int64
	go func() {
		for off := 0; off < len(all); {
			_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			k, err := c.Write(all[off:min(off+64<<10, len(all))])
			written.Add(int64(k))
			off += k
			if err != nil {
				return
			}
		}
	}()
	// Sample the budget until the client's writes stall (no progress for
	// 300 ms) with the connection parked (the server stopped reading and
	// the kernel buffers are full), or it wrote everything, which the check
	// below refuses. A stall alone is not enough: on a loaded machine the
	// loop may simply not have run for 300 ms.
	var maxUsed int64
	last, lastMove := written.Load(), time.Now()
	waitFor(t, 20*time.Second, "client writes stall on a parked connection or finish", func() bool {
		if u := srv.Budget().Used(); u > maxUsed {
			maxUsed = u
		}
		if w := written.Load(); w != last {
			last, lastMove = w, time.Now()
		}
		return last >= int64(len(all)) || (time.Since(lastMove) > 300*time.Millisecond && srv.Stats().Parked > 0)
	})
	if maxUsed > memLimit {
		t.Fatalf("budget used %d over its limit %d", maxUsed, memLimit)
	}
	if w := written.Load(); w >= int64(len(all)) {
		t.Fatalf("client wrote all %d bytes: the server kept reading", w)
	}
	st := srv.Stats()
	if st.Parked == 0 {
		t.Fatalf("connection not parked: %+v", st)
	}
	if st.InFlight > 100 {
		t.Fatalf("%d requests in flight over max-in-flight-requests-per-connection=100", st.InFlight)
	}
	// Everyone else is still served.
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("other"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	t.Logf("client wrote %d of %d bytes; budget peak %d bytes; server parked %d", written.Load(), len(all), maxUsed, st.Parked)
}

func TestParkedConnectionResumesAndAnswersEverything(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxInflight = 4 }))
	c := dialFrom(t, "", srv.KafkaAddr())
	const n = 500
	var buf []byte
	for i := 0; i < n; i++ {
		buf = append(buf, request(apiVersions(3), int32(i))...)
	}
	go func() { _, _ = c.Write(buf) }()
	for i := 0; i < n; i++ {
		corr, _ := readResponse(t, c, false)
		if corr != int32(i) {
			t.Fatalf("response %d has correlation %d: out of order", i, corr)
		}
	}
}

func TestRateLimitDelaySlowsProducerWithoutLoss(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.ProduceRate = 20 }))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("rated"), kgo.AllowAutoTopicCreation(), kgo.ClientID("rated-producer"))
	const n = 70
	start := time.Now()
	for i := 0; i < n; i++ { // one request per record
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: binary.BigEndian.AppendUint32(nil, uint32(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	// burst 20 free, then 50 at 20/s: at least ~2.5 s; allow slack.
	if elapsed < 1500*time.Millisecond {
		t.Fatalf("70 produce requests at 20/s took only %v", elapsed)
	}
	cons := newClient(t, srv.KafkaAddr(), kgo.ConsumeTopics("rated"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if binary.BigEndian.Uint32(r.Value) != uint32(got) {
				t.Fatalf("record %d out of order or lost", got)
			}
			got++
		})
	}
	if srv.Metrics.GetOrCreateCounter(`floodgate_requests_throttled_total{api="Produce",mode="delay"}`).Get() == 0 {
		t.Fatal("throttling not counted")
	}
}

func TestRateLimitRejectModeAnswers89(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.ProduceRate = 1
		l.ThrottleMode = limits.ThrottleReject
	}))
	c := dialFrom(t, "", srv.KafkaAddr())
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks = 1
	req.TimeoutMillis = 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "nope"
	rp := kmsg.NewProduceRequestTopicPartition()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var sawReject bool
	for i := 0; i < 5; i++ {
		if _, err := c.Write(request(req, int32(i))); err != nil {
			t.Fatal(err)
		}
		_, body := readResponse(t, c, false)
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(7)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		code := resp.Topics[0].Partitions[0].ErrorCode
		if code == 89 {
			sawReject = true
			if resp.ThrottleMillis <= 0 {
				t.Fatalf("89 without throttle_time_ms")
			}
		}
	}
	if !sawReject {
		t.Fatal("no THROTTLING_QUOTA_EXCEEDED at 5 requests against 1/s")
	}
}

// frameHead is the start of a Kafka frame announcing length bytes: an
// ApiVersions v0 header with a null client id.
func frameHead(length uint32) []byte {
	var head [14]byte
	binary.BigEndian.PutUint32(head[:], length)
	binary.BigEndian.PutUint16(head[4:], 18) // ApiVersions v0
	binary.BigEndian.PutUint16(head[12:], 0xffff)
	return head[:]
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemoryBudgetRefusesConnectionsAndRecovers(t *testing.T) {
	t.Parallel()
	const memLimit = 2 << 20
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MemoryLimitBytes = memLimit
		l.MaxRequestSize = memLimit
		l.MemoryPerIPPercent = 100
	}))
	// A client sends most of a frame of the whole budget: the bytes that
	// arrived are charged, past the high-water mark.
	hog := dialFrom(t, "", srv.KafkaAddr())
	sent := append(frameHead(memLimit), make([]byte, memLimit*15/16)...)
	if _, err := hog.Write(sent); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "budget near its limit", srv.Budget().NearLimit)
	refused := dialFrom(t, "", srv.KafkaAddr())
	expectClosed(t, refused, 3*time.Second)
	if srv.Metrics.GetOrCreateCounter(`floodgate_connections_rejected_total{reason="memory"}`).Get() == 0 {
		t.Fatal("memory refusal not counted")
	}
	hog.Close()
	waitFor(t, time.Second, "budget released after the client left", func() bool { return srv.Budget().Used() == 0 })
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
}

// TestRequestThatDoesNotFitIsRefusedWithRequestTimedOut: an established
// client's request that does not fit what is left of the budget waits (its
// connection is not read) for --memory-wait-timeout, then is refused with a
// retriable error as its bytes arrive, instead of hanging or being
// buffered. Before the flag, the wait was a constant 2 s.
func TestRequestThatDoesNotFitIsRefusedWithRequestTimedOut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name            string
		wait            time.Duration
		atLeast, atMost time.Duration
	}{
		{"after the default wait", 2 * time.Second, 1900 * time.Millisecond, 8 * time.Second},
		{"after a short --memory-wait-timeout", 200 * time.Millisecond, 150 * time.Millisecond, 1500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const memLimit = 2 << 20
			srv := testserver.Start(t, withLimits(func(l *limits.Config) {
				l.MemoryLimitBytes = memLimit
				l.MaxRequestSize = memLimit
				l.MemoryPerIPPercent = 100
				l.MemoryWait = tt.wait
			}))
			waiting := dialFrom(t, "", srv.KafkaAddr())
			expectServed(t, waiting)
			hog := dialFrom(t, "", srv.KafkaAddr())
			if _, err := hog.Write(append(frameHead(memLimit), make([]byte, memLimit*15/16)...)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "budget near its limit", srv.Budget().NearLimit)
			const big = 512 << 10
			frame := append(frameHead(big), make([]byte, big-10)...)
			binary.BigEndian.PutUint32(frame[8:], 42) // correlation id
			start := time.Now()
			if _, err := waiting.Write(frame); err != nil {
				t.Fatal(err)
			}
			corr, body := readResponse(t, waiting, false)
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.SetVersion(0)
			if err := resp.ReadFrom(body); err != nil {
				t.Fatal(err)
			}
			if corr != 42 || resp.ErrorCode != 7 {
				t.Fatalf("corr %d code %d, want REQUEST_TIMED_OUT (7)", corr, resp.ErrorCode)
			}
			if el := time.Since(start); el < tt.atLeast || el > tt.atMost {
				t.Fatalf("refused after %v, want between %v and %v", el, tt.atLeast, tt.atMost)
			}
			hog.Close()
			waitFor(t, time.Second, "budget released", func() bool { return srv.Budget().Used() == 0 })
			expectServed(t, waiting) // and it is served again once the budget frees
		})
	}
}

func TestTricklingFrameIsClosedAndItsReservationReleased(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.RequestReadTimeout = 300 * time.Millisecond }))
	c := dialFrom(t, "", srv.KafkaAddr())
	// A 90 MiB frame announced: nothing is reserved for what did not
	// arrive beyond the first buffer step (64 KiB).
	if _, err := c.Write(frameHead(90 << 20)); err != nil {
		t.Fatal(err)
	}
	// Wait until the server has read the head (it reserves its first
	// buffer step then), so the check below sees the charge for it.
	waitFor(t, 5*time.Second, "frame head read", func() bool { return srv.Budget().Used() > 0 })
	if u := srv.Budget().Used(); u > 65<<10 {
		t.Fatalf("announced frame charged %d bytes before they arrived", u)
	}
	// Trickle one byte every 100 ms: the connection stays active, but the
	// frame earns 1 s per --min-request-rate bytes, so it is closed at
	// about 0.3 s, not after 0.3 s + 90 s as when the time came from the
	// announced size.
	start := time.Now()
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte{0}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	expectClosed(t, c, 5*time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("trickled frame closed after %v; its bytes earn no more than 0.3 s", d)
	}
	waitFor(t, time.Second, "budget released", func() bool { return srv.Budget().Used() == 0 })
	if srv.Metrics.GetOrCreateCounter(`floodgate_connections_closed_total{reason="slow_frame"}`).Get() == 0 {
		t.Fatal("slow frame close not counted")
	}
}

// TestClientOverMaxConnectionsSeesRefusals pins what the README says a
// franz-go client sees at --max-connections: every attempt is refused at
// once (its produce fails with its own deadline, nothing hangs in the
// backlog), and it reconnects with its backoff. The attempts are logged;
// the README quotes them.
func TestClientOverMaxConnectionsSeesRefusals(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxConnections = 1 }))
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
	cl := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("over"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("a client over --max-connections produced")
	}
	n := srv.Metrics.GetOrCreateCounter(`floodgate_connections_rejected_total{reason="max_connections"}`).Get()
	if n == 0 {
		t.Fatal("no refused attempt counted")
	}
	t.Logf("kgo over --max-connections for 5 s: %d connection attempts refused", n)
}

package loop_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/kafkatest"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Regression tests of the hostile-client findings: what an attacker's
// connections hold is what they sent, released when they leave, and never
// makes other clients wait for the budget.

// postHead is an HTTP request head announcing a body of n bytes.
func postHead(n int) string {
	return fmt.Sprintf("POST /topics/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/vnd.kafka.json.v2+json\r\nContent-Length: %d\r\n\r\n", n)
}

// healthOK asserts GET /health answers 200 on a new connection from local.
func healthOK(t *testing.T, local, addr string) {
	t.Helper()
	c := dialFrom(t, local, addr)
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: t\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /health: %d", resp.StatusCode)
	}
}

func TestAbandonedBodiesHoldOnlyWhatTheySentAndNobodyWaits(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	// 100 connections from one IP announce 10 MiB bodies, send one byte
	// and go silent. Reserving the announced length took 1000 MiB of the
	// 1 GiB budget and parked every other client for 2 s per request.
	var attackers []net.Conn
	for i := 0; i < 100; i++ {
		c := dialFrom(t, "127.0.0.2", srv.HTTPAddr())
		if _, err := c.Write([]byte(postHead(10<<20) + "{")); err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, c)
	}
	waitFor(t, 5*time.Second, "attackers' heads read", func() bool {
		return srv.Budget().Used() >= 100
	})
	time.Sleep(100 * time.Millisecond)
	held := srv.Budget().Used()
	if held > 100*(64<<10)+(1<<20) {
		t.Fatalf("100 one-byte bodies hold %d bytes of the budget", held)
	}
	parksBefore := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="memory"}`).Get()
	good := dialFrom(t, "", srv.KafkaAddr())
	for i := 0; i < 3; i++ {
		start := time.Now()
		expectServed(t, good)
		t.Logf("ApiVersions during the attack: %v", time.Since(start).Round(time.Microsecond))
	}
	healthOK(t, "127.0.0.3", srv.HTTPAddr())
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="memory"}`).Get(); n != parksBefore {
		t.Fatalf("good clients parked for memory %d times during the attack", n-parksBefore)
	}
	for _, c := range attackers {
		c.Close()
	}
	waitFor(t, time.Second, "budget back to zero after the attacker left", func() bool { return srv.Budget().Used() == 0 })
}

func TestBodiesOfClosedConnectionsAreReleased(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	for round := 0; round < 3; round++ {
		// Content-Length heads and a byte, then close.
		for i := 0; i < 40; i++ {
			c := dialFrom(t, "127.0.0.2", srv.HTTPAddr())
			_, _ = c.Write([]byte(postHead(10<<20) + "{"))
			c.Close()
		}
		// Chunked bodies of 1 MiB, unfinished, then close.
		chunk := strings.Repeat("a", 64<<10)
		for i := 0; i < 40; i++ {
			c := dialFrom(t, "127.0.0.4", srv.HTTPAddr())
			_, _ = c.Write([]byte("POST /topics/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/vnd.kafka.json.v2+json\r\nTransfer-Encoding: chunked\r\n\r\n"))
			for k := 0; k < 16; k++ {
				_, _ = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
			}
			c.Close()
		}
	}
	// The server still reads what the clients sent before they closed
	// (their sockets' buffers), then releases everything.
	waitFor(t, 5*time.Second, "nothing charged once every client closed", func() bool { return srv.Budget().Used() == 0 })
	expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
}

func TestTrickledBodyIsAnswered408(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.RequestReadTimeout = 300 * time.Millisecond }))
	c := dialFrom(t, "127.0.0.2", srv.HTTPAddr())
	if _, err := c.Write([]byte(postHead(1000))); err != nil {
		t.Fatal(err)
	}
	// One byte every 100 ms: the idle timer restarts on every byte, the
	// body's time bound does not.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("trickled body: %d close=%v, want 408 and Connection: close", resp.StatusCode, resp.Close)
	}
	t.Logf("408 after %v", time.Since(start).Round(time.Millisecond))
	if srv.Metrics.GetOrCreateCounter(`floodgate_connections_closed_total{reason="slow_body"}`).Get() == 0 {
		t.Fatal("slow body not counted")
	}
	waitFor(t, time.Second, "budget released", func() bool { return srv.Budget().Used() == 0 })
}

func TestParkedConnectionNoticesItsPeerClosing(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	// Pipeline large answers (/metrics) without reading any: the socket
	// fills and the connection is parked as a slow reader.
	c := dialFrom(t, "127.0.0.2", srv.HTTPAddr())
	req := []byte(strings.Repeat("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 50))
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := c.Write(req); err != nil {
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "connection parked", func() bool { return srv.Stats().Parked > 0 })
	before := srv.Stats().Connections
	c.Close()
	// It used to stay parked, holding its answers, until the idle timeout
	// (600 s by default).
	waitFor(t, 2*time.Second, "parked connection closed after its peer left", func() bool {
		st := srv.Stats()
		return st.Parked == 0 && st.Connections < before
	})
	waitFor(t, time.Second, "its answers released", func() bool { return srv.Budget().Used() == 0 })
}

func TestOneIPHoldsAtMostItsShareOfTheBudget(t *testing.T) {
	t.Parallel()
	const memLimit = 8 << 20
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MemoryLimitBytes = memLimit
		l.MaxRequestSize = memLimit
		l.MemoryPerIPPercent = 25
	}))
	// Four connections of one IP each send 1 MiB of a 4 MiB frame: the IP
	// may hold 2 MiB, the frames past it are refused as they arrive.
	for i := 0; i < 4; i++ {
		c := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
		if _, err := c.Write(append(frameHead(4<<20), make([]byte, 1<<20)...)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "frames past the share refused", func() bool {
		return srv.Metrics.GetOrCreateCounter(`floodgate_requests_refused_total{reason="memory_per_ip"}`).Get() > 0
	})
	if u := srv.Budget().Used(); u > 2<<20+(64<<10) {
		t.Fatalf("one IP holds %d bytes, its share is %d", u, 2<<20)
	}
	// Another IP still has the rest.
	other := dialFrom(t, "127.0.0.3", srv.KafkaAddr())
	if _, err := other.Write(append(frameHead(4<<20), make([]byte, 3<<19)...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "another IP's frame charged", func() bool {
		for _, ip := range srv.Stats().TopIPs {
			if ip.IP == "127.0.0.3" && ip.MemoryBytes >= 3<<19 {
				return true
			}
		}
		return false
	})
	var top int64
	for _, ip := range srv.Stats().TopIPs {
		top = max(top, ip.MemoryBytes)
	}
	if top == 0 {
		t.Fatal("/admin/stats does not show what each IP holds")
	}
}

// TestFrameThatFitsItsShareIsNotRefusedForDoubling: a frame's buffer
// grows by doubling, but a doubling that would pass the IP's share of the
// budget grows only to the bytes that arrived: a frame is refused for
// bytes that do not fit, never for room it was not sent.
func TestFrameThatFitsItsShareIsNotRefusedForDoubling(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MemoryLimitBytes = 8 << 20
		l.MaxRequestSize = 8 << 20
		l.MemoryPerIPPercent = 24 // 1.92 MiB: doubling 1 MiB would pass it
	}))
	c := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
	charged := func(n int64) func() bool {
		return func() bool {
			for _, ip := range srv.Stats().TopIPs {
				if ip.IP == "127.0.0.2" && ip.MemoryBytes >= n {
					return true
				}
			}
			return false
		}
	}
	if _, err := c.Write(append(frameHead(4<<20), make([]byte, 1<<20)...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first MiB charged", charged(1<<20))
	if _, err := c.Write(make([]byte, 1<<19)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "1.5 MiB charged", charged(3<<19))
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_requests_refused_total{reason="memory_per_ip"}`).Get(); n != 0 {
		t.Fatalf("%d frames refused for the IP's share; 1.5 MiB of the frame fits its 1.92 MiB", n)
	}
}

func TestParkedConnectionWithNothingToWriteNoticesItsPeerClosing(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxInflight = 1 }))
	c := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(4)
	meta.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("parked")
	meta.Topics = append(meta.Topics, mt)
	if _, err := c.Write(request(meta, 1)); err != nil {
		t.Fatal(err)
	}
	readResponse(t, c, false)
	// A long-poll Fetch (10 s) fills the one request in flight allowed;
	// the next request parks the connection with nothing to write.
	fetch := kafkatest.LongPoll("parked", 0, 10*time.Second, 0)
	fetch.SetVersion(4)
	if _, err := c.Write(append(request(fetch, 2), request(apiVersions(3), 3)...)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "connection parked", func() bool { return srv.Stats().Parked > 0 })
	before := srv.Stats().Connections
	c.Close()
	// It used to stay parked until its fetch finished, and a parked
	// connection whose limits never cleared stayed until the idle timeout.
	waitFor(t, time.Second, "parked connection closed after its peer left", func() bool {
		st := srv.Stats()
		return st.Parked == 0 && st.Connections < before
	})
}

// panicAfterRespond answers ApiVersions and then panics, as a handler bug
// would: the answer must be written once and nothing counted twice.
type panicAfterRespond struct{}

func (panicAfterRespond) VersionRange(key int16) (int16, int16, bool) { return 0, 3, key == 18 }

func (panicAfterRespond) ServeKafka(req kmsg.Request, _, _ string, respond func(kmsg.Response)) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	respond(resp)
	panic("handler bug after responding")
}

func TestPanicAfterRespondAnswersOnceAndReleasesOnce(t *testing.T) {
	t.Parallel()
	srv, err := loop.New(loop.Config{KafkaListen: "127.0.0.1:0", EventLoops: 1, Workers: 2,
		Limits: limits.Defaults(), Kafka: panicAfterRespond{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	for i := 0; i < 20; i++ {
		c := dialFrom(t, "", srv.KafkaAddr())
		// Two pipelined requests: the second must not be answered by (or
		// lose its slot to) the first one's second completion.
		if _, err := c.Write(append(request(apiVersions(3), 1), request(apiVersions(3), 2)...)); err != nil {
			t.Fatal(err)
		}
		if corr, _ := readResponse(t, c, false); corr != 1 {
			t.Fatalf("first answer has correlation %d", corr)
		}
		expectClosed(t, c, 5*time.Second)
	}
	waitFor(t, 2*time.Second, "nothing in flight or charged", func() bool {
		return srv.InFlight() == 0 && srv.Budget().Used() == 0
	})
}

func TestLargeFrameIsCopiedAsItArrivesAndChargedOnce(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MemoryPerIPPercent = 100 }))
	// A 32 MiB Produce-sized frame sent in halves: what the server holds
	// between the halves is what arrived (the buffer grows by doubling),
	// not the announced size and not two copies of it.
	const size = 32 << 20
	c := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
	frame := append(frameHead(size), make([]byte, size-10)...)
	binary.BigEndian.PutUint32(frame[8:], 77)
	if _, err := c.Write(frame[:size/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "first half charged", func() bool { return srv.Budget().Used() >= size/2-(64<<10) })
	time.Sleep(50 * time.Millisecond)
	if u := srv.Budget().Used(); u > size/2+size/2 {
		t.Fatalf("half a frame holds %d bytes", u)
	}
	if _, err := c.Write(frame[size/2:]); err != nil {
		t.Fatal(err)
	}
	// An ApiVersions v0 of 32 MiB decodes (the padding is ignored) and is
	// answered; then everything is released.
	corr, _ := readResponse(t, c, false)
	if corr != 77 {
		t.Fatalf("correlation %d", corr)
	}
	waitFor(t, time.Second, "budget released", func() bool { return srv.Budget().Used() == 0 })
}

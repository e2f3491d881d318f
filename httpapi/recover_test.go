package httpapi

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// asyncKafka answers on a goroutine of its own, as the broker's fetch
// waiters and fsync syncer do.
type asyncKafka struct{ b *broker.Broker }

func (k asyncKafka) VersionRange(key int16) (int16, int16, bool) { return k.b.VersionRange(key) }

func (k asyncKafka) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	go k.b.ServeKafka(req, clientID, addr, respond)
}

// TestPanicInAKafkaContinuationReleasesTheRequest: a panic in the code
// that continues a request when its Kafka answer arrives on another
// goroutine is answered 500 and gives back the request's ticket (route and
// worker counts) and memory charge, 2,000 times in a row with
// --max-connections-per-route 1000; before, the panic killed the process
// (no recover on that goroutine) or, caught by the loop, kept the tickets
// until the route answered 503 forever.
func TestPanicInAKafkaContinuationReleasesTheRequest(t *testing.T) {
	b := broker.New(broker.Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(b.Close)
	budget := limits.NewBudget(1<<30, 0)
	set := metrics.NewSet()
	a, err := New(Config{Kafka: asyncKafka{b}, Metrics: set, Budget: budget, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	for i := 0; i < 2000; i++ {
		r := &loop.HTTPRequest{Head: &httpcodec.Request{Method: "GET", Path: []byte("/topics")}, RemoteIP: netip.MustParseAddr("127.0.0.1")}
		got := make(chan *loop.HTTPResponse, 1)
		c := a.begin(r, epTopics, func(resp *loop.HTTPResponse) { got <- resp })
		if c == nil {
			t.Fatalf("request %d refused: %s", i, (<-got).Body)
		}
		if !c.ch.take(4096) {
			t.Fatal("budget refused 4 KiB")
		}
		a.metadata(c, nil, false, func(*kmsg.MetadataResponse) { panic("continuation blew up") })
		select {
		case resp := <-got:
			if resp.Status != 500 {
				t.Fatalf("request %d: status %d", i, resp.Status)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d: no answer", i)
		}
	}
	// The answer reaches respond before the deferred releases of the
	// panicking continuation finish: wait for all three to settle.
	settled := func() bool {
		return budget.Used() == 0 && a.gate.routes[epTopics].active.Load() == 0 && a.gate.perLoop[0].Load() == 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := a.gate.routes[epTopics].active.Load(); n != 0 || budget.Used() != 0 || a.gate.perLoop[0].Load() != 0 {
		t.Fatalf("after 2,000 panics: route active %d, budget %d, loop in flight %d", n, budget.Used(), a.gate.perLoop[0].Load())
	}
	if n := a.gate.panics.Get(); n != 2000 {
		t.Fatalf("floodgate_http_handler_panics_total = %d, want 2000", n)
	}
}

// misansweringKafka is a Kafka handler (the broker's versions) that
// answers every request with an ApiVersions response, as a confused
// upstream behind the gateway might.
type misansweringKafka struct{ b *broker.Broker }

func (k misansweringKafka) VersionRange(key int16) (int16, int16, bool) { return k.b.VersionRange(key) }

func (k misansweringKafka) ServeKafka(_ kmsg.Request, _, _ string, respond func(kmsg.Response)) {
	respond(kmsg.NewPtrApiVersionsResponse())
}

func TestAnswerOfTheWrongTypeIsABadGatewayNamingTheAPI(t *testing.T) {
	b := broker.New(broker.Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(b.Close)
	a, err := New(Config{Kafka: misansweringKafka{b}, Metrics: metrics.NewSet(), Budget: limits.NewBudget(1<<30, 0), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	tests := []struct {
		name string
		ep   int
		ask  func(c *call)
		body string
	}{
		{"v2 Metadata", epTopics, func(c *call) { a.metadata(c, nil, false, func(*kmsg.MetadataResponse) { t.Error("continued") }) },
			`{"error_code":50002,"message":"unexpected response to Metadata"}`},
		{"v2 ListOffsets", epOffsets, func(c *call) {
			a.listOffset(c, restPath{topic: "t"}, -1, func(int64) { t.Error("continued") })
		}, `{"error_code":50002,"message":"unexpected response to ListOffsets"}`},
		{"v3 DeleteTopics", epV3, func(c *call) { a.deleteTopicV3(c, "t") },
			`{"error_code":502,"message":"unexpected response to DeleteTopics"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &loop.HTTPRequest{Head: &httpcodec.Request{Method: "GET", Path: []byte("/topics")}, RemoteIP: netip.MustParseAddr("127.0.0.1")}
			got := make(chan *loop.HTTPResponse, 1)
			c := a.begin(r, tt.ep, func(resp *loop.HTTPResponse) { got <- resp })
			if c == nil {
				t.Fatalf("refused: %s", (<-got).Body)
			}
			tt.ask(c)
			select {
			case resp := <-got:
				if resp.Status != 502 || strings.TrimSpace(string(resp.Body)) != tt.body {
					t.Fatalf("%d %s, want 502 %s", resp.Status, resp.Body, tt.body)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no answer")
			}
		})
	}
}

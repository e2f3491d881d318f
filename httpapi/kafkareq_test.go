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

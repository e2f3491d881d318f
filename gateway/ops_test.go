package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/gateway"
)

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestGatewayClientDisconnectIsNotAWarning: a consumer that closes while
// its long-poll fetches wait upstream is a normal event; its dedicated
// upstream connections close quietly. Before, each pending fetch was
// answered as an upstream failure with a WARN (measured: 2 WARN lines).
func TestGatewayClientDisconnectIsNotAWarning(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	g := startGateway(t, 1000, nil, func(c *gateway.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	prod := client(t, g.srv.KafkaAddr())
	produceN(t, prod, "orders", 0, 6)
	cons, err := kgo.NewClient(kgo.SeedBrokers(g.srv.KafkaAddr()), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	cons.PollFetches(ctx) // fetches now wait upstream
	cons.Close()
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("a client's disconnect logged a warning:\n%s", logs.String())
	}
	if g.set.GetOrCreateCounter("floodgate_gateway_upstream_errors_total").Get() != 0 {
		t.Fatal("a client's disconnect counted as an upstream error")
	}
}

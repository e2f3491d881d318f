package loop_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

func TestOversizeProduceFailsTheRecordForKgo(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxRequestSize = 1 << 16 }))
	cl := newClient(t, srv.KafkaAddr(), kgo.ProducerBatchMaxBytes(1<<20), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := make([]byte, 200<<10)
	_, _ = rand.Read(big)
	done := make(chan error, 1)
	go func() { done <- cl.ProduceSync(ctx, &kgo.Record{Topic: "o", Value: big}).FirstErr() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("oversize record accepted")
		}
		t.Logf("kgo: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no answer to an oversize produce")
	}
}

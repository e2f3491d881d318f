package loop_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
)

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, srv.KafkaAddr()))
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	prod := newClient(t, srv.KafkaAddr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("orders"))
	const n = 10000
	want := map[int32][][]byte{}
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i%97)), Value: []byte(fmt.Sprintf("value-%d", i))})
	}
	// Produce asynchronously so that requests pipeline on the connection.
	var wg sync.WaitGroup
	results := make(kgo.ProduceResults, len(recs))
	for i, r := range recs {
		wg.Add(1)
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			results[i] = kgo.ProduceResult{Record: r, Err: err}
			wg.Done()
		})
	}
	wg.Wait()
	if err := results.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		want[r.Record.Partition] = append(want[r.Record.Partition], r.Record.Value)
	}
	cons := newClient(t, srv.KafkaAddr(), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32][][]byte{}
	total := 0
	for total < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r.Value)
			total++
		})
	}
	if total != n {
		t.Fatalf("consumed %d, want %d", total, n)
	}
	// The idempotent producer pipelines up to five requests per connection:
	// they must be applied in order, never answered out of sequence.
	if v := srv.Metrics.GetOrCreateCounter(`floodgate_request_errors_total{api="Produce",code="45"}`).Get(); v != 0 {
		t.Fatalf("%d OUT_OF_ORDER_SEQUENCE_NUMBER answers to a pipelining idempotent producer", v)
	}
	for p, vals := range want {
		// produce results arrive in order per partition for one producer
		if len(got[p]) != len(vals) {
			t.Fatalf("partition %d: %d records, want %d", p, len(got[p]), len(vals))
		}
		for i := range vals {
			if !bytes.Equal(got[p][i], vals[i]) {
				t.Fatalf("partition %d record %d: %q, want %q", p, i, got[p][i], vals[i])
			}
		}
	}
}

func TestPipelinedIdempotentProduceAppliedInOrder(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod := newClient(t, srv.KafkaAddr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("seq"),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(16<<10))
	const n = 50000
	val := make([]byte, 100)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		prod.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d records failed", failed.Load())
	}
	if v := srv.Metrics.GetOrCreateCounter(`floodgate_request_errors_total{api="Produce",code="45"}`).Get(); v != 0 {
		t.Fatalf("%d OUT_OF_ORDER_SEQUENCE_NUMBER answers: pipelined requests were applied out of order", v)
	}
	t.Logf("%d records in %v", n, time.Since(start))
}

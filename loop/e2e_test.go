package loop_test

import (
	"bytes"
	"context"
	"fmt"
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
	results := prod.ProduceSync(ctx, recs...)
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

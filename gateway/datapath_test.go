package gateway_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/limits"
)

// TestGatewayLongPollDoesNotDelayOthersOnSharedUpstream: with one upstream
// connection per broker, every client shares it. A consumer's long-poll
// Fetch (3 s wait, nothing to read) must not hold a producer's request
// queued behind it: a broker answers a connection's requests one at a
// time. Before long polls of shared clients got connections of their own,
// the produce waited for the rest of the fetch's wait (measured: 1.5 s of
// the 3 s; now ~1 ms).
func TestGatewayLongPollDoesNotDelayOthersOnSharedUpstream(t *testing.T) {
	g := startGateway(t, 1, nil)
	prod := client(t, g.srv.KafkaAddr())
	produceN(t, prod, "orders", 0, 6) // connections, producer id and metadata are settled
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(3*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			if cons.PollFetches(ctx).NumRecords() > 0 {
				select {
				case got <- struct{}{}:
				default:
				}
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond) // the consumer's fetches wait upstream now

	for i := 0; i < 3; i++ {
		start := time.Now()
		produceN(t, prod, "orders", 100+i, 1)
		took := time.Since(start)
		if took > time.Second {
			t.Fatalf("produce %d took %v behind another client's long poll", i, took)
		}
		t.Logf("produce %d acknowledged in %v while a long poll waits on the shared connection", i, took)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the long-polling consumer never saw the records")
	}
}

// TestGatewayMaxFetchBytesCapsForwardedFetch: a Fetch asking for 50 MB is
// forwarded with --max-fetch-bytes as its MaxBytes, so the upstream
// answers at most that much (plus the one batch Kafka always returns).
// Likewise the memory budget's room for the client's IP when it is less
// (fitted): the answer is read into memory whole before the loop charges
// it, so an unfitted one (1 MB here, against an IP's share of 120 KB)
// would be held beyond the budget; the embedded broker's decoded Fetch
// was already fitted this way (fitFetch), the forwarded one was not.
func TestGatewayMaxFetchBytesCapsForwardedFetch(t *testing.T) {
	t.Parallel()
	const limit = 120 << 10
	const batch = 50 << 10
	for _, tc := range []struct {
		name     string
		maxFetch int64
		lim      func(*limits.Config)
		wantMax  int // record bytes in the answer
		wantMin  int
	}{
		{"capped", limit, nil, limit + batch, batch},
		{"uncapped", 0, nil, 25 * batch, 20 * batch},
		{"fitted to the IP's share of the memory budget", 0, func(l *limits.Config) {
			l.MemoryLimitBytes, l.MemoryPerIPPercent = 100*limit, 1 // 120 KiB per IP
		}, limit + batch, batch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, 1000, tc.lim, func(c *gateway.Config) { c.MaxFetchBytes = tc.maxFetch })
			prod := client(t, g.srv.KafkaAddr(), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < 20; i++ { // one batch each
				v := make([]byte, batch)
				_, _ = rand.Read(v)
				if err := prod.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: v}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, prod)
			if err != nil {
				t.Fatal(err)
			}
			leader := int32(-1)
			var id [16]byte
			for _, tp := range meta.Topics {
				if tp.Topic == nil || *tp.Topic != "orders" {
					continue
				}
				for _, p := range tp.Partitions {
					if p.Partition == 0 {
						leader, id = p.Leader, tp.TopicID
					}
				}
			}
			req := kmsg.NewPtrFetchRequest()
			req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 100, 1, 50<<20
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = "orders", id // kgo sends the newest version both sides know
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = 0, 0, 50<<20, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, prod.Broker(int(leader)))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode != 0 {
						t.Fatalf("fetch error %d (leader %d, %+v)", rp.ErrorCode, leader, meta.Brokers)
					}
					n += len(rp.RecordBatches)
				}
			}
			if n < tc.wantMin || n > tc.wantMax {
				t.Fatalf("%d record bytes answered, want %d to %d", n, tc.wantMin, tc.wantMax)
			}
			t.Logf("max-fetch-bytes %d: %d record bytes answered to a Fetch asking for 50 MB", tc.maxFetch, n)
		})
	}
}

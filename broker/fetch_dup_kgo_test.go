package broker_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// TestLongPollNamingOnePartition100kTimes: 8 long-poll fetches, each naming
// partition 0 100,000 times, wait on an empty topic; 20 produces follow.
// Each fetch is answered once, with one partition, and the server
// allocates a few MiB for it all (before: every produce re-ran every
// waiter over 100,000 partitions in a new goroutine, and each answer held
// 100,000 copies of the batch).
//
// Such a Fetch is ~3.3 MB, which --max-non-produce-request-size (1 MiB by
// default) refuses before decoding
// (TestFetchNamingOnePartition100kTimesIsRefusedByDefault). That other
// defense is lifted here to 64 MiB so the fetch waiters' dedupe is what is
// tested.
func TestLongPollNamingOnePartition100kTimes(t *testing.T) {
	srv := testserver.Start(t, testserver.WithLimits(func(c *limits.Config) { c.MaxNonProduceRequestSize = 64 << 20 }))
	addr := srv.KafkaAddr()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ct := kmsg.NewPtrCreateTopicsRequest()
	tp := kmsg.NewCreateTopicsRequestTopic()
	tp.Topic, tp.NumPartitions, tp.ReplicationFactor = "dup", 1, 1
	ct.Topics = append(ct.Topics, tp)
	if _, err := ct.RequestWith(ctx, admin); err != nil {
		t.Fatal(err)
	}

	const fetches = 8
	newReq := func() *kmsg.FetchRequest { return dupFetch(100000, 60000) } // one each: kgo sets its version

	clients := make([]*kgo.Client, fetches)
	for i := range clients {
		if clients[i], err = kgo.NewClient(kgo.SeedBrokers(addr)); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
		if err := clients[i].Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waiting := srv.Metrics.GetOrCreateGauge("floodgate_fetch_waiting", nil)
	var wg sync.WaitGroup
	parts := make([]int, fetches)
	errs := make([]error, fetches)
	for i, cl := range clients {
		wg.Add(1)
		req := newReq()
		go func() {
			defer wg.Done()
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				errs[i] = err
				return
			}
			for _, t := range resp.Topics {
				parts[i] += len(t.Partitions)
			}
		}()
	}
	for deadline := time.Now().Add(60 * time.Second); waiting.Get() < fetches; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v fetches waiting, want %d", waiting.Get(), fetches)
		}
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("dup"), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()
	maxGoroutines := 0
	for i := 0; i < 20; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("wake up, all of you")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("8 fetches x 100,000 copies of one partition, 20 produces: %.1f MiB allocated, goroutines %d -> at most %d",
		float64(alloc)/(1<<20), goroutinesBefore, maxGoroutines)
	for i := range parts {
		if errs[i] != nil || parts[i] != 1 {
			t.Fatalf("fetch %d: %d partitions answered, err %v; want 1", i, parts[i], errs[i])
		}
	}
	if !raceEnabled && alloc > 64<<20 {
		t.Fatalf("%d bytes allocated while the waiters were woken, want under 64 MiB", alloc)
	}
}

// dupFetch is a Fetch (from offset 0) naming partition 0 of topic "dup"
// dups times, waiting up to waitMs.
func dupFetch(dups int, waitMs int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MinBytes, req.MaxBytes, req.MaxWaitMillis, req.SessionEpoch = -1, 1, 50<<20, waitMs, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "dup"
	for i := 0; i < dups; i++ {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = 1<<20, -1, -1, -1
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	return req
}

// TestFetchNamingOnePartition100kTimesIsRefusedByDefault: with default
// limits, the ~3.3 MB Fetch naming one partition 100,000 times is answered
// at once with MESSAGE_TOO_LARGE (10) and no partition, counted under
// max-non-produce-request-size, without being decoded or parked; a Fetch
// naming it 1,000 times is served.
func TestFetchNamingOnePartition100kTimesIsRefusedByDefault(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	addr := srv.KafkaAddr()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.BrokerMaxWriteBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ct := kmsg.NewPtrCreateTopicsRequest()
	tp := kmsg.NewCreateTopicsRequestTopic()
	tp.Topic, tp.NumPartitions, tp.ReplicationFactor = "dup", 1, 1
	ct.Topics = append(ct.Topics, tp)
	if _, err := ct.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := dupFetch(100000, 10000).RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	took := time.Since(start)
	refused := srv.Metrics.GetOrCreateCounter(`floodgate_requests_refused_total{limit="max-non-produce-request-size"}`).Get()
	t.Logf("Fetch naming one partition 100,000 times: error %d, %d topics, after %v; refused counter %d", resp.ErrorCode, len(resp.Topics), took, refused)
	if resp.ErrorCode != 10 || len(resp.Topics) != 0 || refused != 1 || took > 5*time.Second {
		t.Fatalf("fetch of 100,000 copies: error %d, %d topics, after %v, refused %d; want MESSAGE_TOO_LARGE at once", resp.ErrorCode, len(resp.Topics), took, refused)
	}
	resp, err = dupFetch(1000, 0).RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 {
		t.Fatalf("fetch of 1,000 copies: %v %+v", err, resp)
	}
}

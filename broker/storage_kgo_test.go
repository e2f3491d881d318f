package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/storage"
)

func openFDs(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(des)
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss int64
	fmt.Sscan(string(data), &size, &rss)
	return rss * int64(os.Getpagesize())
}

// healthOK reports whether GET /health answers 200.
func healthOK(t testing.TB, srv *testserver.Server) bool {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + srv.HTTPAddr() + "/health")
	if err != nil {
		t.Logf("/health: %v", err)
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func kgoClient(t testing.TB, srv *testserver.Server, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestCreateTopicsWithThousandsOfPartitionsStaysInDescriptorBudget
// creates a topic of 3,000 partitions on a data dir with a 256-descriptor
// budget for segment files. Before the budget every partition held three
// descriptors (at 10,000 partitions 30,000: past the open-files limit, so
// the listeners got EMFILE and restart failed; storage's
// TestTenThousandPartitionsUnderLowOpenFilesLimit runs that case in the
// real binary); now the process holds the budget, /health and new Kafka
// connections are served, records go in and out of any partition, and a
// restart on the same data dir serves them again.
func TestCreateTopicsWithThousandsOfPartitionsStaysInDescriptorBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 12,000 files")
	}
	const parts, budget = 3000, 256
	dir := t.TempDir()
	opts := []testserver.Option{
		testserver.WithDataDir(dir, storage.FsyncNever),
		testserver.WithBroker(func(c *broker.Config) { c.MaxOpenSegmentFiles = budget }),
	}
	produceConsume := func(t *testing.T, srv *testserver.Server, partition int32, value string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p := kgoClient(t, srv, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "wide", Partition: partition, Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", partition, err)
		}
		c := kgoClient(t, srv, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"wide": {partition: kgo.NewOffset().AtStart()}}))
		var got []string
		for len(got) == 0 || got[len(got)-1] != value {
			fs := c.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("consume partition %d: got %v: %v", partition, got, err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
	}
	t.Run("create", func(t *testing.T) {
		srv := testserver.Start(t, opts...)
		before, rss0 := openFDs(t), rssBytes()
		var peak atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() { // the most descriptors held while the partitions are made
			defer close(sampled)
			for {
				peak.Store(max(peak.Load(), int64(openFDs(t))))
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		admin := kgoClient(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "wide", parts, 1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 120000
		start := time.Now()
		resp, err := req.RequestWith(ctx, admin)
		took := time.Since(start)
		close(stop)
		<-sampled
		if err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create: %v %+v", err, resp)
		}
		after := openFDs(t)
		t.Logf("CreateTopics %d partitions: %v; descriptors %d before, %d after, peak %d (budget %d); RSS %d -> %d MiB; segment files open %v, evictions %v",
			parts, took.Round(time.Millisecond), before, after, peak.Load(), budget, rss0>>20, rssBytes()>>20,
			srv.Metrics.GetOrCreateGauge("floodgate_segment_files_open", nil).Get(), srv.Metrics.GetOrCreateGauge("floodgate_segment_file_evictions", nil).Get())
		if grew := peak.Load() - int64(before); grew > budget+64 {
			t.Fatalf("descriptors grew by %d while creating, budget %d", grew, budget)
		}
		if !healthOK(t, srv) {
			t.Fatal("/health not served after the creation")
		}
		produceConsume(t, srv, parts-1, "last")
		produceConsume(t, srv, 0, "first")
	})
	t.Run("restart", func(t *testing.T) {
		before := openFDs(t)
		start := time.Now()
		srv := testserver.Start(t, opts...)
		took := time.Since(start)
		t.Logf("restart with %d partitions: %v; descriptors +%d", parts, took.Round(time.Millisecond), openFDs(t)-before)
		if grew := openFDs(t) - before; grew > budget+64 {
			t.Fatalf("descriptors grew by %d at start, budget %d", grew, budget)
		}
		if !healthOK(t, srv) {
			t.Fatal("/health not served after restart")
		}
		produceConsume(t, srv, parts-1, "again")
	})
}

// TestTruncatedSealedSegmentIsSkippedByConsumer writes a partition of
// several segments, truncates the first sealed segment in the middle of a
// batch while the broker is down, and consumes from the start with kgo:
// the consumer gets the records before the damage and every record after
// it, instead of KAFKA_STORAGE_ERROR forever; the fence is counted.
func TestTruncatedSealedSegmentIsSkippedByConsumer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const records = 40
	opts := []testserver.Option{
		testserver.WithDataDir(dir, storage.FsyncNever),
		testserver.WithBroker(func(c *broker.Config) { c.MinSegmentBytes = 1024 }),
	}
	value := strings.Repeat("v", 200)
	t.Run("write", func(t *testing.T) {
		srv := testserver.Start(t, opts...)
		admin := kgoClient(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "damaged", 1, 1
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = "segment.bytes", kmsg.StringPtr("1024")
		rt.Configs = append(rt.Configs, c)
		req.Topics = append(req.Topics, rt)
		if resp, err := req.RequestWith(ctx, admin); err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create: %v %+v", err, resp)
		}
		p := kgoClient(t, srv, kgo.MaxBufferedRecords(1), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
		for i := 0; i < records; i++ { // one record per batch: ~4 batches per segment
			if err := p.ProduceSync(ctx, &kgo.Record{Topic: "damaged", Key: []byte(fmt.Sprint(i)), Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	})
	segs, _ := filepath.Glob(filepath.Join(dir, "logs", "*", "0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments: want several", len(segs))
	}
	st, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segs[0], st.Size()-100); err != nil { // inside its last batch
		t.Fatal(err)
	}
	srv := testserver.Start(t, opts...)
	c := kgoClient(t, srv, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"damaged": {0: kgo.NewOffset().AtStart()}}))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var keys []string
	for len(keys) == 0 || keys[len(keys)-1] != fmt.Sprint(records-1) {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumer wedged after %d records %v: %v", len(keys), keys, fs.Errors())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch error: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
	lost := records - len(keys)
	t.Logf("consumed %d of %d records; %d lost with the truncated batch; fenced=%d", len(keys), records, lost,
		srv.Metrics.GetOrCreateCounter("floodgate_segments_fenced_total").Get())
	if lost != 1 {
		t.Fatalf("lost %d records, want the one truncated batch: %v", lost, keys)
	}
	if n := srv.Metrics.GetOrCreateCounter("floodgate_segments_fenced_total").Get(); n != 1 {
		t.Fatalf("floodgate_segments_fenced_total = %d, want 1", n)
	}
	runtime.KeepAlive(srv)
}

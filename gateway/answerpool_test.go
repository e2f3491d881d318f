package gateway_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/gateway"
)

// answerValue is record i's value: 100 B to 24 KB (so Fetch answers span
// many of the pools' size classes), its bytes following from i alone.
func answerValue(i int) []byte {
	v := make([]byte, 100+(i*7919)%24000)
	seed := byte(i * 17)
	for j := range v {
		v[j] = seed + byte(j*13) + byte(j>>8)
	}
	return v
}

// metricValue reads a counter from the gateway's metrics.
func metricValue(t *testing.T, g *gw, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	g.set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}

// TestPooledUpstreamAnswersKeepConsumedRecordsIntact: upstream answers are
// read into the loop's pooled buffers, written to the client from there
// and returned to the pools once written. Four consumers read 600 records
// of 100 B to 24 KB through the gateway, each on its own, with fetch
// limits small enough for hundreds of answers of many sizes, pipelined
// on one upstream connection per broker (and its long-poll connection);
// every record must arrive byte for byte, and the pools must have been
// reused. Race builds (how the tests run) poison every returned buffer,
// so an answer returned before it is written, or handed to the next
// answer while still queued for a client, shows up as corrupt records.
func TestPooledUpstreamAnswersKeepConsumedRecordsIntact(t *testing.T) {
	t.Parallel()
	// Without pipes: the large answers would be relayed through them
	// (splice_test.go), not read into the pools.
	g := startGateway(t, 1, nil, func(c *gateway.Config) { c.SplicePipes = -1 })
	const topic, partitions, records, consumers = "pooled-answers", 3, 600, 4
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	direct := client(t, g.cluster.ListenAddrs()[0], kgo.ProducerBatchMaxBytes(32<<10))
	if _, err := kadm.NewClient(direct).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	recs := make([]*kgo.Record, records)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: answerValue(i)}
	}
	if err := direct.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to kfake: %v", err)
	}
	taken0 := metricValue(t, g, "floodgate_kafka_frame_buffers_taken_total")

	addr := g.srv.KafkaAddr()
	var wg sync.WaitGroup
	errs := make(chan string, consumers)
	for c := 0; c < consumers; c++ {
		cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(int32(64<<10*(c+1))), kgo.FetchMaxPartitionBytes(int32(32<<10*(c+1))), kgo.FetchMaxWait(200*time.Millisecond))
		wg.Add(1)
		go func(c int, cl *kgo.Client) {
			defer wg.Done()
			seen := make([]bool, records)
			got := 0
			for got < records {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					errs <- "consumer " + strconv.Itoa(c) + ": read " + strconv.Itoa(got) + " of " + strconv.Itoa(records) + " records intact"
					return
				}
				bad := ""
				fs.EachError(func(_ string, p int32, err error) {
					bad = "fetch error on partition " + strconv.Itoa(int(p)) + ": " + err.Error()
				})
				fs.EachRecord(func(r *kgo.Record) {
					i, err := strconv.Atoi(string(r.Key))
					switch {
					case err != nil || i < 0 || i >= records:
						bad = "record with a corrupt key " + strconv.Quote(string(r.Key))
					case !bytes.Equal(r.Value, answerValue(i)):
						bad = "record " + strconv.Itoa(i) + " corrupt"
					case seen[i]:
						bad = "record " + strconv.Itoa(i) + " read twice"
					default:
						seen[i] = true
						got++
					}
				})
				if bad != "" {
					errs <- "consumer " + strconv.Itoa(c) + ": " + bad
					return
				}
			}
		}(c, cl)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	taken := metricValue(t, g, "floodgate_kafka_frame_buffers_taken_total") - taken0
	allocated := metricValue(t, g, "floodgate_kafka_frame_buffers_allocated_total")
	t.Logf("pooled answer buffers: %.0f taken, %.0f allocated in all; %.0f requests forwarded", taken, allocated, metricValue(t, g, "floodgate_gateway_requests_forwarded_total"))
	if taken <= allocated {
		t.Errorf("answers took %.0f pool buffers, %.0f allocated: the pools were not reused", taken, allocated)
	}
}

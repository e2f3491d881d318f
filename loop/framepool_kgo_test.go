package loop_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/storage"
)

// pooledValue is record i of producer p: its size (100 B to 24 KB, so
// requests span many of the pools' size classes, small to over a
// megabyte) and its bytes follow from p and i alone.
func pooledValue(p, i int) []byte {
	n := 100 + (i*7919+p*104729)%24000
	v := make([]byte, n)
	seed := byte(p*31 + i*17)
	for j := range v {
		v[j] = seed + byte(j*13) + byte(j>>8)
	}
	return v
}

// counterOf reads a counter of set from its Prometheus text.
func counterOf(t *testing.T, set *metrics.Set, name string) float64 {
	t.Helper()
	var b bytes.Buffer
	set.WritePrometheus(&b)
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

// startKfakeGateway runs floodgate's gateway in front of a three-broker
// kfake, one upstream connection per broker, returning floodgate's Kafka
// address and metrics.
func startKfakeGateway(t *testing.T) (string, *metrics.Set) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	g := testserver.StartGateway(t, cluster.ListenAddrs(), nil, func(c *gateway.Config) {
		c.MaxUpstreamPerBroker = 1
		c.RequestTimeout, c.RefreshInterval = 20*time.Second, time.Second
	})
	return g.Server.KafkaAddr(), g.Metrics
}

// TestPooledFramesKeepProducedRecordsIntact: Produce frames are read into
// pooled buffers and reused once their request is answered. Many producers
// pipeline requests of many sizes (idempotent ones five in flight, acks=1
// ones five in flight too) into the embedded broker in memory, on disk
// (fsync=always, whose answers wait for the syncer) and through the
// gateway to kfake; every record must read back byte for byte, and the
// pools must have been reused. Under the race detector (how the tests
// run) every returned buffer is poisoned, so a frame returned while the
// broker, the answer or an upstream write still read it corrupts records
// (their CRC fails), topic names in answers, or what the upstream gets.
func TestPooledFramesKeepProducedRecordsIntact(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("produces 3 x 16 MB")
	}
	quiet := func(c *limits.Config) { c.ProduceRate, c.FetchRate = 0, 0 }
	tests := []struct {
		name  string
		start func(t *testing.T) (string, *metrics.Set)
	}{
		{"in memory", func(t *testing.T) (string, *metrics.Set) {
			srv := testserver.Start(t, testserver.WithLimits(quiet))
			return srv.KafkaAddr(), srv.Metrics
		}},
		{"on disk, fsync always", func(t *testing.T) (string, *metrics.Set) {
			srv := testserver.Start(t, testserver.WithLimits(quiet), testserver.WithDataDir(t.TempDir(), storage.FsyncAlways))
			return srv.KafkaAddr(), srv.Metrics
		}},
		{"gateway to kfake", startKfakeGateway},
	}
	const producers, records, rounds, partitions = 6, 250, 10, 3
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, set := tt.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			const topic = "pooled"
			admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			if _, err := kadm.NewClient(admin).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
				t.Fatalf("create topic: %v", err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, producers)
			for p := 0; p < producers; p++ {
				opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.NoCompression()),
					kgo.ProducerLinger(2 * time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}
				if p%2 == 1 {
					opts = append(opts, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()),
						kgo.MaxProduceRequestsInflightPerBroker(5))
				}
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				wg.Add(1)
				go func(p int, cl *kgo.Client) {
					defer wg.Done()
					// In rounds, so that buffers are returned and taken again
					// while other producers' requests are in flight.
					for from := 0; from < records; from += records / rounds {
						recs := make([]*kgo.Record, 0, records/rounds)
						for i := from; i < from+records/rounds; i++ {
							recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("%d/%d", p, i)), Value: pooledValue(p, i)})
						}
						if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
							errs <- fmt.Errorf("producer %d: %w", p, err)
							return
						}
					}
				}(p, cl)
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				// An answer a client cannot match (a topic name read from a
				// reused frame) leaves its records retried for ever.
				t.Fatal("produce not acknowledged within 60 s")
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			taken := counterOf(t, set, "floodgate_kafka_frame_buffers_taken_total")
			allocated := counterOf(t, set, "floodgate_kafka_frame_buffers_allocated_total")
			if taken <= allocated {
				t.Fatalf("%v frames taken from the pools, %v allocated: no buffer was reused, the test tested nothing", taken, allocated)
			}
			t.Logf("%v Produce frames read into pooled buffers, %v of them newly allocated", taken, allocated)
			if tt.name == "gateway to kfake" {
				// A frame reused while still queued for its upstream write
				// reaches kfake as garbage, which it answers by closing the
				// connection: the client's retry would hide it.
				if n := counterOf(t, set, "floodgate_gateway_upstream_errors_total"); n != 0 {
					t.Fatalf("%v upstream errors; want none", n)
				}
			}

			cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			seen := map[string]bool{}
			for len(seen) < producers*records {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("read back %d of %d records", len(seen), producers*records)
				}
				fs.EachError(func(topic string, p int32, err error) {
					t.Fatalf("fetch %s[%d]: %v (a corrupt batch fails its CRC)", topic, p, err)
				})
				fs.EachRecord(func(r *kgo.Record) {
					var p, i int
					if _, err := fmt.Sscanf(string(r.Key), "%d/%d", &p, &i); err != nil {
						t.Fatalf("record key %q: %v", r.Key, err)
					}
					if !bytes.Equal(r.Value, pooledValue(p, i)) {
						t.Fatalf("record %s at %s[%d]@%d: %d bytes differ from the %d produced", r.Key, r.Topic, r.Partition, r.Offset,
							len(r.Value), len(pooledValue(p, i)))
					}
					seen[string(r.Key)] = true
				})
			}
		})
	}
}

package bench_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/bench"
)

// TestKafkaRoundtripCountsDuplicatesApart: a broker that writes the first
// produce batch and answers it REQUEST_TIMED_OUT makes the producer (acks=1,
// not idempotent) write that batch again. The consumer counts each record
// once, in the records and the latency, and the second copies as
// duplicates; counted as new records, they could end the run before every
// record had arrived.
func TestKafkaRoundtripCountsDuplicatesApart(t *testing.T) {
	const topic, records = "roundtrip-dups", 200
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	var written atomic.Int64 // records in the batch answered with a timeout
	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.RequestTimedOut, When: func(req kmsg.Request) bool {
		var n int64
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if b.ReadFrom(p.Records) == nil {
					n += int64(b.NumRecords)
				}
			}
		}
		written.Store(n)
		return true
	}})
	r, err := bench.RunKafka(context.Background(), bench.KafkaConfig{Mode: "roundtrip", Brokers: cluster.ListenAddrs(), Clients: 1,
		RecordSize: 64, Records: records, Rate: 2000, Acks: 1, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records, %d latencies, %d duplicates; the faulted batch held %d", r.Records, r.Latency.Count, r.Duplicates, written.Load())
	if written.Load() == 0 {
		t.Fatal("no produce request was answered with a timeout")
	}
	if r.Records != records || r.Latency.Count != records || r.Duplicates != written.Load() {
		t.Errorf("%d records, %d latencies, %d duplicates; want %d, %d and the %d records written twice",
			r.Records, r.Latency.Count, r.Duplicates, records, records, written.Load())
	}
}

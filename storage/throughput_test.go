package storage_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceThroughputModes measures kgo produce throughput (acks=all,
// idempotent) against the binary with --in-memory and each fsync mode, side
// by side in one run. It only runs with FLOODGATE_THROUGHPUT=1 and asserts
// nothing: the numbers go to the test log (see BENCHMARKS-section.md).
func TestProduceThroughputModes(t *testing.T) {
	if os.Getenv("FLOODGATE_THROUGHPUT") != "1" {
		t.Skip("set FLOODGATE_THROUGHPUT=1 to measure")
	}
	bin := buildFloodgate(t)
	modes := [][]string{{"--in-memory"}, {"--fsync", "never"}, {"--fsync", "interval"}, {"--fsync", "always"}}
	var rows []string
	for _, size := range []int{100, 10_000} {
		total := int64(8 << 20) // bytes of values per run
		if size >= 10_000 {
			total = 32 << 20
		}
		for _, mode := range modes {
			srv := newServer(t, bin, append([]string{"--produce-rate-limit", "0"}, mode...)...)
			srv.start()
			cl, err := kgo.NewClient(kgo.SeedBrokers(srv.addr), kgo.DefaultProduceTopic("bench"), kgo.AllowAutoTopicCreation(),
				kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(1<<20))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			val := make([]byte, size)
			n := int(total / int64(size))
			start := time.Now()
			for i := 0; i < n; i++ {
				cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			cancel()
			cl.Close()
			srv.kill()
			rows = append(rows, fmt.Sprintf("| %6d B | %-16s | %10.0f | %8.1f |", size, strings.Join(mode, " "), float64(n)/el.Seconds(), float64(total)/el.Seconds()/1e6))
		}
	}
	t.Logf("\n| record | mode | records/s | MB/s |\n|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

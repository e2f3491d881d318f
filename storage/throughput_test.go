package storage_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/bench"
)

// TestProduceThroughputModes measures produce and consume throughput of the
// binary with --in-memory and each fsync mode, side by side in one run: the
// four servers run at once and are measured in turn, three rounds, medians.
// The load is bench.RunKafka (what `floodgate bench kafka` runs): 4 franz-go
// clients, one partition each, acks=all (idempotent). It only runs with
// FLOODGATE_THROUGHPUT=1 and asserts nothing: the table goes to the test
// log and into the Storage section of BENCHMARKS.md.
func TestProduceThroughputModes(t *testing.T) {
	if os.Getenv("FLOODGATE_THROUGHPUT") != "1" {
		t.Skip("set FLOODGATE_THROUGHPUT=1 to measure")
	}
	const rounds = 3
	bin := buildFloodgate(t)
	modes := [][]string{{"--in-memory"}, {"--fsync", "never"}, {"--fsync", "interval"}, {"--fsync", "always"}}
	servers := make([]*server, len(modes))
	for i, mode := range modes {
		servers[i] = newServer(t, bin, append([]string{"--produce-rate-limit", "0", "--fetch-rate-limit", "0", "--log-level", "warn"}, mode...)...)
		servers[i].start()
	}
	type key struct {
		size int
		op   string
		mode int
	}
	rps := map[key][]float64{}
	mbs := map[key][]float64{}
	p99 := map[key][]float64{}
	sizes := []struct {
		size    int
		records int64
	}{{100, 400_000}, {10_000, 30_000}}
	for _, sz := range sizes {
		for r := 0; r < rounds; r++ {
			for _, op := range []string{"produce", "consume"} {
				for i, srv := range servers {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					res, err := bench.RunKafka(ctx, bench.KafkaConfig{Mode: op, Brokers: []string{srv.addr}, Clients: 4,
						RecordSize: sz.size, Records: sz.records, Acks: -1})
					cancel()
					if err != nil {
						t.Fatalf("%s %s %d B: %v", strings.Join(modes[i], " "), op, sz.size, err)
					}
					if res.Errors > 0 {
						t.Errorf("%s %s %d B: %d errors", strings.Join(modes[i], " "), op, sz.size, res.Errors)
					}
					k := key{sz.size, op, i}
					rps[k] = append(rps[k], res.RecordsPerSec)
					mbs[k] = append(mbs[k], res.MBPerSec)
					p99[k] = append(p99[k], res.Latency.P99MS)
				}
			}
		}
	}
	var rows []string
	for _, sz := range sizes {
		for _, op := range []string{"produce", "consume"} {
			base := median(mbs[key{sz.size, op, 0}])
			for i, mode := range modes {
				k := key{sz.size, op, i}
				lat := "-"
				if op == "produce" {
					lat = fmt.Sprintf("%.1f ms", median(p99[k]))
				}
				rows = append(rows, fmt.Sprintf("| %s %s | `%s` | %s | %s | %s | %.2fx |", op, sizeLabel(sz.size), strings.Join(mode, " "),
					bench.FormatFloat(median(rps[k])), bench.FormatFloat(median(mbs[k])), lat, median(mbs[k])/base))
			}
		}
	}
	t.Logf("\n| case | mode | records/s | MB/s | produce p99 | vs --in-memory |\n|---|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sizeLabel(n int) string {
	if n >= 1000 {
		return fmt.Sprintf("%d KB", n/1000)
	}
	return fmt.Sprintf("%d B", n)
}

package httpapi

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryFamilyHasHelp: every floodgate_ family named in the server's
// source (loop, broker, gateway, httpapi, storage, cmd) has HELP text of
// its own, from MetricDocs or seriesHelp; a new series without one would
// get the generic fallback.
func TestEveryFamilyHasHelp(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile("[`\"](floodgate_[a-z0-9_]+)[{`\"]")
	seen := map[string]bool{}
	for _, dir := range []string{"loop", "broker", "gateway", "httpapi", "storage", "cmd"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllSubmatch(src, -1) {
				seen[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) < 50 {
		t.Fatalf("found %d families in the source: the scan is broken", len(seen))
	}
	for name := range seen {
		if _, ok := seriesHelp[name]; !ok && metricHelp[name] == nil {
			t.Errorf("%s has no HELP text: add it to seriesHelp", name)
		}
	}
}

// TestAppendWithHelpFillsTheLibrarysMetadata: with the library's metadata
// on, each family keeps one HELP (now with text) and one TYPE; the
// library's gauges that only grow are typed counters and its families
// named _count are left out.
func TestAppendWithHelpFillsTheLibrarysMetadata(t *testing.T) {
	src := "# HELP floodgate_requests_total\n# TYPE floodgate_requests_total counter\nfloodgate_requests_total{api=\"Produce\"} 3\n" +
		"# HELP floodgate_memory_usage_bytes\n# TYPE floodgate_memory_usage_bytes gauge\nfloodgate_memory_usage_bytes 5\n" +
		"# HELP go_cpu_count\n# TYPE go_cpu_count gauge\ngo_cpu_count 2\n" +
		"# HELP process_io_read_bytes_total\n# TYPE process_io_read_bytes_total gauge\nprocess_io_read_bytes_total 7\n"
	var dst bytes.Buffer
	appendWithHelp(&dst, []byte(src))
	want := "# HELP floodgate_requests_total Kafka requests, by API.\n# TYPE floodgate_requests_total counter\nfloodgate_requests_total{api=\"Produce\"} 3\n" +
		"# HELP floodgate_memory_usage_bytes " + metricHelp["floodgate_memory_usage_bytes"].Help + "\n# TYPE floodgate_memory_usage_bytes gauge\nfloodgate_memory_usage_bytes 5\n" +
		"# HELP process_io_read_bytes_total Process metric process_io_read_bytes_total (from /proc, written by VictoriaMetrics/metrics).\n# TYPE process_io_read_bytes_total counter\nprocess_io_read_bytes_total 7\n"
	if dst.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", dst.String(), want)
	}
}

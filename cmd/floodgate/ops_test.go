package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestVersionPrintsVersionCommitAndGo: `floodgate --version` and
// `floodgate version` print the -X main.version/main.commit stamps and
// the Go version, and a running server exposes the same in
// floodgate_build_info.
func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	t.Parallel()
	bin := t.TempDir() + "/floodgate"
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-test -X main.commit=abc123",
		"-o", bin, "github.com/floodgate/floodgate/cmd/floodgate").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "floodgate v1.2.3-test (commit abc123, " + runtime.Version() + ")"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("floodgate %v: %v", args, err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("floodgate %v printed %q, want %q", args, got, want)
		}
	}
}

// TestBuildInfoGauge: /metrics of the test-built binary has one
// floodgate_build_info series with value 1 and the Go version.
func TestBuildInfoGauge(t *testing.T) {
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir())
	_, body, err := get(p.http, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^floodgate_build_info\{version="[^"]+",commit="[^"]+",goversion="` + regexp.QuoteMeta(runtime.Version()) + `"\} 1$`)
	if n := len(re.FindAllString(body, -1)); n != 1 {
		t.Fatalf("%d floodgate_build_info series with value 1, want 1:\n%s", n, body)
	}
}

// TestSIGHUPKeepsServing: SIGHUP (three of them) does not end the process
// (it used to exit 129); it logs that a reload was asked for and /health
// still answers 200.
func TestSIGHUPKeepsServing(t *testing.T) {
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir())
	for i := 0; i < 3; i++ {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "reload requested") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload log line after SIGHUP:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.alive(t)
	if code, body, err := get(p.http, "/health"); err != nil || code != 200 {
		t.Fatalf("/health after SIGHUP: %d %q %v\n%s", code, body, err, p.stderr.String())
	}
	p.alive(t)
}

// scrapeAfterTraffic starts the binary, gives it Kafka traffic (a topic
// created, a record produced and fetched) and HTTP traffic (a 404), and
// returns /metrics.
func scrapeAfterTraffic(t *testing.T) string {
	t.Helper()
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir())
	createTopics(t, p.kafka, "promtool")
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.ConsumeTopics("promtool"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceAndFetch(t, cl, "promtool", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if fs := cl.PollFetches(ctx); fs.NumRecords() != 1 {
		t.Fatalf("fetched %d records, want 1: %v", fs.NumRecords(), fs.Errors())
	}
	if code, _, err := get(p.http, "/no-such-route"); err != nil || code != 404 {
		t.Fatalf("GET /no-such-route: %d %v", code, err)
	}
	_, body, err := get(p.http, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestMetricsFollowTheExpositionFormat: after traffic, /metrics of the
// binary has exactly one HELP (with text) and one TYPE per family, a
// TYPE before the family's samples, histograms with le buckets ending at
// +Inf (no VictoriaMetrics vmrange, which histogram_quantile cannot
// read), counters named _total and no other type named _total.
func TestMetricsFollowTheExpositionFormat(t *testing.T) {
	body := scrapeAfterTraffic(t)
	if strings.Contains(body, "vmrange") {
		t.Fatal("/metrics has vmrange buckets")
	}
	if !strings.Contains(body, `floodgate_request_duration_seconds_bucket{api="Produce",le="+Inf"} `) {
		t.Fatalf("no Prometheus buckets for the Produce latency:\n%s", body)
	}
	help, typ := map[string]int{}, map[string]string{}
	lastBucket := map[string]string{} // histogram series -> its last le
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "# HELP "):
			help[f[2]]++
			if len(f) < 4 {
				t.Errorf("HELP without text: %q", line)
			}
		case strings.HasPrefix(line, "# TYPE "):
			if _, dup := typ[f[2]]; dup {
				t.Errorf("second TYPE for %s", f[2])
			}
			typ[f[2]] = f[3]
			if (f[3] == "counter") != strings.HasSuffix(f[2], "_total") {
				t.Errorf("%s is a %s: counters, and only counters, end in _total", f[2], f[3])
			}
		case strings.HasPrefix(line, "#"):
		default:
			name := f[0]
			if i := strings.IndexByte(name, '{'); i >= 0 {
				name = name[:i]
			}
			family := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base := strings.TrimSuffix(name, suf); base != name && (typ[base] == "histogram" || typ[base] == "summary") {
					family = base
				}
			}
			if typ[family] == "" {
				t.Errorf("sample before its family's TYPE: %q", line)
			}
			if typ[family] == "histogram" && strings.HasSuffix(name, "_bucket") {
				le := regexp.MustCompile(`le="([^"]*)"`).FindStringSubmatch(f[0])
				if le == nil {
					t.Errorf("histogram bucket without le: %q", line)
					continue
				}
				lastBucket[regexp.MustCompile(`,?le="[^"]*"`).ReplaceAllString(f[0], "")] = le[1]
			}
		}
	}
	for fam := range typ {
		if help[fam] != 1 {
			t.Errorf("%s has %d HELP lines, want 1", fam, help[fam])
		}
	}
	for series, le := range lastBucket {
		if le != "+Inf" {
			t.Errorf("%s: last bucket le=%q, want +Inf", series, le)
		}
	}
}

// TestPromtoolAcceptsMetrics runs Prometheus' own linter, promtool check
// metrics, on the binary's /metrics after traffic (it exited 3: no HELP or
// TYPE lines). make test installs promtool (Debian package prometheus).
func TestPromtoolAcceptsMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("SKIPPED: promtool not installed (apt-get install prometheus); TestMetricsFollowTheExpositionFormat checks the format rules instead")
	}
	body := scrapeAfterTraffic(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestJSONLogsAreAllJSON: with --log-format json every line floodgate
// writes to stderr is a JSON object, including what libraries print with
// the standard logger before main runs (the metrics library's PSI notice,
// printed where the kernel has no /sys/fs/cgroup/cpu.pressure).
func TestJSONLogsAreAllJSON(t *testing.T) {
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir(), "--log-format", "json")
	if _, _, err := get(p.http, "/health"); err != nil {
		t.Fatal(err)
	}
	_, psiMissing := os.Stat("/sys/fs/cgroup/cpu.pressure")
	sawStdlib := false
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		if strings.HasPrefix(line, "floodgate listening ") {
			continue // --print-listen-addresses writes this one line to stdout, for scripts
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if rec["logger"] == "stdlib" {
			sawStdlib = true
		}
	}
	if psiMissing != nil && !sawStdlib {
		t.Errorf("no PSI cpu.pressure here, so the metrics library logged its notice, but no JSON line carries it:\n%s", p.stderr.String())
	}
}

// TestLogDurationsAreReadable: a duration in a log line reads "1.5s" in
// both formats (slog's JSON handler wrote 1500000000).
func TestLogDurationsAreReadable(t *testing.T) {
	var buf bytes.Buffer
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: readableDurations}),
		slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: readableDurations}),
	} {
		buf.Reset()
		slog.New(h).Info("waited", "wait", 1500*time.Millisecond)
		if !strings.Contains(buf.String(), "1.5s") || strings.Contains(buf.String(), "1500000000") {
			t.Errorf("%T wrote %q, want the duration as 1.5s", h, buf.String())
		}
	}
}

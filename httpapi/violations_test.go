package httpapi_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// logBuffer collects log output across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// line returns the first line holding every one of subs, or "".
func (l *logBuffer) line(subs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range strings.Split(l.b.String(), "\n") {
		if contains(ln, subs...) {
			return ln
		}
	}
	return ""
}

// TestEveryHTTPViolationIsLogged: each limit the gate enforces logs a WARN
// naming the limit, its configured and actual values, the client's IP and
// the route, as the limits document's example shows.
func TestEveryHTTPViolationIsLogged(t *testing.T) {
	var zeros bytes.Buffer
	zw := gzip.NewWriter(&zeros)
	_, _ = zw.Write(make([]byte, 2<<20))
	_ = zw.Close()
	tests := []struct {
		name   string
		set    func(*limits.HTTPConfig)
		run    func(t *testing.T, base string) // makes one request trip the limit
		status int
		want   []string // in one log line
	}{
		{"429 per client", func(c *limits.HTTPConfig) { c.RPSPerClient = 1 },
			func(t *testing.T, base string) {
				for i := 0; i < 12; i++ {
					do(t, client(), "GET", base+"/health", "", nil)
				}
			}, 429, []string{"limit=max-requests-per-second-per-client", "configured=1", "actual=", "route=health"}},
		{"429 global", func(c *limits.HTTPConfig) { c.RPSGlobal = 1 },
			func(t *testing.T, base string) {
				for i := 0; i < 12; i++ {
					do(t, client(), "GET", base+"/topics", "", nil)
				}
			}, 429, []string{"limit=max-requests-per-second-global", "configured=1", "route=topics"}},
		{"503 in flight", func(c *limits.HTTPConfig) { c.MaxInFlight = 1 },
			func(t *testing.T, base string) {
				if a := do(t, client(), "POST", base+"/topics/held", "application/vnd.kafka.json.v2+json",
					strings.NewReader(`{"records":[{"value":1}]}`)); a.status != 200 {
					t.Fatalf("produce: %d %s", a.status, a.body)
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					do(t, client(), "GET", base+"/topics/held/partitions/0/records?offset=1&timeout=1500", "", nil)
				}()
				deadline := time.Now().Add(1200 * time.Millisecond)
				for time.Now().Before(deadline) && do(t, client(), "GET", base+"/topics", "", nil).status != 503 {
					time.Sleep(10 * time.Millisecond)
				}
				<-done
			}, 503, []string{"limit=max-in-flight-requests", "configured=1", "actual=2", "route="}}, // the first refused of the racing requests is logged (once per second)
		{"503 process memory", func(c *limits.HTTPConfig) { c.MaxMemoryBytes = 1 << 20 },
			func(t *testing.T, base string) { do(t, client(), "GET", base+"/topics", "", nil) },
			503, []string{"limit=max-process-memory-bytes", "configured=1048576", "actual=", "route=topics"}},
		{"413 decompression", func(c *limits.HTTPConfig) { c.MaxDecompressionRatio = 0; c.MaxDecompressedBytes = 1 << 20 },
			func(t *testing.T, base string) {
				do(t, client(), "POST", base+"/topics/bomb", "application/vnd.kafka.json.v2+json",
					bytes.NewReader(zeros.Bytes()), "Content-Encoding", "gzip")
			}, 413, []string{"limit=max-decompressed-size-bytes", "configured=1048576", "actual=", "route=topic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(logBuffer)
			srv := startHTTP(t, tt.set, testserver.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
			tt.run(t, "http://"+srv.HTTPAddr())
			want := append([]string{"level=WARN", "client_ip=127.0.0.1"}, tt.want...)
			if logs.line(want...) == "" {
				t.Fatalf("no WARN with %v; log:\n%s", want, logs.b.String())
			}
			t.Log(logs.line(want...))
		})
	}
}

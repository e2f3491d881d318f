package loop_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// TestHTTPMemoryRefusalNamesTheFlag: an HTTP body the memory budget cannot
// hold is answered 503 with a body naming the limit by the flag --help
// shows (request-memory-bytes, request-memory-per-ip-percent, not their
// former names), while floodgate_http_refused_total keeps the label value
// it was published with, which dashboards select on.
func TestHTTPMemoryRefusalNamesTheFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		budget      int64
		perIP       int
		held        int64 // taken from the budget by others first
		body        int
		limit       string
		configured  int64
		publishedAs string
	}{
		{"one IP past its share", 8 << 20, 25, 0, 3 << 20, "request-memory-per-ip-percent", 2 << 20, "memory-limit-per-ip-percent"},
		{"past the whole budget", 4 << 20, 100, 2 << 20, 3 << 20, "request-memory-bytes", 4 << 20, "memory-limit-bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.Start(t, withLimits(func(l *limits.Config) {
				l.MemoryLimitBytes = tt.budget
				l.MemoryPerIPPercent = tt.perIP
			}))
			if !srv.Budget().Reserve(tt.held) {
				t.Fatal("could not fill the budget")
			}
			c := dialFrom(t, "127.0.0.2", srv.HTTPAddr())
			head := fmt.Sprintf("POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\nContent-Length: %d\r\n\r\n", tt.body)
			// The refusal comes while the body streams in; the rest of
			// the body may then meet a closed socket.
			go func() { _, _ = c.Write(append([]byte(head), make([]byte, tt.body)...)) }()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			var v struct {
				Limit      string `json:"limit"`
				Configured int64  `json:"configured"`
			}
			if resp.StatusCode != 503 || json.Unmarshal(b, &v) != nil || v.Limit != tt.limit || v.Configured != tt.configured {
				t.Fatalf("%d %s, want 503 naming %s configured %d", resp.StatusCode, b, tt.limit, tt.configured)
			}
			series := `floodgate_http_refused_total{limit="` + tt.publishedAs + `",code="503"}`
			if n := srv.Metrics.GetOrCreateCounter(series).Get(); n != 1 {
				t.Fatalf("%s = %d, want 1", series, n)
			}
		})
	}
}

package loop_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	cl := &http.Client{Timeout: 5 * time.Second}
	tests := []struct {
		path     string
		status   int
		contains string
	}{
		{"/health", 200, `"ok"`},
		{"/metrics", 200, "floodgate_connections_active"},
		{"/admin/stats", 200, `"limits"`},
		{"/nope", 404, "no such route"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := cl.Get("http://" + srv.HTTPAddr() + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.contains) {
				t.Fatalf("%s: %d %q", tt.path, resp.StatusCode, b)
			}
		})
	}
}

func TestHTTPPipelinedResponsesInOrder(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, err := net.Dial("tcp", srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	paths := []string{"/health", "/nope", "/health", "/metrics", "/nope"}
	var req strings.Builder
	for _, p := range paths {
		req.WriteString("GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, p := range paths {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		want := 200
		if p == "/nope" {
			want = 404
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", p, resp.StatusCode, want)
		}
	}
}

func TestHTTPHeaderTooLargeIs431(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, err := net.Dial("tcp", srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 431 || !strings.Contains(string(b), "max-header") {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
}

// TestHTTPPipelinedInlineAndPoolAnswersInOrder: answers made on the event
// loop (/health, /ready, 404, 405) never overtake the answers of earlier
// requests still in the pool (/topics goes to the broker, /metrics and
// /admin/stats to a worker), however the pipeline interleaves them.
func TestHTTPPipelinedInlineAndPoolAnswersInOrder(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	type step struct {
		req    string
		status int
		marker string // a string only this answer contains
	}
	health := step{"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200, `{"status":"ok"}`}
	ready := step{"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", 200, `{"status":"ready"}`}
	notFound := step{"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no such route"}
	badMethod := step{"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method not allowed"}
	topics := step{"GET /topics HTTP/1.1\r\nHost: x\r\n\r\n", 200, "vnd.kafka"}
	metricsStep := step{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, "floodgate_connections_active"}
	stats := step{"GET /admin/stats HTTP/1.1\r\nHost: x\r\n\r\n", 200, `"limits"`}
	tests := []struct {
		name  string
		steps []step
	}{
		{"inline after pool", []step{topics, health, health, notFound, health}},
		{"alternating", []step{health, topics, health, metricsStep, ready, stats, badMethod, topics, health}},
		{"pool burst then inline burst", []step{topics, metricsStep, topics, stats, health, ready, notFound, health, badMethod, health}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, "", srv.HTTPAddr())
			var all strings.Builder
			for i := 0; i < 20; i++ {
				for _, s := range tt.steps {
					all.WriteString(s.req)
				}
			}
			if _, err := c.Write([]byte(all.String())); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for i := 0; i < 20; i++ {
				for j, s := range tt.steps {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("round %d answer %d: %v", i, j, err)
					}
					b, _ := io.ReadAll(resp.Body)
					got := resp.Header.Get("Content-Type") + " " + string(b)
					if resp.StatusCode != s.status || !strings.Contains(got, s.marker) {
						t.Fatalf("round %d answer %d to %q: %d %.80q, want %d with %q", i, j, strings.Fields(s.req)[1],
							resp.StatusCode, got, s.status, s.marker)
					}
				}
			}
		})
	}
}

// TestHealthAnsweredWithoutAllocation: a pipelined /health goes through
// the real loop (read, parse, route, admission, encode, write) without a
// single allocation per request, client included.
func TestHealthAnsweredWithoutAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; run without -race")
	}
	srv := testserver.Start(t)
	c := dialFrom(t, "", srv.HTTPAddr())
	const depth = 32
	req := "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
	batch := []byte(strings.Repeat(req, depth))
	one := exchangeLen(t, c, req)
	answers := make([]byte, one*depth)
	round := func() {
		if _, err := c.Write(batch); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, answers); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 50; i++ { // warm up buffers, pools and the Request
		round()
	}
	perRound := testing.AllocsPerRun(200, round)
	if !strings.Contains(string(answers[:one]), `{"status":"ok"}`) {
		t.Fatalf("answer %q", answers[:one])
	}
	// Before the fast path: about 9 allocations per request (request,
	// head, job, closures, ticket, response).
	t.Logf("%.3f allocations per /health request (%.1f per round of %d)", perRound/depth, perRound, depth)
	if per := perRound / depth; per > 0.05 {
		t.Fatalf("%.2f allocations per /health request (%.1f per round of %d)", per, perRound, depth)
	}
}

// exchangeLen sends req on c and returns the length of its answer.
func exchangeLen(t *testing.T, c net.Conn, req string) int {
	t.Helper()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(buf[:n]))), nil)
	if err != nil {
		t.Fatalf("answer %q: %v", buf[:n], err)
	}
	resp.Body.Close()
	return n
}

// TestInlineAnswerClosesWhenAsked: an answer made on the loop honours
// Connection: close and HTTP/1.0 (the connection ends after it, nothing
// after it is served) and HEAD (no body).
func TestInlineAnswerClosesWhenAsked(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	tests := []struct {
		name, req string
		closes    bool
		body      bool
	}{
		{"connection close", "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n", true, true},
		{"http/1.0", "GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.0\r\n\r\n", true, true},
		{"head", "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, "", srv.HTTPAddr())
			if _, err := c.Write([]byte(tt.req)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("connection still open after %q", got)
				}
				if err != nil || (!tt.closes && strings.Contains(string(got), "\r\n\r\n")) {
					break
				}
			}
			s := string(got)
			if strings.Count(s, "HTTP/1.1 200") != 1 {
				t.Fatalf("want exactly one answer, got %q", s)
			}
			if tt.closes && !strings.Contains(s, "Connection: close") {
				t.Fatalf("no Connection: close in %q", s)
			}
			if hasBody := strings.HasSuffix(s, "{\"status\":\"ok\"}\n"); hasBody != tt.body {
				t.Fatalf("body sent: %v, want %v: %q", hasBody, tt.body, s)
			}
		})
	}
}

// TestHTTPLingerCloseTakesTheFlag: after a closing answer (431) the
// connection is half-closed and read for --http-linger-timeout, then
// closed, while the client keeps its end open. Before, the linger was a
// constant 2 s. (The header timeout is short so the reaper ticks often.)
func TestHTTPLingerCloseTakesTheFlag(t *testing.T) {
	srv := testserver.Start(t, testserver.WithHTTPLimits(func(c *limits.HTTPConfig) {
		c.LingerTimeout = 300 * time.Millisecond
		c.HeaderReadTimeout = 400 * time.Millisecond
	}))
	c, err := net.Dial("tcp", srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("want 431, got %v %v", resp, err)
	}
	start := time.Now()
	waitFor(t, 5*time.Second, "the lingering connection closed", func() bool { return srv.Stats().Connections == 0 })
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("closed %v after its answer, want about 300ms", el)
	}
}

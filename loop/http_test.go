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
)

func TestHealthAndMetrics(t *testing.T) {
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

package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// answer is a response read off a raw connection.
type answer struct {
	status int
	header http.Header
	body   string
	close  bool // the response said Connection: close
}

// rawExchange writes req on a new connection and reads one response.
func rawExchange(t *testing.T, addr, req string) answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, c)
}

func readAnswer(t *testing.T, c net.Conn) answer {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b), resp.Close}
}

// do sends one request with the shared client.
func do(t *testing.T, cl *http.Client, method, url, ct string, body io.Reader, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b), resp.Close}
}

// limitBody decodes a refusal's JSON body.
func limitBody(t *testing.T, body string) (limit string, configured, actual int64) {
	t.Helper()
	var v struct {
		Limit      string `json:"limit"`
		Configured int64  `json:"configured"`
		Actual     int64  `json:"actual"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("refusal body %q is not JSON: %v", body, err)
	}
	return v.Limit, v.Configured, v.Actual
}

func startHTTP(t *testing.T, fn func(*limits.HTTPConfig), more ...testserver.Option) *testserver.Server {
	t.Helper()
	opts := append([]testserver.Option{testserver.WithHTTPLimits(fn)}, more...)
	return testserver.Start(t, opts...)
}

func client() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

func contains(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// Tests that wait more than they compute call t.Parallel: each owns its
// server on 127.0.0.1:0 and its own metrics set, and asserts nothing
// process-wide. Tests that measure the process (allocations, heap,
// goroutines), bound a latency or count requests admitted per second stay
// sequential; Go runs every sequential test before the parallel ones
// resume, so nothing parallel disturbs them.

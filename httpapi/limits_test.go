package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// TestCodecLimitAnswers covers the answers decided on the wire, before a
// request reaches a worker: 431, 413 on Content-Length (with no body byte
// sent), 413 on a chunked body, 413 for a --route's own body limit, 415
// for an unknown Content-Encoding, 400 for a malformed request.
func TestCodecLimitAnswers(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {
		c.MaxHeaderBytes = 1024
		c.MaxHeaderCount = 10
		c.MaxBodyBytes = 4096
		c.Routes = []limits.Route{{Name: "small", Prefix: "/topics/small", MaxBodyBytes: 100}}
	})
	chunk := strings.Repeat("a", 1000)
	var chunked strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	chunked.WriteString("0\r\n\r\n")
	many := strings.Repeat("X-A: b\r\n", 20)
	tests := []struct {
		name   string
		req    string
		status int
		limit  string
	}{
		{"header bytes", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431, "max-header-size-bytes"},
		{"header count", "GET /health HTTP/1.1\r\nHost: x\r\n" + many + "\r\n", 431, "max-header-count"},
		{"content-length, no body sent", "POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 413, "max-body-size-bytes"},
		{"route body limit", "POST /topics/small HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n", 413, "max-body-size-bytes"},
		{"chunked over limit", "POST /topics/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String(), 413, "max-body-size-bytes"},
		{"unknown encoding", "POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.kafka.json.v2+json\r\nContent-Encoding: snappy-nope\r\nContent-Length: 4\r\n\r\nabcd", 415, "content-encoding"},
		{"malformed", "GET /health HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := rawExchange(t, srv.HTTPAddr(), tt.req)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if lim, _, _ := limitBody(t, a.body); lim != tt.limit {
				t.Fatalf("limit %q, want %q: %s", lim, tt.limit, a.body)
			}
		})
	}
	a := rawExchange(t, srv.HTTPAddr(), tests[2].req)
	if _, conf, act := limitBody(t, a.body); conf != 4096 || act != 1000000 {
		t.Fatalf("configured/actual %d/%d, want 4096/1000000", conf, act)
	}
}

var (
	bombOnce sync.Once
	bomb     []byte
)

// gzipBomb is 1 GiB of zeros as gzip (about 1 MB): one member holding
// 1 MiB of zeros, repeated; gzip readers read concatenated members as one
// stream, and building it stays fast under the race detector.
func gzipBomb(t *testing.T) []byte {
	bombOnce.Do(func() {
		var member bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
		_, _ = zw.Write(make([]byte, 1<<20))
		_ = zw.Close()
		bomb = bytes.Repeat(member.Bytes(), 1024)
	})
	return bomb
}

// TestDecompressionBomb: a ~1 MB gzip body that inflates to 1 GiB is
// refused at the ratio limit, and the server allocates a bounded amount
// of memory doing so (measured as total allocations of the process).
func TestDecompressionBomb(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	body := gzipBomb(t)
	if len(body) > 2<<20 {
		t.Fatalf("bomb is %d bytes", len(body))
	}
	cl := client()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := do(t, cl, "POST", "http://"+srv.HTTPAddr()+"/topics/bomb", "application/vnd.kafka.json.v2+json",
		bytes.NewReader(body), "Content-Encoding", "gzip")
	runtime.ReadMemStats(&after)
	if a.status != 413 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if lim, conf, _ := limitBody(t, a.body); lim != "max-decompression-ratio" || conf != 100 {
		t.Fatalf("limit %q configured %d: %s", lim, conf, a.body)
	}
	// The body (~1 MB) is held a few times (client, socket buffers, loop
	// buffer); inflating even 1% of the bomb would be 10 MB more.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("serving the bomb allocated %d MB", grew>>20)
	}
	// And the size limit on its own.
	srv2 := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxDecompressionRatio = 0; c.MaxDecompressedBytes = 1 << 20 })
	a = do(t, cl, "POST", "http://"+srv2.HTTPAddr()+"/topics/bomb", "application/vnd.kafka.json.v2+json",
		bytes.NewReader(body), "Content-Encoding", "gzip")
	if lim, _, _ := limitBody(t, a.body); a.status != 413 || lim != "max-decompressed-size-bytes" {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
}

// TestGzipBodyAccepted: a small gzip body within the limits is inflated
// and produced.
func TestGzipBodyAccepted(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = io.WriteString(zw, `{"records":[{"value":{"a":1}}]}`)
	_ = zw.Close()
	a := do(t, client(), "POST", "http://"+srv.HTTPAddr()+"/topics/gz", "application/vnd.kafka.json.v2+json",
		&buf, "Content-Encoding", "gzip")
	if a.status != 200 || !strings.Contains(a.body, `"offset":0`) {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
}

// TestSlowlorisHeaderTimeout: 500 connections that send their head slowly
// get 408 and are closed by the header timeout while a normal client is
// served.
func TestSlowlorisHeaderTimeout(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.HeaderReadTimeout = time.Second },
		testserver.WithLimits(func(l *limits.Config) { l.MaxConnectionsPerIP = 2000 }))
	const n = 500
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", srv.HTTPAddr())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	// Keep trickling header bytes: the timeout is on the whole head.
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Add(1)
	go func() {
		defer trickle.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, c := range conns {
				_, _ = io.WriteString(c, "X-"+strconv.Itoa(i)+": y\r\n")
			}
		}
	}()
	// A normal client is served meanwhile.
	a := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/health", "", nil)
	if a.status != 200 {
		t.Fatalf("normal client: %d", a.status)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got408, closed := 0, 0
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c) // nil error: the server closed it
			mu.Lock()
			defer mu.Unlock()
			if bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
				got408++
			}
			if err == nil {
				closed++
			}
		}(c)
	}
	wg.Wait()
	close(stop)
	trickle.Wait()
	if got408 != n || closed != n {
		t.Fatalf("%d of %d slowloris connections got 408, %d were closed", got408, n, closed)
	}
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("closing them took %v", el)
	}
}

// TestRateLimitBurstThenSteady: per-client 10/s with a burst of 100: a
// burst of 150 admits about 100, then a steady stream is admitted at about
// 10/s; refusals carry Retry-After and X-RateLimit-*.
func TestRateLimitBurstThenSteady(t *testing.T) {
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.RPSPerClient = 10 })
	cl := client()
	url := "http://" + srv.HTTPAddr() + "/health"
	start := time.Now()
	ok, refused := 0, 0
	var last answer
	for i := 0; i < 150; i++ {
		a := do(t, cl, "GET", url, "", nil)
		switch a.status {
		case 200:
			ok++
		case 429:
			refused++
			last = a
		default:
			t.Fatalf("status %d", a.status)
		}
	}
	refill := int(time.Since(start).Seconds()*10) + 1
	if ok < 100 || ok > 100+refill {
		t.Fatalf("burst admitted %d of 150, want 100..%d", ok, 100+refill)
	}
	if ra, _ := strconv.Atoi(last.header.Get("Retry-After")); ra < 1 {
		t.Fatalf("Retry-After %q", last.header.Get("Retry-After"))
	}
	if last.header.Get("X-RateLimit-Limit") != "10" || last.header.Get("X-RateLimit-Remaining") != "0" || last.header.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("rate headers %v", last.header)
	}
	if lim, conf, _ := limitBody(t, last.body); lim != "max-requests-per-second-per-client" || conf != 10 {
		t.Fatalf("body %s", last.body)
	}
	// Steady: 2 s at ~50 requests/s; about 20 are admitted.
	ok = 0
	steady := time.Now()
	for time.Since(steady) < 2*time.Second {
		if do(t, cl, "GET", url, "", nil).status == 200 {
			ok++
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok < 14 || ok > 26 {
		t.Fatalf("steady state admitted %d in 2s, want about 20", ok)
	}
}

// TestRouteRateKeyedByHeader: a --route limit keyed by X-API-Key gives
// each key its own bucket.
func TestRouteRateKeyedByHeader(t *testing.T) {
	t.Parallel()
	r, err := limits.ParseRoute("api:/topics,rps=1,burst=3,key=header:X-API-Key")
	if err != nil {
		t.Fatal(err)
	}
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.Routes = []limits.Route{r} })
	cl := client()
	url := "http://" + srv.HTTPAddr() + "/topics"
	count := func(key string) (ok, refused int) {
		for i := 0; i < 6; i++ {
			a := do(t, cl, "GET", url, "", nil, "X-API-Key", key)
			switch a.status {
			case 200:
				ok++
			case 429:
				refused++
				if lim, _, _ := limitBody(t, a.body); lim != "route:api:rps" {
					t.Fatalf("limit %q", lim)
				}
			default:
				t.Fatalf("status %d: %s", a.status, a.body)
			}
		}
		return ok, refused
	}
	okA, refA := count("alice")
	okB, refB := count("bob")
	if okA < 3 || okA > 4 || refA < 2 || okB < 3 || okB > 4 || refB < 2 {
		t.Fatalf("alice %d/%d, bob %d/%d (admitted/refused)", okA, refA, okB, refB)
	}
	// Other routes are not limited by it.
	if a := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/health", "", nil); a.status != 200 {
		t.Fatalf("/health: %d", a.status)
	}
	if m := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/metrics", "", nil).body; !strings.Contains(m,
		`floodgate_http_requests_total{route="api",code="429"} `+strconv.Itoa(refA+refB)) {
		t.Fatal("route metric missing")
	}
}

// TestConcurrencyLimits503: held long-poll fetches fill the in-flight,
// per-event-loop and per-route limits; the next request gets 503 with
// Retry-After, Connection: close and a body naming the limit by its flag
// (the tripped series keeps its published label), and once the fetches
// are answered the accounting is released.
func TestConcurrencyLimits503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		set   func(*limits.HTTPConfig)
		path  string // the refused request
		limit string // in the refusal's body
		label string // of floodgate_http_limit_tripped_total
	}{
		{"in-flight", func(c *limits.HTTPConfig) { c.MaxInFlight = 2 }, "/topics", "max-in-flight-requests", "max-in-flight-requests"},
		{"per event loop", func(c *limits.HTTPConfig) { c.MaxInFlightPerEventLoop = 2 }, "/topics",
			"max-in-flight-requests-per-event-loop", "max-in-flight-requests-per-worker"},
		{"per route", func(c *limits.HTTPConfig) { c.MaxConnectionsPerRoute = 2 }, "/topics/held/partitions/0/records?offset=0&timeout=10",
			"max-connections-per-route", "max-connections-per-route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHTTP(t, tt.set, testserver.WithEventLoops(1))
			cl := client()
			base := "http://" + srv.HTTPAddr()
			if a := do(t, cl, "POST", base+"/topics/held", "application/vnd.kafka.json.v2+json",
				strings.NewReader(`{"records":[{"value":1}]}`)); a.status != 200 {
				t.Fatalf("produce: %d %s", a.status, a.body)
			}
			// Two fetches past the end wait for a record (at most 20 s:
			// the probes below must not race their expiry on a loaded
			// machine); a Kafka producer releases them at the end.
			var held sync.WaitGroup
			for i := 0; i < 2; i++ {
				held.Add(1)
				go func() {
					defer held.Done()
					a := do(t, client(), "GET", base+"/topics/held/partitions/0/records?offset=1&timeout=20000", "", nil)
					if a.status != 200 {
						t.Errorf("held fetch: %d %s", a.status, a.body)
					}
				}()
			}
			// Probe only once the gate admitted both fetches, which then
			// wait in the broker: the loop counts a request in flight
			// before the gate admits it, so InFlight alone would let a
			// probe take the per-loop or per-route slot of a held fetch.
			waiting := srv.Metrics.GetOrCreateGauge("floodgate_fetch_waiting", nil)
			waitFor(t, 10*time.Second, "both fetches wait in the broker", func() bool { return waiting.Get() == 2 })
			deadline := time.Now().Add(5 * time.Second)
			var a answer
			for time.Now().Before(deadline) {
				a = rawExchange(t, srv.HTTPAddr(), "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
				if a.status == 503 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a.status != 503 || a.header.Get("Retry-After") == "" || !a.close {
				t.Fatalf("status %d headers %v: %s", a.status, a.header, a.body)
			}
			if lim, conf, _ := limitBody(t, a.body); lim != tt.limit || conf != 2 {
				t.Fatalf("limit %q configured %d", lim, conf)
			}
			if m := rawExchange(t, srv.HTTPAddr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body; !strings.Contains(m,
				`floodgate_http_limit_tripped_total{limit="`+tt.label+`"} 1`) {
				t.Fatalf("no floodgate_http_limit_tripped_total{limit=%q} 1 in /metrics", tt.label)
			}
			// Probes are exempt.
			if a := rawExchange(t, srv.HTTPAddr(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); a.status != 200 {
				t.Fatalf("/health during overload: %d", a.status)
			}
			released := time.Now()
			produceKgo(t, srv, &kgo.Record{Topic: "held", Partition: 0, Value: []byte("2")})
			held.Wait()
			if d := time.Since(released); d > 10*time.Second {
				t.Fatalf("held fetches answered %v after the record that releases them", d)
			}
			if a := rawExchange(t, srv.HTTPAddr(), "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\n\r\n"); a.status != 200 {
				t.Fatalf("after release: %d %s", a.status, a.body)
			}
		})
	}
}

// TestMemoryLimit: over --max-process-memory-bytes, new requests get 503
// naming that flag (the tripped series keeps its published label
// max-memory-bytes) and /ready is false; /health still answers.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxMemoryBytes = 1 << 20 })
	cl := client()
	base := "http://" + srv.HTTPAddr()
	a := do(t, cl, "GET", base+"/topics", "", nil)
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if lim, conf, act := limitBody(t, a.body); lim != "max-process-memory-bytes" || conf != 1<<20 || act < 1<<20 {
		t.Fatalf("body %s", a.body)
	}
	if a := do(t, cl, "GET", base+"/ready", "", nil); a.status != 503 {
		t.Fatalf("/ready: %d", a.status)
	}
	if a := do(t, cl, "GET", base+"/health", "", nil); a.status != 200 {
		t.Fatalf("/health: %d", a.status)
	}
	m := do(t, cl, "GET", base+"/metrics", "", nil).body
	if !contains(m, `floodgate_connection_limit_reached_total{reason="memory"} 1`, "floodgate_memory_usage_bytes ",
		`floodgate_http_limit_tripped_total{limit="max-memory-bytes"} 1`) {
		t.Fatal("memory metrics missing")
	}
}

// TestQueueFull503: with one worker busy and a queue of one, a further
// request is answered 503 by the loop.
func TestQueueFull503(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {}, testserver.WithWorkers(1),
		testserver.WithLimits(func(l *limits.Config) { l.MaxQueued = 1 }))
	// A pipelined burst on many connections: some must find the queue full.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", srv.HTTPAddr())
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = io.WriteString(c, strings.Repeat("GET /admin/stats HTTP/1.1\r\nHost: x\r\n\r\n", 5))
			a := readAnswer(t, c)
			mu.Lock()
			codes[a.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[503] == 0 {
		t.Skipf("the queue never filled on this machine: %v", codes)
	}
	if codes[200]+codes[503] != 40 {
		t.Fatalf("codes %v", codes)
	}
}

// TestAdminStatsHTTPLimits: /admin/stats lists every HTTP limit with its
// value and how often it tripped.
func TestAdminStatsHTTPLimits(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxHeaderBytes = 512 })
	_ = rawExchange(t, srv.HTTPAddr(), "GET /health HTTP/1.1\r\nHost: x\r\nX: "+strings.Repeat("a", 600)+"\r\n\r\n")
	a := do(t, client(), "GET", "http://"+srv.HTTPAddr()+"/admin/stats", "", nil)
	if a.status != 200 {
		t.Fatal(a.status)
	}
	for _, l := range limits.HTTPTable {
		if !strings.Contains(a.body, `"flag": "`+l.Flag+`"`) {
			t.Fatalf("stats lack %s", l.Flag)
		}
	}
	if !strings.Contains(a.body, "\"flag\": \"max-header-size-bytes\",\n      \"value\": \"512\",") {
		t.Fatalf("header limit value missing:\n%s", a.body)
	}
	i := strings.Index(a.body, `"flag": "max-header-size-bytes"`)
	if !strings.Contains(a.body[i:i+300], `"tripped": 1`) {
		t.Fatalf("tripped count missing: %s", a.body[i:i+300])
	}
	_ = http.StatusOK
}

package loop_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// refusalCase makes one limit refuse new connections from 127.0.0.1 until
// lift is called.
type refusalCase struct {
	name   string
	limit  string // the flag named in the answer
	limits func(*limits.Config)
	// refuse brings the server over the limit and returns what lifts it.
	refuse func(t *testing.T, srv *testserver.Server) (lift func())
}

var refusalCases = []refusalCase{
	{
		name: "max-connections", limit: "max-connections",
		limits: func(l *limits.Config) { l.MaxConnections, l.HTTPReserve = 2, 0 },
		refuse: func(t *testing.T, srv *testserver.Server) func() {
			a, b := dialFrom(t, "127.0.0.2", srv.KafkaAddr()), dialFrom(t, "127.0.0.3", srv.KafkaAddr())
			expectServed(t, a)
			expectServed(t, b)
			return func() { a.Close(); b.Close() }
		},
	},
	{
		name: "max-connections-per-ip", limit: "max-connections-per-ip",
		limits: func(l *limits.Config) { l.MaxConnectionsPerIP = 1 },
		refuse: func(t *testing.T, srv *testserver.Server) func() {
			a := dialFrom(t, "127.0.0.1", srv.KafkaAddr())
			expectServed(t, a)
			return func() { a.Close() }
		},
	},
	{
		name: "memory", limit: "request-memory-bytes",
		limits: func(l *limits.Config) { l.MemoryLimitBytes = 4 << 20 },
		refuse: func(t *testing.T, srv *testserver.Server) func() {
			// What many clients' requests in flight would hold.
			b := srv.Budget()
			n := b.Limit() - b.Used() - 1
			if !b.Reserve(n) || !b.NearLimit() {
				t.Fatal("could not fill the budget")
			}
			var once sync.Once
			return func() { once.Do(func() { b.Release(n) }) }
		},
	},
}

// kgoLog records what kgo logs, as an operator would read it.
type kgoLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *kgoLog) Level() kgo.LogLevel { return kgo.LogLevelWarn }
func (l *kgoLog) Log(level kgo.LogLevel, msg string, kv ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(level, " ", msg, " ", kv))
}
func (l *kgoLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestRefusedKafkaConnectionAnswersKgoWithRetriableQuotaError(t *testing.T) {
	t.Parallel()
	for _, tc := range refusalCases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, withLimits(tc.limits))
			lift := tc.refuse(t, srv)
			defer lift()

			// Without retries the refusal itself is what kgo reports.
			log := new(kgoLog)
			cl := newClient(t, srv.KafkaAddr(), kgo.RequestRetries(0), kgo.WithLogger(log))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			if !errors.Is(err, kerr.ThrottlingQuotaExceeded) {
				t.Fatalf("kgo got %v, want THROTTLING_QUOTA_EXCEEDED", err)
			}
			if !kerr.IsRetriable(err) {
				t.Fatal("the refusal is not retriable for kgo")
			}
			if !strings.Contains(log.String(), "THROTTLING_QUOTA_EXCEEDED") {
				t.Fatalf("kgo logged nothing an operator can act on:\n%s", log.String())
			}
			t.Logf("kgo: %v\nkgo log: %s", err, log.String())

			// With retries it backs off, reconnects and gets through once
			// the limit is lifted.
			answered := srv.Metrics.GetOrCreateCounter(`floodgate_connections_refused_answered_total{listener="kafka"}`)
			before := answered.Get()
			retrying := newClient(t, srv.KafkaAddr(), kgo.RequestRetries(50),
				kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
			time.AfterFunc(600*time.Millisecond, lift)
			start := time.Now()
			if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, retrying); err != nil {
				t.Fatalf("kgo did not get through after the limit was lifted: %v", err)
			}
			if n := answered.Get() - before; n < 2 {
				t.Fatalf("%d refused attempts answered; kgo should have retried", n)
			}
			t.Logf("kgo got through after %v and %d answered refusals", time.Since(start).Round(time.Millisecond), answered.Get()-before)
		})
	}
}

func TestRefusedHTTPConnectionGets503WithTheLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range refusalCases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, withLimits(tc.limits))
			lift := tc.refuse(t, srv)
			defer lift()
			cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := cl.Get("http://" + srv.HTTPAddr() + "/health")
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !resp.Close {
				t.Fatalf("got %d Retry-After=%q close=%v, want 503 with Retry-After and Connection: close",
					resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
			}
			var v struct {
				Error      string `json:"error"`
				Limit      string `json:"limit"`
				Configured int64  `json:"configured"`
			}
			if err := json.Unmarshal(body, &v); err != nil || v.Limit != tc.limit || v.Configured == 0 {
				t.Fatalf("body %q (%v), want the JSON naming %s and its value", body, err, tc.limit)
			}
			t.Logf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		})
	}
}

func TestRefusalsAreBoundedInTimeBytesAndNumber(t *testing.T) {
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxConnections, l.HTTPReserve = 1, 0 }))
	served := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
	expectServed(t, served)

	t.Run("a refused connection that sends nothing is closed within about a second", func(t *testing.T) {
		c := dialFrom(t, "", srv.KafkaAddr())
		start := time.Now()
		expectClosed(t, c, 3*time.Second)
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("closed after %v", d)
		}
	})
	t.Run("a refused connection that sends no request head within 4 KiB is closed at once", func(t *testing.T) {
		c := dialFrom(t, "", srv.KafkaAddr())
		start := time.Now()
		// A frame whose client id runs past the 4 KiB window.
		frame := binary.BigEndian.AppendUint32(nil, 64<<10)
		frame = append(frame, 0, 18, 0, 0, 0, 0, 0, 1, 0x7f, 0xff)
		frame = append(frame, make([]byte, 8<<10)...)
		_, _ = c.Write(frame)
		expectClosed(t, c, 3*time.Second)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("closed after %v", d)
		}
	})
	t.Run("a refused connection that keeps sending after its answer is closed past 4 KiB", func(t *testing.T) {
		c := dialFrom(t, "", srv.KafkaAddr())
		start := time.Now()
		_, _ = c.Write(append(request(apiVersions(3), 1), make([]byte, 64<<10)...))
		expectClosed(t, c, 3*time.Second)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("closed after %v", d)
		}
	})
	t.Run("beyond 256 waiting refusals accepting waits, and every connection is answered or closed", func(t *testing.T) {
		// The server is at its one connection; 300 silent connections
		// are 256 the refuser holds for about a second and 44 more.
		// Before, the 44 were accepted and closed at once, unanswered:
		// under a flood that churn took the server's CPU. Now they wait
		// in the listen backlog until a refusal slot frees.
		unanswered := srv.Metrics.GetOrCreateCounter("floodgate_connections_refused_unanswered_total")
		waits := srv.Metrics.GetOrCreateCounter(`floodgate_accept_waits_total{listener="kafka"}`)
		before, waitsBefore := unanswered.Get(), waits.Get()
		var conns []net.Conn
		for i := 0; i < 300; i++ {
			conns = append(conns, dialFrom(t, "127.0.0.4", srv.KafkaAddr()))
		}
		waitFor(t, 2*time.Second, "the acceptor waiting for room", func() bool { return waits.Get() > waitsBefore })
		time.Sleep(200 * time.Millisecond) // what a closing acceptor would do, it would do now
		if n := unanswered.Get() - before; n != 0 {
			t.Fatalf("%d connections closed unanswered while the refuser was full", n)
		}
		// The served client is not held up by the wait.
		expectServed(t, served)
		for _, c := range conns {
			expectClosed(t, c, 5*time.Second)
		}
	})
}

// TestConnectionsGoneWhileWaitingTakeNoSlot: connections whose clients
// closed them while the acceptor waited for room (after a flood, most of
// the listen backlog) are closed at accept, counted as gone_at_accept,
// and take no connection slot from the next real client.
func TestConnectionsGoneWhileWaitingTakeNoSlot(t *testing.T) {
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxConnections, l.HTTPReserve = 1, 0 }))
	served := dialFrom(t, "127.0.0.2", srv.KafkaAddr())
	expectServed(t, served)
	waits := srv.Metrics.GetOrCreateCounter(`floodgate_accept_waits_total{listener="kafka"}`)
	gone := srv.Metrics.GetOrCreateCounter(`floodgate_connections_closed_total{reason="gone_at_accept"}`)
	for i := 0; i < 256; i++ { // the refuser's slots, held about a second
		dialFrom(t, "127.0.0.5", srv.KafkaAddr())
	}
	waitFor(t, 2*time.Second, "the acceptor waiting for room", func() bool { return waits.Get() > 0 })
	const left = 10
	for i := 0; i < left; i++ {
		dialFrom(t, "127.0.0.6", srv.KafkaAddr()).Close()
	}
	served.Close() // the slot frees: the acceptor takes the backlog
	waitFor(t, 3*time.Second, "the closed connections counted gone at accept", func() bool { return gone.Get() >= left })
	expectServed(t, dialFrom(t, "127.0.0.7", srv.KafkaAddr()))
}

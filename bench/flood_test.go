package bench_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/bench"
)

// holdListener accepts connections on 127.0.0.1 and holds them until the
// test ends: the target of a flood.
func holdListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// misbehavingHTTP is an HTTP server on 127.0.0.1 that answers each request
// at once, except the stallAt-th, which it answers after stall, and the
// failAt-th, whose connection it closes unanswered.
func misbehavingHTTP(t *testing.T, stallAt, failAt int64, stall time.Duration) string {
	t.Helper()
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		switch n.Add(1) {
		case stallAt:
			time.Sleep(stall)
		case failAt:
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.Write([]byte("ok"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/health"
}

// TestFloodProbeIsOneOpenLoopScheduleAndCountsFailures: the established
// client's schedule runs across the whole flood phase, so the requests due
// while one stalled 500 ms are made late and counted (its schedule began
// anew every 100 ms, and they were skipped), and a request that fails
// counts in the latency as one that timed out (it was left out).
func TestFloodProbeIsOneOpenLoopScheduleAndCountsFailures(t *testing.T) {
	const rate = 100
	// Request 1 checks the server, 2 to 21 are before the flood: 40 and
	// 80 are during it.
	url := misbehavingHTTP(t, 40, 80, 500*time.Millisecond)
	during := time.Second
	r, err := bench.RunFlood(context.Background(), bench.FloodConfig{
		Flood:    bench.HoldSpec{Target: holdListener(t), Count: 20, PerIP: 10},
		ProbeURL: url, ProbeRate: rate, Before: 200 * time.Millisecond, During: during})
	if err != nil {
		t.Fatal(err)
	}
	due := rate * (r.FloodOpenS + during.Seconds())
	t.Logf("during the flood: %d requests (%.0f due), %d failed, p99 %.1f ms, max %.1f ms", r.During.Count, due, r.DuringErrors, r.During.P99MS, r.During.MaxMS)
	if float64(r.During.Count) < 0.9*due {
		t.Errorf("%d requests during the flood, want about %.0f (%d/s over %.2f s opening and %v open): the ones due during the stall were skipped",
			r.During.Count, due, rate, r.FloodOpenS, during)
	}
	if r.DuringErrors != 1 || r.During.MaxMS < 2000 {
		t.Errorf("%d errors during the flood, slowest request %.1f ms; want the failed one counted as timed out (2000 ms)", r.DuringErrors, r.During.MaxMS)
	}
}

package attack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/internal/testproc"
)

// fakeServerArg, as the test binary's first argument, makes it run
// serveFake instead of the tests (TestMain): a child process that the
// harness measures as it measures floodgate, with a memory spike and a
// slow /metrics on demand.
const fakeServerArg = "attack-test-fake-server"

// fakeIdleBudget is the fake server's floodgate_memory_used_bytes while it
// holds nothing.
const fakeIdleBudget = 1 << 20

// serveFake runs the fake server: GET /health answers 200; GET /metrics
// answers after -metrics-delay with floodgate_memory_used_bytes
// (fakeIdleBudget, plus a spike's size from its announcement until it is
// freed), floodgate_memory_limit_bytes (the process's RSS when it started:
// a bound of RSSOverLimit above its idle size) and the counters the
// harness's diagnosis reads; GET /spike?after=D&hold=D&mib=N announces a
// spike at once, and after D maps and touches N MiB, holds them for hold
// and unmaps them. It prints "floodgate listening http=ADDR" once bound.
func serveFake(args []string) int {
	fs := flag.NewFlagSet(fakeServerArg, flag.ContinueOnError)
	metricsDelay := fs.Duration("metrics-delay", 0, "how long each GET /metrics takes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	idleRSS, err := bench.ServerProbe{PID: os.Getpid()}.RSS()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var spike atomic.Int64 // bytes announced or held
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(*metricsDelay):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "floodgate_memory_used_bytes %d\nfloodgate_memory_limit_bytes %d\n", fakeIdleBudget+spike.Load(), idleRSS)
		fmt.Fprintf(w, "process_cpu_seconds_total 0\nprocess_minor_pagefaults_total 0\ngo_gc_cpu_seconds_total 0\n")
	})
	mux.HandleFunc("/spike", func(w http.ResponseWriter, r *http.Request) {
		after, err1 := time.ParseDuration(r.URL.Query().Get("after"))
		hold, err2 := time.ParseDuration(r.URL.Query().Get("hold"))
		var mb int
		_, err3 := fmt.Sscan(r.URL.Query().Get("mib"), &mb)
		if err := errors.Join(err1, err2, err3); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		spike.Store(int64(mb) << 20)
		go func() {
			defer spike.Store(0)
			time.Sleep(after)
			if err := testproc.TouchMemory(mb, hold); err != nil {
				fmt.Fprintln(os.Stderr, "spike:", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("floodgate listening http=%s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startFake returns a starter of fake servers (serveFake with args), each
// a child process of its own as floodgate is.
func startFake(t *testing.T, args ...string) Starter {
	return Starter{Server: func(...string) (*Server, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		p, err := bench.StartProc("fake", filepath.Join(t.TempDir(), "fake.log"), append([]string{self, fakeServerArg}, args...)...)
		if err != nil {
			return nil, err
		}
		s := &Server{Target: Target{Name: "fake", PID: p.PID()}, proc: p, metrics: httpClientFrom(goodIP(3), 2*time.Second)}
		for deadline := time.Now().Add(10 * time.Second); s.HTTPAddr == ""; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) || !s.Alive() {
				s.Stop()
				return nil, fmt.Errorf("the fake server did not listen:\n%s", s.Log())
			}
			s.HTTPAddr = printedAddr(p, "http")
		}
		return s, nil
	}}
}

// get requests path of the target's HTTP listener, on its own deadline
// (an attack's context has ended when it leaves).
func get(tg *Target, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+tg.HTTPAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// TestPeakRSSSeesASpikeAfterTheAttackerLeft: a server that takes 192 MiB
// for 50 ms, 100 ms after the attacker left (and counts it in its budget
// until it is freed, so recovery waits for it), breaks the RSS bound. The
// RSS sampled only during the attack never saw it; the kernel's
// high-water mark, reset as the attack began and read after the recovery,
// does.
func TestPeakRSSSeesASpikeAfterTheAttackerLeft(t *testing.T) {
	const spikeMiB = 192
	spikeLater := Attack{Name: "spike-after-leaving", Listener: HTTP, Bounds: Bounds{RSSOverLimit: 64 << 20},
		Run: func(ctx context.Context, tg *Target) error {
			<-ctx.Done()
			return get(tg, fmt.Sprintf("/spike?after=100ms&hold=50ms&mib=%d", spikeMiB))
		}}
	r, err := Run(context.Background(), Config{Baseline: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Watch: 2 * time.Second},
		spikeLater, startFake(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Row(r))
	if !r.Recovered {
		t.Fatalf("not recovered: %s", r.RecoveryState)
	}
	if r.PeakRSS < spikeMiB<<20 || !strings.Contains(strings.Join(r.Failures, "\n"), "peak RSS") {
		t.Errorf("peak RSS %s (high-water mark %s), failures %q; want at least the %d MiB spike, over the bound %s",
			mib(r.PeakRSS), mib(r.RSSHighWater), r.Failures, spikeMiB, mib(r.RSSBound))
	}
}

// TestRecoveryDoesNotCountTheHarnessesOwnReads: a server idle throughout
// whose /metrics takes 300 ms to answer is back to normal at once. The
// harness's own reads (its diagnosis's last read, then each probe's)
// counted in the recovery time: three diagnosis reads and the probe's
// own made 1.2 s, over the 1 s bound.
func TestRecoveryDoesNotCountTheHarnessesOwnReads(t *testing.T) {
	const metricsDelay = 300 * time.Millisecond
	idle := Attack{Name: "idle", Listener: HTTP, Run: func(ctx context.Context, _ *Target) error { <-ctx.Done(); return nil }}
	r, err := Run(context.Background(), Config{Baseline: 200 * time.Millisecond, Duration: 300 * time.Millisecond, Watch: 3 * time.Second},
		idle, startFake(t, "-metrics-delay", metricsDelay.String()), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(Row(r))
	if !r.Recovered || r.Recovery >= metricsDelay {
		t.Errorf("recovery %v (recovered %t: %s), want less than one read of /metrics (%v)", r.Recovery, r.Recovered, r.RecoveryState, metricsDelay)
	}
	if !r.Passed() {
		t.Errorf("an idle server fails: %q", r.Failures)
	}
}

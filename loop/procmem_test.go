package loop_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestProcessMemoryLimitProtectsKafkaAndKeepsProbes raises the process's
// resident memory past --max-process-memory-bytes with a ballast (what a real
// overload would hold) and checks every answer the limit promises, then
// that service resumes once the memory is back.
func TestProcessMemoryLimitProtectsKafkaAndKeepsProbes(t *testing.T) {
	const margin, ballastSize = 96 << 20, 256 << 20
	// The limit is the resident set now plus a margin: return the heap a
	// test before this one freed to the OS first, or the scavenger returns
	// it during this test and the ballast may not reach the limit
	// (seen 1 run in 3 right after TestOversizeProduceAnsweredPerPartitionWithoutBuffering
	// and TestFetchLatencyLeavesOutTheLongPollWait: the watcher never saw
	// the 256 MiB ballast cross a limit 96 MiB above the resident set).
	debug.FreeOSMemory()
	limit := loop.ResidentBytes() + margin
	srv := testserver.Start(t, testserver.WithHTTPLimits(func(h *limits.HTTPConfig) { h.MaxMemoryBytes = limit }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, srv.KafkaAddr(), kgo.DefaultProduceTopic("mem"), kgo.AllowAutoTopicCreation(),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatalf("produce under the limit: %v", err)
	}

	// Outside Go's heap, so that it leaves the resident set the moment it
	// is unmapped (the heap would keep it until the scavenger runs).
	ballast, err := unix.Mmap(-1, 0, ballastSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	waitFor(t, 5*time.Second, "the memory watcher sees the process over its limit", func() bool {
		over, _, _ := srv.API.MemoryOver()
		return over
	})

	// A queued request of an established connection is answered with a
	// retriable error instead of being served: kgo retries it with its
	// backoff (a timed-out produce is never given up, as it may have been
	// written) and it goes through once the memory is back.
	timedOut := srv.Metrics.GetOrCreateCounter(`floodgate_request_errors_total{api="Produce",code="7"}`)
	produced := make(chan error, 1)
	go func() { produced <- cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over")}).FirstErr() }()
	waitFor(t, 5*time.Second, "the produce answered REQUEST_TIMED_OUT and retried", func() bool { return timedOut.Get() >= 2 })
	// A new Kafka connection is refused with item 1's answer.
	fresh := newClient(t, srv.KafkaAddr(), kgo.RequestRetries(0))
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, fresh); !errors.Is(err, kerr.ThrottlingQuotaExceeded) {
		t.Fatalf("new Kafka connection over the limit: %v, want THROTTLING_QUOTA_EXCEEDED", err)
	}
	// Probes answer; other HTTP requests get 503 naming the limit.
	for path, want := range map[string]int{"/health": 200, "/metrics": 200, "/topics": 503} {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + srv.HTTPAddr() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 503 && !strings.Contains(string(body), `"limit":"max-process-memory-bytes"`)) {
			t.Fatalf("GET %s over the limit: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
	for _, series := range []string{`floodgate_requests_refused_total{reason="process_memory"}`,
		`floodgate_connections_rejected_total{reason="process_memory"}`} {
		if srv.Metrics.GetOrCreateCounter(series).Get() == 0 {
			t.Fatalf("%s not counted", series)
		}
	}

	if err := unix.Munmap(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the memory watcher sees the process back under its limit", func() bool {
		over, _, _ := srv.API.MemoryOver()
		return !over
	})
	if err := <-produced; err != nil {
		t.Fatalf("the produce retried over the limit failed: %v", err)
	}
	t.Logf("the produce went through after %d REQUEST_TIMED_OUT answers", timedOut.Get())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after the memory came back: %v", err)
	}
}

package broker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/kafkatest"
)

// TestFetchWaiterPanicIsRecovered: when the responder of a waiting fetch
// panics on the goroutine a produce woke (a REST answer is built there),
// the process lives on, the panic is counted, the waiter is unregistered,
// and later fetches are served. Before, the panic killed the process.
func TestFetchWaiterPanicIsRecovered(t *testing.T) {
	set := metrics.NewSet()
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), Metrics: set})
	t.Cleanup(b.Close)
	createTopic(t, b, "w", 1, nil)
	answered := make(chan struct{})
	b.Handle(kafkatest.LongPoll("w", 0, 10*time.Second, 0), &Client{}, func(kmsg.Response) {
		close(answered)
		panic("responder blew up")
	})
	produce(t, b, "w", 0, 1, time.Now().UnixMilli())
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting fetch was not woken")
	}
	deadline := time.Now().Add(2 * time.Second)
	for set.GetOrCreateCounter("floodgate_fetch_waiter_panics_total").Get() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := set.GetOrCreateCounter("floodgate_fetch_waiter_panics_total").Get(); n != 1 {
		t.Fatalf("floodgate_fetch_waiter_panics_total = %d, want 1", n)
	}
	if n := b.waits.n.Load(); n != 0 {
		t.Fatalf("%d fetches still counted as waiting", n)
	}
	r := call[*kmsg.FetchResponse](t, b, kafkatest.LongPoll("w", 0, 0, 0))
	if len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatal("a fetch after the panic got no records")
	}
}

// TestFetchServesEachPartitionOnce: partitions named again (in the same
// topic entry or a repeated one) are answered once, in first-mention order.
func TestFetchServesEachPartitionOnce(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "d", 3, nil)
	produce(t, b, "d", 1, 1, time.Now().UnixMilli())
	req := kafkatest.LongPoll("d", 0, 0, 2, 1, 2, 2)
	again := kafkatest.LongPoll("d", 0, 0, 1, 0)
	req.Topics = append(req.Topics, again.Topics...)
	r := call[*kmsg.FetchResponse](t, b, req)
	var got []int32
	for _, tp := range r.Topics {
		for _, p := range tp.Partitions {
			got = append(got, p.Partition)
		}
	}
	if len(r.Topics) != 1 || len(got) != 3 || got[0] != 2 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("answered %d topics, partitions %v; want one topic, [2 1 0]", len(r.Topics), got)
	}
}

// TestWaitingFetchesAreBounded: with --max-waiting-fetches 2, a third
// long-poll fetch is answered at once (empty) while two wait, and counted.
func TestWaitingFetchesAreBounded(t *testing.T) {
	set := metrics.NewSet()
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), Metrics: set,
		MaxWaitingFetches: 2})
	t.Cleanup(b.Close)
	createTopic(t, b, "q", 1, nil)
	w1 := send(b, kafkatest.LongPoll("q", 0, 5*time.Second, 0))
	w2 := send(b, kafkatest.LongPoll("q", 0, 5*time.Second, 0))
	start := time.Now()
	r := recv[*kmsg.FetchResponse](t, send(b, kafkatest.LongPoll("q", 0, 5*time.Second, 0)))
	if el := time.Since(start); el > time.Second || len(r.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Fatalf("third fetch answered after %v with %d bytes; want at once, empty", el, len(r.Topics[0].Partitions[0].RecordBatches))
	}
	if n := set.GetOrCreateCounter("floodgate_fetch_wait_refused_total").Get(); n != 1 {
		t.Fatalf("floodgate_fetch_wait_refused_total = %d, want 1", n)
	}
	pending(t, w1, 100*time.Millisecond)
	produce(t, b, "q", 0, 1, time.Now().UnixMilli())
	for _, w := range []<-chan kmsg.Response{w1, w2} {
		if r := recv[*kmsg.FetchResponse](t, w); len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
			t.Fatal("a waiting fetch was woken without the records")
		}
	}
	if n := b.waits.n.Load(); n != 0 {
		t.Fatalf("%d fetches still counted as waiting", n)
	}
}

// TestFetchWaitIsCappedByTheFlag: a long-poll Fetch asking to wait 30 s is
// answered (empty) once --max-fetch-wait-ms passed, not 30 s later. Before,
// the cap was a constant 5 minutes.
func TestFetchWaitIsCappedByTheFlag(t *testing.T) {
	t.Parallel()
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.NewSet(),
		MaxFetchWait: 200 * time.Millisecond})
	t.Cleanup(b.Close)
	createTopic(t, b, "q", 1, nil)
	start := time.Now()
	r := recv[*kmsg.FetchResponse](t, send(b, kafkatest.LongPoll("q", 0, 30*time.Second, 0)))
	if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second || len(r.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Fatalf("fetch answered after %v with %d bytes; want after about 200ms, empty", el, len(r.Topics[0].Partitions[0].RecordBatches))
	}
}

package broker

import (
	"strconv"
	"testing"
	"time"
)

func TestRetentionByTime(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, map[string]string{"retention.ms": "60000"})
	now := time.Now().UnixMilli()
	produce(t, b, "t", 0, 2, now-3_600_000) // an hour old
	produce(t, b, "t", 0, 2, now-120_000)   // two minutes old
	produce(t, b, "t", 0, 2, now)           // new
	before := b.metrics.retentionDelete.Get()
	if n := b.sweepRetention(); n != 2 {
		t.Fatalf("deleted %d batches, want 2", n)
	}
	logStart, next, batches := partitionState(b, "t", 0)
	if logStart != 4 || next != 6 || batches != 1 {
		t.Fatalf("log start %d, next %d, %d batches", logStart, next, batches)
	}
	if got := b.metrics.retentionDelete.Get() - before; got != 2 {
		t.Fatalf("metric counted %d", got)
	}
	if n := b.sweepRetention(); n != 0 {
		t.Fatalf("second sweep deleted %d", n)
	}
}

func TestRetentionBySize(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 2, nil)
	now := time.Now().UnixMilli()
	for i := 0; i < 5; i++ {
		produce(t, b, "t", 0, 1, now)
		produce(t, b, "t", 1, 1, now)
	}
	p := b.lookupTopic("t").partitionOf(0)
	p.mu.Lock()
	one := int64(len(p.log.(*memLog).batches[0].raw))
	p.mu.Unlock()
	// Unlimited by default (retention.bytes=-1): nothing goes.
	if n := b.sweepRetention(); n != 0 {
		t.Fatalf("deleted %d with default configs", n)
	}
	b.mu.Lock()
	b.topics["t"].configs = map[string]string{"retention.bytes": itoa(2*one + one/2)}
	b.mu.Unlock()
	if n := b.sweepRetention(); n != 6 {
		t.Fatalf("deleted %d batches, want 3 per partition", n)
	}
	for _, part := range []int32{0, 1} {
		logStart, next, batches := partitionState(b, "t", part)
		if logStart != 3 || next != 5 || batches != 2 {
			t.Fatalf("partition %d: log start %d, next %d, %d batches", part, logStart, next, batches)
		}
	}
}

func TestRetentionSweeperRuns(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the background sweeper")
	}
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, map[string]string{"retention.ms": "1000"})
	produce(t, b, "t", 0, 1, time.Now().Add(-time.Hour).UnixMilli())
	deadline := time.Now().Add(3*retentionInterval + time.Second)
	for time.Now().Before(deadline) {
		if _, _, n := partitionState(b, "t", 0); n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the background sweeper did not delete the old batch")
}

func itoa(v int64) string {
	return strconv.FormatInt(v, 10)
}

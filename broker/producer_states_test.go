package broker

import (
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// fakeClock is a settable broker clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func producerCount(b *Broker, topic string) int {
	p := b.lookupTopic(topic).partitionOf(0)
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.producers)
}

func TestProducerStatesAreBoundedAndExpire(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	b := New(Config{Logger: slog.New(slog.DiscardHandler), Now: clock.Now, MaxProducerStates: 100, ProducerIDExpiration: time.Hour})
	t.Cleanup(b.Close)
	createTopic(t, b, "t", 1, nil)
	createTopic(t, b, "u", 1, nil)

	// A fresh producer id per batch, over two partitions: the states stay
	// at the bound, the least recently appending forgotten first.
	for pid := int64(0); pid < 5000; pid++ {
		topic := "t"
		if pid%2 == 1 {
			topic = "u"
		}
		wantCode(t, "fresh producer", produceRaw(t, b, topic, 0, idempotentBatch(1, pid, 0, 0)).ErrorCode, kafka.ErrNone)
	}
	if n := producerCount(b, "t") + producerCount(b, "u"); n != 100 {
		t.Fatalf("%d producer states after 5000 producer ids, want the bound 100", n)
	}
	if n := b.states.len(); n != 100 {
		t.Fatalf("table holds %d states, want 100", n)
	}
	// The most recent producer keeps its duplicate detection.
	wantCode(t, "recent producer continues", produceRaw(t, b, "t", 0, idempotentBatch(1, 4998, 0, 1)).ErrorCode, kafka.ErrNone)
	// An evicted producer's next sequence is out of order: the client
	// re-initialises (KIP-360) and goes on.
	wantCode(t, "evicted producer", produceRaw(t, b, "t", 0, idempotentBatch(1, 0, 0, 1)).ErrorCode, kafka.ErrOutOfOrderSequence)

	// After producer.id.expiration.ms without an append, states go.
	clock.advance(time.Hour + time.Second)
	wantCode(t, "after expiry", produceRaw(t, b, "t", 0, idempotentBatch(1, 9999, 0, 0)).ErrorCode, kafka.ErrNone)
	if n := producerCount(b, "t") + producerCount(b, "u"); n != 1 {
		t.Fatalf("%d producer states an hour later, want only the new one", n)
	}
}

// TestInitProducerIDStormHoldsNothing: handing out producer ids keeps no
// state; only appends do, and those are bounded above.
func TestInitProducerIDStormHoldsNothing(t *testing.T) {
	b := newTestBroker(t)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 200000; i++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.ProducerID, req.ProducerEpoch = -1, -1
		r := call[*kmsg.InitProducerIDResponse](t, b, req)
		if r.ErrorCode != 0 || r.ProducerID < 0 {
			t.Fatalf("InitProducerId: %+v", r)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 4<<20 {
		t.Fatalf("200000 InitProducerId left %d bytes on the heap", grown)
	}
	if n := b.states.len(); n != 0 {
		t.Fatalf("%d producer states without an append", n)
	}
}

package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// killableDialer lets a test cut a client off the network as if its
// process died: no LeaveGroup, no more heartbeats.
type killableDialer struct {
	mu     sync.Mutex
	dead   bool
	conns  []net.Conn
	dialer net.Dialer
}

func (d *killableDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return nil, errors.New("killed")
	}
	c, err := d.dialer.DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *killableDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// TestKgoConsumerGroupTakeover runs three kgo group members; one is killed
// without leaving, and the other two must take over its partitions once its
// session expires, with no record lost.
func TestKgoConsumerGroupTakeover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real clients and session timeouts")
	}
	srv := testserver.Start(t, testserver.WithLimits(func(c *limits.Config) { c.GroupMinSessionTimeout = 100 * time.Millisecond }))
	addr := srv.KafkaAddr()
	const topic, group, perPhase = "kgo-group", "kgo-g", 150

	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 3, 1
	ct.Topics = append(ct.Topics, rt)
	if resp, err := ct.RequestWith(ctx, admin); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			r := &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(fmt.Sprint(i))}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	var wg sync.WaitGroup
	dialers := make([]*killableDialer, 3)
	clients := make([]*kgo.Client, 3)
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	for i := range clients {
		dialers[i] = &killableDialer{}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(addr),
			kgo.Dialer(dialers[i].dial),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.SessionTimeout(1500*time.Millisecond),
			kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.RebalanceTimeout(5*time.Second),
			kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.RetryTimeout(3*time.Second),
		)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
		wg.Add(1)
		go func(cl *kgo.Client) {
			defer wg.Done()
			for consumeCtx.Err() == nil {
				fs := cl.PollFetches(consumeCtx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)] = true
					mu.Unlock()
				})
				_ = cl.CommitUncommittedOffsets(consumeCtx)
			}
		}(cl)
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("consumed %d distinct records, want %d", count(), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	produce(0, perPhase)
	waitFor(perPhase)

	// Kill one member: no LeaveGroup; the group notices by session timeout.
	dialers[2].kill()
	produce(perPhase, 2*perPhase)
	waitFor(2 * perPhase)

	stopConsuming()
	for _, cl := range clients[:2] {
		cl.Close()
	}
	wg.Wait()
	go clients[2].Close() // its LeaveGroup cannot get through; do not wait
}

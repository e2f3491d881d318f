package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// heapInUse is the live heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// hugeJoin sends a JoinGroup with meta as its only protocol's metadata
// and, when the broker asks for a member id first, joins again with it.
// It returns the final error code.
func hugeJoin(ctx context.Context, t *testing.T, cl *kgo.Client, group string, meta []byte) int16 {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, 1800000, 1800000
	req.ProtocolType = "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
	for range 2 {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("join %s: %v", group, err)
		}
		if resp.ErrorCode != 79 { // MEMBER_ID_REQUIRED
			return resp.ErrorCode
		}
		req.MemberID = resp.MemberID
	}
	return 79
}

// TestJoinGroupWithHugeMetadataIsRefusedAndNotRetained is the issue's
// "20 JoinGroups with 50 MiB member metadata: 1.7 GB retained for the
// session timeout": with default limits such a join is refused by
// --max-non-produce-request-size (MESSAGE_TOO_LARGE) before it is decoded;
// with that limit raised to let it through, the coordinator refuses it
// with INVALID_REQUEST (--group-max-member-metadata-bytes). Either way
// nothing of it stays on the heap.
func TestJoinGroupWithHugeMetadataIsRefusedAndNotRetained(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 250 MiB over loopback per case")
	}
	tests := []struct {
		name   string
		limits func(*limits.Config)
		want   int16
	}{
		{"default limits", func(*limits.Config) {}, 10},
		{"non-Produce requests up to 100 MiB", func(c *limits.Config) { c.MaxNonProduceRequestSize = 100 << 20 }, 42},
	}
	meta := bytes.Repeat([]byte{1}, 50<<20)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.Start(t, testserver.WithLimits(tc.limits))
			cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.RequestTimeoutOverhead(30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const joins = 4
			hugeJoin(ctx, t, cl, "warm-up", meta) // the loop's buffers grow once
			before := heapInUse()
			for i := range joins {
				if code := hugeJoin(ctx, t, cl, fmt.Sprintf("huge-%d", i), meta); code != tc.want {
					t.Fatalf("join %d with 50 MiB of metadata: error %d, want %d", i, code, tc.want)
				}
			}
			after := heapInUse()
			grown := int64(after) - int64(before)
			t.Logf("heap after %d refused 50 MiB joins: %+.1f MiB (before %.1f MiB)", joins, float64(grown)/(1<<20), float64(before)/(1<<20))
			if grown > 20<<20 {
				t.Fatalf("%d joins of 50 MiB left %.1f MiB on the heap", joins, float64(grown)/(1<<20))
			}
		})
	}
	runtime.KeepAlive(meta)
}

// TestKgoGroupConsumersWorkUnderTightGroupLimits runs a real kgo consumer
// group with every group limit set low but sufficient, while another
// client fills the rest of --max-groups with OffsetCommit at generation -1:
// the consumers still join, consume everything and commit, and the
// attacker's extra group is refused.
func TestKgoGroupConsumersWorkUnderTightGroupLimits(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("real clients")
	}
	srv := testserver.Start(t, testserver.WithLimits(func(c *limits.Config) {
		c.MaxGroups = 3
		c.GroupMaxMembers = 2
		c.GroupMaxMemberMetadataBytes = 4096
		c.GroupMaxMetadataBytes = 16384
		c.GroupMaxOffsets = 8
		c.GroupMinSessionTimeout = 100 * time.Millisecond
	}))
	addr := srv.KafkaAddr()
	const topic, group, records = "limited", "limited-g", 200
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// COORDINATOR_NOT_AVAILABLE is retriable: kgo retries it until its
	// retry timeout (30 s by default) before it reports it.
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 4, 1
	ct.Topics = append(ct.Topics, rt)
	if resp, err := ct.RequestWith(ctx, admin); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	for i := range records {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	commit := func(g string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.Generation = g, -1
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
		resp, err := req.RequestWith(ctx, admin)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit("attacker-1"); code != 0 {
		t.Fatalf("attacker group 1: %d", code)
	}

	start := time.Now()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	consumeCtx, stop := context.WithCancel(ctx)
	defer stop()
	for range 2 {
		c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for consumeCtx.Err() == nil {
				fs := c.PollFetches(consumeCtx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)] = true
					mu.Unlock()
				})
				if len(fs.Records()) > 0 {
					if err := c.CommitUncommittedOffsets(consumeCtx); err != nil && consumeCtx.Err() == nil {
						t.Errorf("commit: %v", err)
					}
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == records {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", n, records)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("consumed %d records in %v", records, time.Since(start))
	stop()
	wg.Wait()
	t.Logf("consumers stopped after %v", time.Since(start))
	// The consumer group and attacker-1 exist; one more group fits, the
	// next does not.
	if code := commit("attacker-2"); code != 0 {
		t.Fatalf("attacker group 2 (within --max-groups): %d", code)
	}
	if code := commit("attacker-3"); code != 15 {
		t.Fatalf("attacker group 3 over --max-groups: error %d, want COORDINATOR_NOT_AVAILABLE (15)", code)
	}
}

// BenchmarkHeartbeatOverNetworkAmongGroups is the measurement over
// the real server: 40,000 attacker groups (a member each, joined over
// Kafka), then one victim member's Heartbeat round trips.
func BenchmarkHeartbeatOverNetworkAmongGroups(b *testing.B) {
	for _, n := range []int{0, 40000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			srv := testserver.Start(b)
			cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			join := func(group string) *kmsg.JoinGroupResponse {
				req := kmsg.NewPtrJoinGroupRequest()
				req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, 1800000, 1800000
				req.ProtocolType = "consumer"
				req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
				for {
					resp, err := req.RequestWith(ctx, cl)
					switch {
					case err == nil && resp.ErrorCode == 79 && req.MemberID == "": // MEMBER_ID_REQUIRED
						req.MemberID = resp.MemberID
					case err != nil || resp.ErrorCode != 0:
						b.Fatalf("join %s: %v %+v", group, err, resp)
					default:
						return resp
					}
				}
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < n; i += 8 {
						join(fmt.Sprint("attacker-", i))
					}
				}()
			}
			wg.Wait()
			r := join("victim")
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Group, hb.MemberID, hb.Generation = "victim", r.MemberID, r.Generation
			b.ResetTimer()
			for range b.N {
				resp, err := hb.RequestWith(ctx, cl)
				if err != nil {
					b.Fatal(err)
				}
				if resp.ErrorCode != 0 && resp.ErrorCode != 27 { // REBALANCE_IN_PROGRESS before the sync
					b.Fatalf("heartbeat: %d", resp.ErrorCode)
				}
			}
		})
	}
}

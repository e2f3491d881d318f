package compat

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestFranzGo drives franz-go: kgo produces (acks=all) and consumes in a
// group (cooperative-sticky, the kgo default), kadm creates the topic and
// lists and describes the group.
func TestFranzGo(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	t.Parallel()
	srv := testserver.Start(t)
	runScenario(t, &franz{addr: srv.KafkaAddr()}, srv.KafkaAddr(), "franz")
}

type franz struct{ addr string }

func (f *franz) newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (f *franz) createTopic(t *testing.T, topic string, n int) {
	cl := f.newClient(t)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(n), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("kadm CreateTopic: %v", err)
	}
}

func (f *franz) produce(t *testing.T, _, topic string, vals []string) {
	cl := f.newClient(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(vals))
	for i, v := range vals {
		recs[i] = kgo.StringRecord(v)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("kgo ProduceSync: %v", err)
	}
}

type franzMember struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (f *franz) startMember(t *testing.T, group, topic, name string, out chan<- rec) member {
	cl := f.newClient(t,
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	ctx, cancel := context.WithCancel(context.Background())
	m := &franzMember{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && m.err == nil {
					m.err = err
				}
			})
			recs := fs.Records()
			for _, r := range recs {
				out <- rec{member: name, partition: r.Partition, offset: r.Offset, value: string(r.Value)}
			}
			if len(recs) > 0 {
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := cl.CommitRecords(cctx, recs...); err != nil && m.err == nil {
					m.err = err
				}
				ccancel()
			}
		}
	}()
	return m
}

func (m *franzMember) close(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	m.cl.Close() // leaves the group
	if m.err != nil {
		t.Fatalf("kgo member: %v", m.err)
	}
}

func (f *franz) describeGroup(t *testing.T, group, topic string, members []string) {
	cl := f.newClient(t)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("kadm ListGroups: %v", err)
	}
	lg, ok := listed[group]
	if !ok {
		t.Fatalf("kadm ListGroups: %s missing from %v", group, listed.Groups())
	}
	if lg.ProtocolType != "consumer" || lg.State != "Stable" {
		t.Fatalf("kadm ListGroups: %+v, want protocol type consumer, state Stable", lg)
	}
	dgs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("kadm DescribeGroups: %v", err)
	}
	dg := dgs[group]
	var clientIDs []string
	for _, m := range dg.Members {
		clientIDs = append(clientIDs, m.ClientID)
	}
	checkDescribed(t, "kadm", dg.State, dg.ProtocolType, clientIDs, members)
	if got := len(dg.AssignedPartitions()[topic]); got != partitions {
		t.Fatalf("kadm DescribeGroups: %d partitions assigned, want %d", got, partitions)
	}
}

// checkDescribed checks a described group: Stable, consumer protocol, and
// exactly the members named (by client id).
func checkDescribed(t *testing.T, who, state, protocolType string, clientIDs, want []string) {
	t.Helper()
	if state != "Stable" || protocolType != "consumer" {
		t.Fatalf("%s: group state %q protocol type %q, want Stable consumer", who, state, protocolType)
	}
	got := map[string]int{}
	for _, id := range clientIDs {
		got[id]++
	}
	for _, w := range want {
		if got[w] != 1 {
			t.Fatalf("%s: members by client id %v, want %v", who, sortedKeys(got), want)
		}
	}
	if len(clientIDs) != len(want) {
		t.Fatalf("%s: %d members %v, want %v", who, len(clientIDs), clientIDs, want)
	}
	t.Logf("   %s: group Stable with members %v", who, clientIDs)
}

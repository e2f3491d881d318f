package compat

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestKafkaGo drives segmentio/kafka-go: Client.CreateTopics, the Writer
// (first with its default RequiredAcks, which is RequireNone, i.e. acks=0:
// those records must arrive all the same; later with RequireAll), the
// Reader with a GroupID (kafka-go's own group client with its fixed old
// protocol versions) committing synchronously, and Client.ListGroups and
// Client.DescribeGroups.
func TestKafkaGo(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	t.Parallel()
	srv := testserver.Start(t)
	runScenario(t, &kafkaGo{addr: srv.KafkaAddr()}, srv.KafkaAddr(), "kafkago")
}

type kafkaGo struct{ addr string }

func (k *kafkaGo) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.addr), Timeout: 10 * time.Second}
}

func (k *kafkaGo) createTopic(t *testing.T, topic string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := k.client().CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: n, ReplicationFactor: 1}},
	})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatalf("kafka-go CreateTopics: %v", err)
	}
}

func (k *kafkaGo) produce(t *testing.T, phase, topic string, vals []string) {
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.addr),
		Topic:        topic,
		Balancer:     &kafka.RoundRobin{},
		BatchTimeout: 10 * time.Millisecond,
	}
	acks := "default (RequireNone, acks=0)"
	if phase != "one" {
		w.RequiredAcks = kafka.RequireAll
		acks = "RequireAll"
	}
	msgs := make([]kafka.Message, len(vals))
	for i, v := range vals {
		msgs[i] = kafka.Message{Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go Writer (acks %s): %v", acks, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("kafka-go Writer.Close: %v", err)
	}
	t.Logf("   kafka-go Writer wrote %d records with acks %s", len(vals), acks)
}

type kafkaGoMember struct {
	r      *kafka.Reader
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (k *kafkaGo) startMember(t *testing.T, group, topic, name string, out chan<- rec) member {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{k.addr},
		GroupID:           group,
		Topic:             topic,
		Dialer:            &kafka.Dialer{ClientID: name, Timeout: 10 * time.Second},
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: 300 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		MaxWait:           300 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		CommitInterval:    0, // synchronous commits
	})
	ctx, cancel := context.WithCancel(context.Background())
	m := &kafkaGoMember{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			msg, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					m.err = err
				}
				return
			}
			out <- rec{member: name, partition: int32(msg.Partition), offset: msg.Offset, value: string(msg.Value)}
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := r.CommitMessages(cctx, msg); err != nil && !errors.Is(err, context.Canceled) {
				m.err = err
			}
			ccancel()
			if m.err != nil {
				return
			}
		}
	}()
	return m
}

func (m *kafkaGoMember) close(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	if err := m.r.Close(); err != nil { // leaves the group
		t.Fatalf("kafka-go Reader.Close: %v", err)
	}
	if m.err != nil {
		t.Fatalf("kafka-go member: %v", m.err)
	}
}

func (k *kafkaGo) describeGroup(t *testing.T, group, topic string, members []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := k.client()
	listed, err := cl.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err == nil {
		err = listed.Error
	}
	if err != nil {
		t.Fatalf("kafka-go ListGroups: %v", err)
	}
	found := false
	for _, g := range listed.Groups {
		if g.GroupID == group {
			found = true
			if g.ProtocolType != "consumer" {
				t.Fatalf("kafka-go ListGroups: %+v, want protocol type consumer", g)
			}
		}
	}
	if !found {
		t.Fatalf("kafka-go ListGroups: %s missing from %+v", group, listed.Groups)
	}
	resp, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatalf("kafka-go DescribeGroups: %v", err)
	}
	if len(resp.Groups) != 1 || resp.Groups[0].Error != nil {
		t.Fatalf("kafka-go DescribeGroups: %+v", resp.Groups)
	}
	g := resp.Groups[0]
	var clientIDs []string
	assigned := 0
	for _, m := range g.Members {
		clientIDs = append(clientIDs, m.ClientID)
		for _, at := range m.MemberAssignments.Topics {
			if at.Topic == topic {
				assigned += len(at.Partitions)
			}
		}
	}
	// kafka-go's DescribeGroups does not return the protocol type.
	checkDescribed(t, "kafka-go Client", g.GroupState, "consumer", clientIDs, members)
	if assigned != partitions {
		t.Fatalf("kafka-go DescribeGroups: %d partitions assigned, want %d", assigned, partitions)
	}
}

// TestKafkaGoAcksZeroThenClose writes with kafka-go's default Writer
// (acks=0: no response ever comes) and closes it at once, fifty times, each
// on a new connection: the broker must append what it read before the
// client hung up, so every record arrives.
func TestKafkaGoAcksZeroThenClose(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	t.Parallel()
	srv := testserver.Start(t)
	k := &kafkaGo{addr: srv.KafkaAddr()}
	const topic, rounds, per = "compat-kafkago-acks0", 50, 20
	k.createTopic(t, topic, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < rounds; i++ {
		w := &kafka.Writer{Addr: kafka.TCP(srv.KafkaAddr()), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchTimeout: time.Millisecond}
		msgs := make([]kafka.Message, per)
		for j := range msgs {
			msgs[j] = kafka.Message{Value: []byte(fmt.Sprintf("r%02d-%02d", i, j))}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("round %d: kafka-go Writer (acks=0): %v", i, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("round %d: kafka-go Writer.Close: %v", i, err)
		}
	}
	obs := newObserver(t, srv.KafkaAddr())
	var total int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ends, err := obs.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		total = 0
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total >= rounds*per || time.Now().After(deadline) {
			break
		}
	}
	if total != rounds*per {
		t.Fatalf("%d records stored, want %d (acks=0 writes lost)", total, rounds*per)
	}
}

package compat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestSarama drives IBM/sarama: SyncProducer (acks=all), ConsumerGroup
// (range assignor, the sarama default) marking every message and committing
// with sarama's auto-commit (and on close),
// and ClusterAdmin to create the topic and list and describe groups. It
// runs once with sarama's default protocol version (2.8) and once claiming
// Kafka 4.1, which makes sarama pick newer request versions.
func TestSarama(t *testing.T) {
	if testing.Short() {
		t.Skip("client compatibility suite: skipped with -short")
	}
	t.Parallel()
	for _, v := range []struct {
		name    string
		version sarama.KafkaVersion
	}{
		{"default-" + sarama.DefaultVersion.String(), sarama.DefaultVersion}, // Fetch v12 (flexible)
		{"0.11", sarama.V0_11_0_2}, // the oldest with record batches: Fetch v5, Produce v3, JoinGroup v1
		{"1.0", sarama.V1_0_0_0},   // Fetch v6
		{"2.1", sarama.V2_1_0_0},   // Fetch v10, OffsetCommit v4
		{"4.1", sarama.V4_1_0_0},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv := testserver.Start(t)
			runScenario(t, &saramaClient{addr: srv.KafkaAddr(), version: v.version}, srv.KafkaAddr(), "sarama")
		})
	}
}

type saramaClient struct {
	addr    string
	version sarama.KafkaVersion
}

func (s *saramaClient) config(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = s.version
	cfg.ClientID = clientID
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func (s *saramaClient) admin(t *testing.T) sarama.ClusterAdmin {
	t.Helper()
	adm, err := sarama.NewClusterAdmin([]string{s.addr}, s.config("compat-sarama-admin"))
	if err != nil {
		t.Fatalf("sarama NewClusterAdmin: %v", err)
	}
	return adm
}

func (s *saramaClient) createTopic(t *testing.T, topic string, n int) {
	adm := s.admin(t)
	defer adm.Close()
	if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(n), ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("sarama CreateTopic: %v", err)
	}
}

func (s *saramaClient) produce(t *testing.T, _, topic string, vals []string) {
	cfg := s.config("compat-sarama-producer")
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer([]string{s.addr}, cfg)
	if err != nil {
		t.Fatalf("sarama NewSyncProducer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(vals))
	for i, v := range vals {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions), Value: sarama.StringEncoder(v)}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama SendMessages: %v", err)
	}
}

type saramaMember struct {
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (m *saramaMember) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
}

// saramaHandler delivers and marks every message; sarama commits the marks.
type saramaHandler struct {
	name string
	out  chan<- rec
	m    *saramaMember
}

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.out <- rec{member: h.name, partition: msg.Partition, offset: msg.Offset, value: string(msg.Value)}
			sess.MarkMessage(msg, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (s *saramaClient) startMember(t *testing.T, group, topic, name string, out chan<- rec) member {
	cfg := s.config(name)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 300 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup([]string{s.addr}, group, cfg)
	if err != nil {
		t.Fatalf("sarama NewConsumerGroup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaMember{cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			if !errors.Is(err, context.Canceled) {
				m.fail(err)
			}
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, saramaHandler{name: name, out: out, m: m}); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
					return
				}
				m.fail(err)
				return
			}
		}
	}()
	return m
}

func (m *saramaMember) close(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	if err := m.cg.Close(); err != nil { // leaves the group
		t.Fatalf("sarama ConsumerGroup.Close: %v", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		t.Fatalf("sarama member: %v", m.err)
	}
}

func (s *saramaClient) describeGroup(t *testing.T, group, topic string, members []string) {
	adm := s.admin(t)
	defer adm.Close()
	listed, err := adm.ListConsumerGroups()
	if err != nil {
		t.Fatalf("sarama ListConsumerGroups: %v", err)
	}
	if listed[group] != "consumer" {
		t.Fatalf("sarama ListConsumerGroups: %v, want %s of type consumer", listed, group)
	}
	descs, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil {
		t.Fatalf("sarama DescribeConsumerGroups: %v", err)
	}
	if len(descs) != 1 || descs[0].GroupId != group {
		t.Fatalf("sarama DescribeConsumerGroups: %+v", descs)
	}
	d := descs[0]
	if d.Err != sarama.ErrNoError {
		t.Fatalf("sarama DescribeConsumerGroups: %v", d.Err)
	}
	var clientIDs []string
	assigned := 0
	for _, m := range d.Members {
		clientIDs = append(clientIDs, m.ClientId)
		a, err := m.GetMemberAssignment()
		if err != nil {
			t.Fatalf("sarama GetMemberAssignment: %v", err)
		}
		assigned += len(a.Topics[topic])
	}
	checkDescribed(t, "sarama ClusterAdmin", d.State, d.ProtocolType, clientIDs, members)
	if assigned != partitions {
		t.Fatalf("sarama DescribeConsumerGroups: %d partitions assigned, want %d", assigned, partitions)
	}
}

package acl_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/floodgate/floodgate/codec/kafka"
)

// TestGatewayTransactionalProducerNeedsWriteOnItsIDAndTopics: through the
// gateway with ACLs, a transactional producer needs what Kafka asks
// (WRITE on its transactional id and on the topics it adds, READ on the
// group whose offsets it commits), not cluster ALTER: alice, granted WRITE
// on "tx-alice" and on "orders", commits a transaction read back as
// committed; each transactional API she sends for an id, topic or group
// she lacks is answered with the error Kafka gives.
func TestGatewayTransactionalProducerNeedsWriteOnItsIDAndTopics(t *testing.T) {
	t.Parallel()
	login := startRawGuarded(t, kafka.DecodeLimits{MaxPartitions: 1000, MaxNonProduceSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := login("admin")
	adm := kadm.NewClient(admin)
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:alice").TransactionalIDs("tx-alice").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Allow("User:alice").Groups("g-alice").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral),
	} {
		if res, err := adm.CreateACLs(ctx, b); err != nil || res[0].Err != nil {
			t.Fatalf("create ACL: %v %+v", err, res)
		}
	}
	seeds := admin.OptValue(kgo.SeedBrokers).([]string)

	t.Run("WRITE on the transactional id and topic commits a transaction", func(t *testing.T) {
		// Capped below KIP-890 part 2 so that the client adds its
		// partitions with AddPartitionsToTxn (the newer path adds them
		// with the Produce).
		alice := login("alice")
		tx, err := kgo.NewClient(append(alice.Opts(), kgo.SeedBrokers(seeds...), kgo.TransactionalID("tx-alice"),
			kgo.MaxVersions(kversion.V3_9_0()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("in a transaction")}).FirstErr(); err != nil {
			t.Fatalf("transactional produce to orders: %v", err)
		}
		if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit: %v", err)
		}
		consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("orders"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond), kgo.SASL(admin.OptValue(kgo.SASL).([]sasl.Mechanism)...))
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "in a transaction" {
			t.Fatalf("reading the committed transaction back: %v, %d records", err, fs.NumRecords())
		}
	})

	t.Run("with READ on the group a consume-transform-produce session commits its offsets", func(t *testing.T) {
		sess, err := kgo.NewGroupTransactSession(append(login("alice").Opts(), kgo.SeedBrokers(seeds...), kgo.TransactionalID("tx-alice"),
			kgo.MaxVersions(kversion.V3_9_0()), kgo.ConsumerGroup("g-alice"), kgo.ConsumeTopics("orders"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.FetchMaxWait(100*time.Millisecond))...)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		fs := sess.PollFetches(ctx)
		if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
			t.Fatalf("session poll: %v, %d records", err, fs.NumRecords())
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		if err := sess.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("transformed")}).FirstErr(); err != nil {
			t.Fatalf("session produce: %v", err)
		}
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil || !committed {
			t.Fatalf("session commit: committed %v, %v", committed, err)
		}
		offsets, err := adm.FetchOffsets(ctx, "g-alice")
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := offsets.Lookup("orders", 0); !ok || o.Err != nil || o.At != 1 {
			t.Fatalf("g-alice's committed offset of orders/0: %+v (found %v), want 1", o, ok)
		}
	})

	t.Run("a topic without WRITE fails the transactional produce with TOPIC_AUTHORIZATION_FAILED", func(t *testing.T) {
		tx, err := kgo.NewClient(append(login("alice").Opts(), kgo.SeedBrokers(seeds...), kgo.TransactionalID("tx-alice"),
			kgo.MaxVersions(kversion.V3_9_0()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		err = tx.ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("transactional produce to other: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		_ = tx.EndTransaction(ctx, kgo.TryAbort)
	})

	t.Run("a transactional id without WRITE is TRANSACTIONAL_ID_AUTHORIZATION_FAILED", func(t *testing.T) {
		tx, err := kgo.NewClient(append(login("alice").Opts(), kgo.SeedBrokers(seeds...), kgo.TransactionalID("tx-bob"))...)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		// kgo initializes the producer id in BeginTransaction or at the
		// first produce, and reports the failure with the error's name.
		err = tx.BeginTransaction()
		if err == nil {
			err = tx.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
		}
		if err == nil || !strings.Contains(err.Error(), kerr.TransactionalIDAuthorizationFailed.Message) {
			t.Fatalf("produce as tx-bob: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
		}
	})

	t.Run("AddPartitionsToTxn v4+ (brokers' batches) needs CLUSTER_ACTION", func(t *testing.T) {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(4)
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID = "tx-alice", 1
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "orders", []int32{0}
		tx.Topics = append(tx.Topics, tt)
		req.Transactions = append(req.Transactions, tx)
		resp, err := login("alice").Broker(0).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.(*kmsg.AddPartitionsToTxnResponse); r.GetVersion() < 4 || r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
			t.Fatalf("AddPartitionsToTxn v%d answered %v, want CLUSTER_AUTHORIZATION_FAILED", r.GetVersion(), kerr.ErrorForCode(r.ErrorCode))
		}
	})

	// The requests below are sent as a client sends them (v0-v3 for
	// AddPartitionsToTxn: v4+ batches are brokers' and need CLUSTER_ACTION).
	clientVersions := kversion.V3_9_0()
	clientVersions.SetMaxKeyVersion(24, 3)
	alice, err := kgo.NewClient(append(login("alice").Opts(), kgo.SeedBrokers(seeds...), kgo.MaxVersions(clientVersions))...)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	addPartitions := func(txnID string, topics ...string) *kmsg.AddPartitionsToTxnRequest {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(3)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = txnID, 1, 0
		for _, topic := range topics {
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = topic, []int32{0}
			req.Topics = append(req.Topics, rt)
		}
		return req
	}
	txnOffsets := func(txnID, group string, topics ...string) *kmsg.TxnOffsetCommitRequest {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(3)
		req.TransactionalID, req.Group, req.ProducerID, req.Generation = txnID, group, 1, -1
		for _, topic := range topics {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Offset = 1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		return req
	}
	addOffsets := kmsg.NewPtrAddOffsetsToTxnRequest()
	addOffsets.TransactionalID, addOffsets.Group = "tx-alice", "g-txn"
	endTxn := kmsg.NewPtrEndTxnRequest()
	endTxn.TransactionalID = "tx-bob"
	const upstream = -2 // answered by the upstream: not checked
	for _, c := range []struct {
		name string
		req  kmsg.Request
		want map[string]int16 // topic (or "" for the top-level error) -> code
	}{
		{"AddPartitionsToTxn of a topic without WRITE: that topic TOPIC_AUTHORIZATION_FAILED, the rest not attempted",
			addPartitions("tx-alice", "other", "orders"),
			map[string]int16{"other": kerr.TopicAuthorizationFailed.Code, "orders": kerr.OperationNotAttempted.Code}},
		{"AddPartitionsToTxn for a transactional id without WRITE",
			addPartitions("tx-bob", "orders"), map[string]int16{"orders": kerr.TransactionalIDAuthorizationFailed.Code}},
		{"EndTxn for a transactional id without WRITE", endTxn, map[string]int16{"": kerr.TransactionalIDAuthorizationFailed.Code}},
		{"AddOffsetsToTxn for a group without READ", addOffsets, map[string]int16{"": kerr.GroupAuthorizationFailed.Code}},
		{"TxnOffsetCommit for a transactional id without WRITE",
			txnOffsets("tx-bob", "g-txn", "orders"), map[string]int16{"orders": kerr.TransactionalIDAuthorizationFailed.Code}},
		{"TxnOffsetCommit of a topic without READ: that topic TOPIC_AUTHORIZATION_FAILED, the rest forwarded",
			txnOffsets("tx-alice", "g-alice", "other", "orders"), map[string]int16{"other": kerr.TopicAuthorizationFailed.Code, "orders": upstream}},
		{"TxnOffsetCommit for a group without READ",
			txnOffsets("tx-alice", "g-txn", "orders"), map[string]int16{"orders": kerr.GroupAuthorizationFailed.Code}},
		{"AddPartitionsToTxn naming no topic, for a transactional id without WRITE: answered, not closed",
			addPartitions("tx-bob"), map[string]int16{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := alice.Broker(0).Request(ctx, c.req)
			if err != nil {
				t.Fatalf("%s: %v", kmsg.NameForKey(c.req.Key()), err)
			}
			got := map[string]int16{}
			switch r := resp.(type) {
			case *kmsg.AddPartitionsToTxnResponse:
				for _, rt := range r.Topics {
					for _, rp := range rt.Partitions {
						got[rt.Topic] = rp.ErrorCode
					}
				}
			case *kmsg.TxnOffsetCommitResponse:
				for _, rt := range r.Topics {
					for _, rp := range rt.Partitions {
						got[rt.Topic] = rp.ErrorCode
					}
				}
			case *kmsg.EndTxnResponse:
				got[""] = r.ErrorCode
			case *kmsg.AddOffsetsToTxnResponse:
				got[""] = r.ErrorCode
			}
			if len(got) != len(c.want) {
				t.Fatalf("answer %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if v != upstream && got[k] != v {
					t.Errorf("%q answered %v, want %v", k, kerr.ErrorForCode(got[k]), kerr.ErrorForCode(v))
				}
			}
		})
	}
}

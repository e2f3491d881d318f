package acl_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate/floodgate/acl"
	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestGatewayEnforcesACLsAtTheDoor: in gateway mode (frames forwarded as
// bytes to a kfake cluster) clients authenticate to floodgate and the
// raw guard applies the ACLs before anything reaches the upstream.
func TestGatewayEnforcesACLsAtTheDoor(t *testing.T) {
	t.Parallel()
	login := startRawGuarded(t, kafka.DecodeLimits{MaxPartitions: 1000, MaxNonProduceSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := login("alice")
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatalf("alice produce to orders through the gateway: %v", err)
	}
	if err := alice.ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("a")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice produce to other through the gateway: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	topics, err := kadm.NewClient(alice).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); !slices.Equal(names, []string{"orders"}) {
		t.Fatalf("alice sees %v through the gateway, want [orders]", names)
	}
	if err := login("admin").ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("s")}).FirstErr(); err != nil {
		t.Fatalf("super user produce through the gateway: %v", err)
	}
}

// TestGatewayRefusesWhatItCannotCheck: a frame the raw guard cannot decode
// (here a Produce over --max-partitions-per-request) is refused at the
// door, not forwarded unchecked: alice, who may not write to "other",
// cannot get a record into it by sending more partitions than the limit.
func TestGatewayRefusesWhatItCannotCheck(t *testing.T) {
	t.Parallel()
	login := startRawGuarded(t, kafka.DecodeLimits{MaxPartitions: 1, MaxNonProduceSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := login("alice")
	if err := alice.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A Produce sent straight to the broker (a client that skips
	// Metadata): one topic and one partition are 2 > 1, so the guard
	// cannot decode it.
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "other"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = recordbatch.Build([]recordbatch.Record{{Value: []byte("smuggled"), Timestamp: time.Now().UnixMilli()}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := alice.Broker(0).Request(ctx, req)
	if err == nil {
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) == 1 && len(pr.Topics[0].Partitions) == 1 && pr.Topics[0].Partitions[0].ErrorCode == 0 {
			t.Errorf("alice's produce over the decode limit to a topic she may not write was answered with success: %+v", pr.Topics[0].Partitions[0])
		}
	}
	ends, err := kadm.NewClient(login("admin")).ListEndOffsets(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := ends.Lookup("other", 0); !ok || o.Err != nil || o.Offset != 0 {
		t.Fatalf("end offset of other after alice's refused produce: %+v (found %v), want 0", o, ok)
	}
}

// startRawGuarded runs a gateway to a kfake cluster (topics orders and
// other) behind the raw guard with decode, SASL required (admin is a super
// user, alice may write orders), and returns a login for a user.
func startRawGuarded(t *testing.T, decode kafka.DecodeLimits) func(user string) *kgo.Client {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "other"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	dir := t.TempDir()
	users, _ := auth.OpenUsers(dir)
	for _, u := range []string{"admin", "alice"} {
		cred, _ := auth.NewCredential(auth.ScramSHA512, u+u, auth.DefaultIterations)
		if err := users.Set(u, auth.ScramSHA512, cred); err != nil {
			t.Fatal(err)
		}
	}
	store, _ := acl.OpenStore(dir)
	if err := store.Add([]acl.Binding{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders", PatternType: kmsg.ACLResourcePatternTypeLiteral,
		Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeAllow}}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := limits.Defaults()
	srv, err := loop.New(loop.Config{KafkaListen: "127.0.0.1:0", EventLoops: 1, Limits: l, Logger: quiet,
		SASL: auth.NewAuthenticator(users, []string{auth.ScramSHA512}), AuthRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	first, err := loopback.FreePortRange(4)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{Seeds: cluster.ListenAddrs(), ListenHost: "127.0.0.1", PortFirst: first, PortLast: first + 3,
		AdvertisedHost: "127.0.0.1", MaxUpstreamPerBroker: 100, RequestTimeout: 5 * time.Second, Logger: quiet, AddListener: srv.AddKafkaListener})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	guard := acl.NewRawGuard(acl.GuardConfig{Inner: g, Authorizer: acl.NewAuthorizer(store, []string{"admin"}, false), Users: users,
		Enforce: true, Logger: quiet}, func() kafka.DecodeLimits { return decode })
	srv.SetKafkaHandler(guard)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		g.Close()
	})
	login := func(user string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.RequestRetries(1), kgo.RetryTimeout(2*time.Second),
			kgo.SASL(scram.Auth{User: user, Pass: user + user}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	return login
}

// TestGatewayServesNoTopicIDVersions: the ACLs name topics, so through the
// guard a request may not name a topic by its id only (Fetch and Produce
// v13+, OffsetCommit and OffsetFetch v10+, DeleteTopics v6+), which the
// guard would check under the empty name while the upstream serves the
// topic the id names. alice, allowed to read "orders", consumes it with
// kgo (by id she was denied); allowed then to read every topic but
// "other", she fetches "other" by its id: no record of it comes back.
func TestGatewayServesNoTopicIDVersions(t *testing.T) {
	t.Parallel()
	login := startRawGuarded(t, kafka.DecodeLimits{MaxPartitions: 1000, MaxNonProduceSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := login("admin")
	adm := kadm.NewClient(admin)
	// Allowed to read orders alone, a kgo consumer reads it (a v13+
	// Fetch by id was denied under the empty name).
	if res, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpRead).
		ResourcePatternType(kadm.ACLPatternLiteral)); err != nil || res[0].Err != nil {
		t.Fatalf("create ACL: %v %+v", err, res)
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("for alice")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(admin.OptValue(kgo.SeedBrokers).([]string)...), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alicealice"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	fs := consumer.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "for alice" {
		t.Fatalf("alice consuming orders through the guard: %v, %d records", err, fs.NumRecords())
	}
	// Then allowed every topic but other, she fetches other by its id.
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:alice").Topics("*").Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Deny("User:alice").Topics("other").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral),
	} {
		if res, err := adm.CreateACLs(ctx, b); err != nil || res[0].Err != nil {
			t.Fatalf("create ACL: %v %+v", err, res)
		}
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "other", Value: []byte("denied to alice")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	details, err := adm.ListTopics(ctx, "other")
	if err != nil || details["other"].Err != nil {
		t.Fatalf("topic id of other: %v %+v", err, details)
	}
	id := details["other"].ID
	alice := login("alice")
	vers, err := kadm.NewClient(alice).ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, bv := range vers.Sorted() {
		for _, c := range []struct {
			key   int16
			names int16
		}{{0, 12}, {1, 12}, {8, 9}, {9, 9}, {20, 5}, {28, 5}} {
			if max, ok := bv.KeyMaxVersion(c.key); ok && max > c.names {
				t.Errorf("%s advertised up to v%d through the guard: topic ids from v%d", kmsg.NameForKey(c.key), max, c.names+1)
			}
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, 1<<20, 1, 100
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := alice.Broker(0).Request(ctx, req)
	if err != nil {
		return // refused: nothing read
	}
	for _, tr := range resp.(*kmsg.FetchResponse).Topics {
		for _, pr := range tr.Partitions {
			if len(pr.RecordBatches) > 0 {
				t.Fatalf("alice read %d bytes of records of a topic she is denied, by its id (Fetch v%d)", len(pr.RecordBatches), req.GetVersion())
			}
		}
	}
}

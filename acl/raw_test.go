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
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestGatewayEnforcesACLsAtTheDoor: in gateway mode (frames forwarded as
// bytes to a kfake cluster) clients authenticate to floodgate and the
// raw guard applies the ACLs before anything reaches the upstream.
func TestGatewayEnforcesACLsAtTheDoor(t *testing.T) {
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
		Enforce: true, Logger: quiet}, kafka.DecodeLimits{MaxPartitions: 1000, MaxNonProduceSize: 1 << 20})
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

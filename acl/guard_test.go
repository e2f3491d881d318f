package acl_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate/floodgate/acl"
	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/loop"
)

// secured is a server with SASL, --auth-required, ACLs in dir, and the
// users admin (a super user), alice and bob (password: their name twice).
type secured struct {
	*testserver.Server
	dir string
}

// lockedBuffer collects log lines from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startSecured(t *testing.T, dir string, everyone bool) *secured {
	return startSecuredLogging(t, dir, everyone, io.Discard)
}

func startSecuredLogging(t *testing.T, dir string, everyone bool, logTo io.Writer) *secured {
	t.Helper()
	users, err := auth.OpenUsers(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"admin", "alice", "bob"} {
		if _, ok := users.Lookup(u); ok {
			continue
		}
		cred, err := auth.NewCredential(auth.ScramSHA256, u+u, auth.DefaultIterations)
		if err != nil {
			t.Fatal(err)
		}
		if err := users.Set(u, auth.ScramSHA256, cred); err != nil {
			t.Fatal(err)
		}
	}
	store, err := acl.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	authz := acl.NewAuthorizer(store, []string{"admin"}, everyone)
	authn := auth.NewAuthenticator(users, []string{auth.ScramSHA256})
	quiet := slog.New(slog.NewTextHandler(logTo, nil))
	s := testserver.Start(t,
		testserver.WithLoop(func(c *loop.Config) { c.SASL, c.AuthRequired = authn, true }),
		testserver.WithKafkaHandler(func(b *broker.Broker) loop.KafkaHandler {
			return acl.NewGuard(acl.GuardConfig{Inner: b, Authorizer: authz, Users: users, Enforce: true, Logger: quiet})
		}))
	return &secured{Server: s, dir: dir}
}

func (s *secured) client(t *testing.T, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(s.KafkaAddr()), kgo.RequestRetries(1), kgo.RetryTimeout(2 * time.Second),
		kgo.SASL(scram.Auth{User: user, Pass: user + user}.AsSha256Mechanism())}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// grant creates ACLs as admin.
func grant(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) {
	t.Helper()
	res, err := adm.CreateACLs(ctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create ACL %+v: %v", r, r.Err)
		}
	}
}

func TestACLsAllowAndDenyProduceConsumeGroupsAndAdmin(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	s := startSecuredLogging(t, t.TempDir(), false, &logs)
	adm := kadm.NewClient(s.client(t, "admin"))
	if _, err := adm.CreateTopics(ctx(t), 1, 1, nil, "orders", "orders-secret", "other"); err != nil {
		t.Fatal(err)
	}
	grant(t, adm, kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	grant(t, adm, kadm.NewACLs().Allow("User:bob").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
	grant(t, adm, kadm.NewACLs().Deny("User:bob").Topics("orders-secret").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	grant(t, adm, kadm.NewACLs().Allow("User:bob").Groups("g1").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	// admin (super user) writes to orders-secret so bob has something he must not read.
	if err := s.client(t, "admin").ProduceSync(ctx(t), &kgo.Record{Topic: "orders-secret", Value: []byte("s")}).FirstErr(); err != nil {
		t.Fatalf("super user produce: %v", err)
	}

	t.Run("WRITE on a topic is enough for an idempotent producer (KIP-679)", func(t *testing.T) {
		alice := s.client(t, "alice") // franz-go is idempotent by default: InitProducerId first
		if err := alice.ProduceSync(ctx(t), &kgo.Record{Topic: "orders", Value: []byte("o1")}).FirstErr(); err != nil {
			t.Fatalf("alice produce to orders: %v", err)
		}
	})
	t.Run("produce without WRITE is TOPIC_AUTHORIZATION_FAILED", func(t *testing.T) {
		alice := s.client(t, "alice")
		err := alice.ProduceSync(ctx(t), &kgo.Record{Topic: "other", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("alice produce to other: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	})
	t.Run("Metadata lists only describable topics", func(t *testing.T) {
		topics, err := kadm.NewClient(s.client(t, "alice")).ListTopics(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if names := topics.Names(); !slices.Equal(names, []string{"orders"}) {
			t.Fatalf("alice sees topics %v, want [orders]", names)
		}
	})
	t.Run("consume with READ on topic and group", func(t *testing.T) {
		bob := s.client(t, "bob", kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := bob.PollFetches(ctx(t))
		if err := fs.Err(); err != nil {
			t.Fatalf("bob consume orders in g1: %v", err)
		}
		if n := len(fs.Records()); n != 1 {
			t.Fatalf("bob got %d records, want 1", n)
		}
		if err := bob.CommitUncommittedOffsets(ctx(t)); err != nil {
			t.Fatalf("bob commit in g1: %v", err)
		}
	})
	t.Run("DENY wins over a prefixed ALLOW", func(t *testing.T) {
		bob := s.client(t, "bob", kgo.ConsumeTopics("orders-secret"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		fs := bob.PollFetches(ctx(t))
		var got error
		fs.EachError(func(_ string, _ int32, err error) { got = err })
		if !errors.Is(got, kerr.TopicAuthorizationFailed) || len(fs.Records()) != 0 {
			t.Fatalf("bob read orders-secret: err %v, %d records; want TOPIC_AUTHORIZATION_FAILED and none", got, len(fs.Records()))
		}
	})
	t.Run("joining a group without READ is GROUP_AUTHORIZATION_FAILED", func(t *testing.T) {
		bob := s.client(t, "bob", kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g2"))
		fs := bob.PollFetches(ctx(t))
		var got error
		fs.EachError(func(_ string, _ int32, err error) { got = err })
		if !errors.Is(got, kerr.GroupAuthorizationFailed) {
			t.Fatalf("bob join g2: %v, want GROUP_AUTHORIZATION_FAILED", got)
		}
	})
	t.Run("create and delete topics need CREATE and DELETE", func(t *testing.T) {
		aadm := kadm.NewClient(s.client(t, "alice"))
		cr, err := aadm.CreateTopics(ctx(t), 1, 1, nil, "alice-new")
		if err != nil {
			t.Fatal(err)
		}
		if err := cr["alice-new"].Err; !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("alice create topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		dr, err := aadm.DeleteTopics(ctx(t), "orders")
		if err != nil {
			t.Fatal(err)
		}
		if err := dr["orders"].Err; !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("alice delete topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		grant(t, adm, kadm.NewACLs().Allow("User:alice").Topics("alice-").Operations(kadm.OpCreate, kadm.OpDelete).ResourcePatternType(kadm.ACLPatternPrefixed))
		if cr, err := aadm.CreateTopics(ctx(t), 1, 1, nil, "alice-new"); err != nil || cr["alice-new"].Err != nil {
			t.Fatalf("alice create alice-new with CREATE on alice-*: %v %v", err, cr["alice-new"].Err)
		}
		if dr, err := aadm.DeleteTopics(ctx(t), "alice-new"); err != nil || dr["alice-new"].Err != nil {
			t.Fatalf("alice delete alice-new with DELETE on alice-*: %v %v", err, dr["alice-new"].Err)
		}
	})
	t.Run("changes are audited with the principal and client IP", func(t *testing.T) {
		for _, want := range []string{
			`msg="audit: CreateTopics" principal=User:admin client_ip=127.0.0.1`,
			`msg="audit: CreateTopics" principal=User:alice client_ip=127.0.0.1`,
			`msg="audit: DeleteTopics" principal=User:alice client_ip=127.0.0.1`,
			`msg="audit: ACL created" principal=User:admin client_ip=127.0.0.1 acl="User:alice ALLOW WRITE on TOPIC:LITERAL:orders from *"`,
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("no audit line %s in:\n%s", want, logs.String())
			}
		}
	})
	t.Run("only ALTER on the cluster changes ACLs", func(t *testing.T) {
		res, err := kadm.NewClient(s.client(t, "alice")).CreateACLs(ctx(t),
			kadm.NewACLs().Allow("User:alice").Topics("other").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || !errors.Is(res[0].Err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("alice granting herself: %+v, want CLUSTER_AUTHORIZATION_FAILED", res)
		}
	})
}

func TestACLsSurviveARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startSecured(t, dir, false)
	adm := kadm.NewClient(s.client(t, "admin"))
	grant(t, adm, kadm.NewACLs().Allow("User:alice").Topics("kept").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	grant(t, adm, kadm.NewACLs().Allow("User:alice").Topics("gone").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if _, err := adm.DeleteACLs(ctx(t), kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("gone").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Stop(ctx2)

	s2 := startSecured(t, dir, false)
	described, err := kadm.NewClient(s2.client(t, "admin")).DescribeACLs(ctx(t), kadm.NewACLs().AnyResource().Allow().AllowHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range described {
		for _, a := range d.Described {
			names = append(names, a.Name)
		}
	}
	if !slices.Equal(names, []string{"kept"}) {
		t.Fatalf("after restart the ACLs are on %v, want [kept]", names)
	}
	if err := s2.client(t, "alice", kgo.AllowAutoTopicCreation()).ProduceSync(ctx(t), &kgo.Record{Topic: "kept", Value: []byte("v")}).FirstErr(); err != nil &&
		!errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("alice produce to kept after restart: %v", err)
	}
}

func TestSuperUserManagesSCRAMUsersOverKafka(t *testing.T) {
	t.Parallel()
	s := startSecured(t, t.TempDir(), false)
	adm := kadm.NewClient(s.client(t, "admin"))
	res, err := adm.AlterUserSCRAMs(ctx(t), nil, []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "carolcarol"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res["carol"]; r.Err != nil {
		t.Fatalf("upsert carol: %v %s", r.Err, r.ErrMessage)
	}
	if err := s.client(t, "carol").Ping(ctx(t)); err != nil {
		t.Fatalf("carol logs in after AlterUserScramCredentials: %v", err)
	}
	desc, err := adm.DescribeUserSCRAMs(ctx(t), "carol")
	if err != nil || desc["carol"].Err != nil || len(desc["carol"].CredInfos) != 1 {
		t.Fatalf("describe carol: %v %+v", err, desc)
	}
	// alice is no super user: refused.
	res, err = kadm.NewClient(s.client(t, "alice")).AlterUserSCRAMs(ctx(t), nil,
		[]kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "x"}})
	if err == nil {
		err = res["alice"].Err
	}
	if !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alice changing a password: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}

// The listing APIs are refused whole to a client without DESCRIBE on the
// cluster: neither the ACLs nor the users leak to alice.
func TestListingACLsAndUsersNeedsClusterDescribe(t *testing.T) {
	t.Parallel()
	s := startSecured(t, t.TempDir(), false)
	grant(t, kadm.NewClient(s.client(t, "admin")), kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	for _, tc := range []struct {
		user string
		want error // nil: served
	}{
		{"alice", kerr.ClusterAuthorizationFailed},
		{"admin", nil},
	} {
		adm := kadm.NewClient(s.client(t, tc.user))
		described, err := adm.DescribeACLs(ctx(t), kadm.NewACLs().AnyResource().Allow().AllowHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
		if err == nil {
			err = described[0].Err
		}
		if !errors.Is(err, tc.want) || (tc.want == nil && len(described[0].Described) != 1) {
			t.Errorf("%s DescribeAcls: %v %+v, want %v", tc.user, err, described, tc.want)
		}
		users, err := adm.DescribeUserSCRAMs(ctx(t))
		if err == nil {
			err = users.Error()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s DescribeUserScramCredentials: %v %+v, want %v", tc.user, err, users, tc.want)
		}
	}
}

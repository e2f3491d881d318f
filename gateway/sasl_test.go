package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestGatewayAuthenticatesToASASLUpstream: against a kfake cluster that
// requires SCRAM, the gateway's upstream connections log in with its own
// credentials (clients need none towards the upstream); with a wrong
// password the gateway does not start, naming the failure.
func TestGatewayAuthenticatesToASASLUpstream(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "floodgate", "gw-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(mech sasl.Mechanism) (*loop.Server, error) {
		srv, err := loop.New(loop.Config{KafkaListen: "127.0.0.1:0", EventLoops: 1, Limits: limits.Defaults(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		first, err := loopback.FreePortRange(2)
		if err != nil {
			t.Fatal(err)
		}
		g, err := gateway.New(gateway.Config{Seeds: cluster.ListenAddrs(), ListenHost: "127.0.0.1", PortFirst: first, PortLast: first + 1,
			AdvertisedHost: "127.0.0.1", MaxUpstreamPerBroker: 10, RequestTimeout: 5 * time.Second, Logger: quiet,
			AddListener: srv.AddKafkaListener, SASL: mech})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Start(ctx); err != nil {
			return nil, err
		}
		srv.SetKafkaHandler(g)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Stop(ctx)
		})
		return srv, nil
	}
	if _, err := start(scram.Auth{User: "floodgate", Pass: "wrong"}.AsSha512Mechanism()); err == nil ||
		!strings.Contains(err.Error(), "authenticate to upstream broker") {
		t.Fatalf("gateway with a wrong upstream password started or failed otherwise: %v", err)
	}
	srv, err := start(scram.Auth{User: "floodgate", Pass: "gw-secret"}.AsSha512Mechanism())
	if err != nil {
		t.Fatalf("gateway with the right upstream password: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce through the authenticated gateway: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil || len(fs.Records()) != 1 {
		t.Fatalf("consume through the authenticated gateway: %v, %d records", err, len(fs.Records()))
	}
}

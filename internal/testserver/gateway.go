package testserver

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Gateway is floodgate in gateway mode for a test: the loop server, the
// gateway behind it (also serving the HTTP API) and their metrics.
type Gateway struct {
	Server  *loop.Server
	Gateway *gateway.Gateway
	Metrics *metrics.Set
}

// StartGateway runs floodgate's gateway in front of the cluster at seeds,
// on two event loops, with default limits except produce and fetch rates
// (off) and connections per IP (10,000: every test client is 127.0.0.1);
// lim and cfg, when not nil, change the limits and the gateway's
// configuration before it starts. Everything stops with the test. Logs are
// discarded unless the test runs verbose.
func StartGateway(t testing.TB, seeds []string, lim func(*limits.Config), cfg func(*gateway.Config)) *Gateway {
	t.Helper()
	return StartGatewayLoop(t, seeds, lim, cfg, nil)
}

// StartGatewayLoop is StartGateway whose loop configuration loopCfg, when
// not nil, changes (a TLS listener, ...).
func StartGatewayLoop(t testing.TB, seeds []string, lim func(*limits.Config), cfg func(*gateway.Config), loopCfg func(*loop.Config)) *Gateway {
	t.Helper()
	set := metrics.NewSet()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	l := limits.Defaults()
	l.ProduceRate, l.FetchRate = 0, 0
	l.MaxConnectionsPerIP = 10000
	if lim != nil {
		lim(&l)
	}
	lc := loop.Config{KafkaListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", EventLoops: 2, Limits: l, Logger: log, Metrics: set,
		HTTPLimits: loop.HTTPLimits{HeaderTimeout: 10 * time.Second}}
	if loopCfg != nil {
		loopCfg(&lc)
	}
	srv, err := loop.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	first, err := loopback.FreePortRange(8)
	if err != nil {
		t.Fatal(err)
	}
	gc := gateway.Config{
		Seeds: seeds, ListenHost: "127.0.0.1", PortFirst: first, PortLast: first + 7,
		AdvertisedHost: "127.0.0.1", RequestTimeout: 5 * time.Second,
		RefreshInterval: 500 * time.Millisecond, Logger: log, Metrics: set, AddListener: srv.AddKafkaListener,
		ResponseBuffer: srv.ResponseBuffer,
	}
	if cfg != nil {
		cfg(&gc)
	}
	g, err := gateway.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv.SetKafkaHandler(g)
	api, err := httpapi.New(httpapi.Config{Metrics: set, Kafka: g, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	srv.SetHTTPHandler(api)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		g.Close()
	})
	return &Gateway{Server: srv, Gateway: g, Metrics: set}
}

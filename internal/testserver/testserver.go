// Package testserver starts a real floodgate (gnet engine, worker pool,
// embedded broker) on loopback ports for tests.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Server is a running test server.
type Server struct {
	*loop.Server
	Broker  *broker.Broker
	Metrics *metrics.Set
}

// Option changes the configuration before start.
type Option func(*loop.Config, *broker.Config)

// WithLimits sets the limits.
func WithLimits(fn func(*limits.Config)) Option {
	return func(c *loop.Config, _ *broker.Config) { fn(&c.Limits) }
}

// WithLogger logs to l instead of discarding.
func WithLogger(l *slog.Logger) Option {
	return func(c *loop.Config, b *broker.Config) { c.Logger, b.Logger = l, l }
}

// Start runs a server on 127.0.0.1 with ephemeral ports until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	set := metrics.NewSet()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lc := loop.Config{
		KafkaListen: "127.0.0.1:0",
		HTTPListen:  "127.0.0.1:0",
		EventLoops:  2,
		Limits:      limits.Defaults(),
		HTTPLimits:  loop.HTTPLimits{HeaderTimeout: 10 * time.Second},
		Logger:      quiet,
		Metrics:     set,
	}
	bc := broker.Config{AutoCreateTopics: true, DefaultPartitions: 1, Logger: quiet, Metrics: set}
	for _, o := range opts {
		o(&lc, &bc)
	}
	srv, err := loop.New(lc)
	if err != nil {
		t.Fatalf("loop.New: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	host, port, _ := net.SplitHostPort(srv.KafkaAddr())
	p, _ := strconv.Atoi(port)
	bc.Host, bc.Port = host, int32(p)
	bc.MaxFetchBytes = lc.Limits.MaxFetchBytes
	b := broker.New(bc)
	srv.SetKafkaHandler(b)
	srv.SetHTTPHandler(httpapi.New(httpapi.Config{Metrics: set, Stats: func() any { return srv.Stats() }, Ready: srv.Ready}))
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		b.Close()
	})
	return &Server{Server: srv, Broker: b, Metrics: set}
}

// Package testserver starts a real floodgate (gnet engine, worker pool,
// embedded broker) on loopback ports for tests.
package testserver

import (
	"context"
	"crypto/tls"
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
	"github.com/floodgate/floodgate/storage"
)

// Server is a running test server.
type Server struct {
	*loop.Server
	Broker  *broker.Broker
	Metrics *metrics.Set
	// API is the HTTP handler.
	API *httpapi.API
}

// settings is everything an Option may change.
type settings struct {
	loop   *loop.Config
	broker *broker.Config
	http   *limits.HTTPConfig
	wrap   func(*broker.Broker) loop.KafkaHandler
}

// Option changes the configuration before start.
type Option func(*settings)

// WithLimits sets the limits.
func WithLimits(fn func(*limits.Config)) Option {
	return func(s *settings) { fn(&s.loop.Limits) }
}

// WithLogger logs to l instead of discarding.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) { s.loop.Logger, s.broker.Logger = l, l }
}

// WithHTTPLimits changes the HTTP limits (limits.HTTPDefaults, with a 10s
// header timeout, unless changed). They configure both the loop and the API.
func WithHTTPLimits(fn func(*limits.HTTPConfig)) Option {
	return func(s *settings) { fn(s.http) }
}

// WithEventLoops sets the number of event loops (2 unless changed).
func WithEventLoops(n int) Option {
	return func(s *settings) { s.loop.EventLoops = n }
}

// WithWorkers sets the size of the worker pool.
func WithWorkers(n int) Option {
	return func(s *settings) { s.loop.Workers = n }
}

// WithDataDir keeps the broker's state in dir (with fsync mode mode)
// instead of in memory.
func WithDataDir(dir string, mode storage.FsyncMode) Option {
	return func(s *settings) { s.broker.DataDir, s.broker.Fsync = dir, mode }
}

// WithBroker changes the embedded broker's configuration.
func WithBroker(fn func(*broker.Config)) Option {
	return func(s *settings) { fn(s.broker) }
}

// WithProxy configures the PROXY protocol and X-Forwarded-For trust.
func WithProxy(p loop.ProxyConfig) Option {
	return func(s *settings) { s.loop.Proxy = p }
}

// WithTLS adds the Kafka TLS and HTTPS listeners (127.0.0.1, ephemeral
// ports) with cfg; the broker advertises the TLS listener to TLS clients.
func WithTLS(cfg *tls.Config) Option {
	return func(s *settings) {
		s.loop.KafkaTLSListen, s.loop.HTTPSListen, s.loop.TLS = "127.0.0.1:0", "127.0.0.1:0", cfg
	}
}

// WithLoop changes the loop's configuration (SASL, AuthRequired, TLS).
func WithLoop(fn func(*loop.Config)) Option {
	return func(s *settings) { fn(s.loop) }
}

// WithKafkaHandler puts a handler in front of the broker (the ACL guard);
// the HTTP API uses it too.
func WithKafkaHandler(wrap func(*broker.Broker) loop.KafkaHandler) Option {
	return func(s *settings) { s.wrap = wrap }
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
		Logger:      quiet,
		Metrics:     set,
	}
	bc := broker.Config{AutoCreateTopics: true, DefaultPartitions: 1, Logger: quiet, Metrics: set}
	hc := limits.HTTPDefaults()
	hc.HeaderReadTimeout = 10 * time.Second
	st := settings{loop: &lc, broker: &bc, http: &hc}
	for _, o := range opts {
		o(&st)
	}
	lc.HTTPLimits = loop.HTTPLimitsFrom(&hc)
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
	if a := srv.KafkaTLSAddr(); a != "" {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		bc.TLSHost, bc.TLSPort = host, int32(p)
		if srv.KafkaAddr() == "" {
			bc.Host, bc.Port = bc.TLSHost, bc.TLSPort
		}
	}
	bc.MaxFetchBytes = lc.Limits.MaxFetchBytes
	bc.Groups = broker.GroupLimitsFrom(&lc.Limits)
	bc.TimestampBeforeMax, bc.TimestampAfterMax = broker.MillisOrOff(lc.Limits.TimestampBeforeMaxMs), broker.MillisOrOff(lc.Limits.TimestampAfterMaxMs)
	bc.ProducerIDExpiration, bc.MaxProducerStates = lc.Limits.ProducerIDExpiration, lc.Limits.MaxProducerStates
	bc.MaxWaitingFetches = lc.Limits.MaxWaitingFetches
	b, err := broker.Open(bc)
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	var kh loop.KafkaHandler = b
	if st.wrap != nil {
		kh = st.wrap(b)
	}
	srv.SetKafkaHandler(kh)
	api, err := httpapi.New(httpapi.Config{Metrics: set, Stats: func() any { return srv.Stats() }, Ready: srv.Ready,
		Kafka: kh, Limits: &hc, InFlight: srv.InFlight, EventLoops: srv.EventLoops(), Logger: lc.Logger, Budget: srv.Budget()})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	srv.SetHTTPHandler(api)
	srv.SetProcessMemory(api)
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		api.Close()
		b.Close()
	})
	return &Server{Server: srv, Broker: b, Metrics: set, API: api}
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

func serveCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "kafka-listen", Value: "0.0.0.0:9092", Usage: "host:port of the Kafka listener"},
		&cli.StringFlag{Name: "http-listen", Value: "0.0.0.0:9094", Usage: "host:port of the HTTP listener (health, metrics, REST)"},
		&cli.StringFlag{Name: "advertised-kafka-addr", Usage: "host:port returned to clients in Metadata (default: the Kafka listen address; 127.0.0.1 when it listens on all interfaces)"},
		&cli.IntFlag{Name: "event-loops", Value: 0, Usage: "number of event loops (default: GOMAXPROCS)"},
		&cli.IntFlag{Name: "workers", Value: 0, Usage: "size of the request worker pool (default: 4 x GOMAXPROCS)"},
		&cli.BoolFlag{Name: "auto-create-topics", Value: true, Usage: "create unknown topics on Metadata requests"},
		&cli.IntFlag{Name: "default-partitions", Value: 1, Usage: "partitions of auto-created topics (count)"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug|info|warn|error"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text|json"},
		&cli.BoolFlag{Name: "print-listen-addresses", Usage: "once serving, print \"floodgate listening kafka=HOST:PORT http=HOST:PORT\" on stdout whatever the log level (for scripts and tests that listen on port 0)"},
	}
	flags = append(flags, limitFlags()...)
	flags = append(flags, httpFlags()...)
	flags = append(flags, storageFlags()...)
	flags = append(flags, gatewayFlags()...)
	flags = append(flags, tlsFlags()...)
	return &cli.Command{
		Name:   "serve",
		Usage:  "run floodgate with the embedded broker",
		Flags:  flags,
		Action: runServe,
	}
}

// limitFlags builds one flag per row of the limits table.
func limitFlags() []cli.Flag {
	var out []cli.Flag
	for _, l := range limits.Table {
		usage := fmt.Sprintf("%s; unit: %s. Protects %s. When it trips: %s. Metric: %s", l.Flag, l.Unit, l.Protects, l.Answer, l.Metric)
		switch l.Kind {
		case limits.Int:
			v, _ := strconv.ParseInt(l.Default, 10, 64)
			out = append(out, &cli.Int64Flag{Name: l.Flag, Aliases: l.Aliases, Value: v, Usage: usage})
		default:
			out = append(out, &cli.StringFlag{Name: l.Flag, Aliases: l.Aliases, Value: l.Default, Usage: usage})
		}
	}
	return out
}

// limitsFromFlags reads the limits table's flags: each row knows its
// field, so nothing here lists them again.
func limitsFromFlags(c *cli.Context) (limits.Config, error) {
	cfg := limits.Defaults()
	for _, l := range limits.Table {
		var err error
		if l.Kind == limits.Int {
			err = cfg.SetInt(l.Flag, c.Int64(l.Flag))
		} else {
			err = cfg.SetText(l.Flag, c.String(l.Flag))
		}
		if err != nil {
			return cfg, err
		}
	}
	if err := limits.ApplyProfile(&cfg, c.String("limits-profile"), c.IsSet); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level=%q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format=%q: want text or json", format)
}

// advertised returns the host and port clients are told to use.
func advertised(flag string, listen string) (string, int32, error) {
	addr := flag
	if addr == "" {
		addr = listen
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("--advertised-kafka-addr=%q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("--advertised-kafka-addr=%q: bad port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if flag != "" {
			return "", 0, fmt.Errorf("--advertised-kafka-addr=%q: clients cannot connect to an unspecified address", flag)
		}
		host = "127.0.0.1"
	}
	return host, int32(port), nil
}

func runServe(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	lim, err := limitsFromFlags(c)
	if err != nil {
		return err
	}
	hlim, err := httpLimitsFromFlags(c)
	if err != nil {
		return err
	}
	if n := c.Int("default-partitions"); n < 1 || n > lim.MaxPartitionsPerTopic {
		return fmt.Errorf("--default-partitions=%d: must be between 1 and --max-partitions-per-topic=%d", n, lim.MaxPartitionsPerTopic)
	}
	if n := c.Int("event-loops"); n < 0 || n > 1024 {
		return fmt.Errorf("--event-loops=%d: must be between 0 (GOMAXPROCS) and 1024", n)
	}
	if n := c.Int("workers"); n < 0 || n > 65536 {
		return fmt.Errorf("--workers=%d: must be between 0 (4 x GOMAXPROCS) and 65536", n)
	}
	soft, hard, err := limits.RaiseNoFile()
	if err != nil {
		return err
	}
	// Segment files get their own descriptors (at least
	// limits.MinSegmentFiles): connections fit in what is left.
	segReserve := max(lim.MaxOpenSegmentFiles, limits.MinSegmentFiles)
	if c.Bool("in-memory") || c.String("upstream-brokers") != "" {
		segReserve = 0
	}
	fit, clamped := limits.FitConnections(lim.MaxConnections, lim.HTTPReserve+segReserve, soft)
	log.Info("open files limit", "soft", soft, "hard", hard)
	if clamped {
		log.Warn("--max-connections does not fit the open-files limit; clamped",
			"flag", "max-connections", "configured", lim.MaxConnections, "effective", fit,
			"open_files_limit", soft, "reserved_fds", limits.ReservedFDs+lim.HTTPReserve+segReserve,
			"need_ulimit_n", lim.MaxConnections+limits.ReservedFDs+lim.HTTPReserve+segReserve)
		lim.MaxConnections = fit
	}
	files, changed := limits.FitSegmentFiles(lim.MaxOpenSegmentFiles, lim.MaxConnections, lim.HTTPReserve, soft)
	if changed {
		log.Warn("--max-open-segment-files does not fit the open-files limit next to --max-connections; lowered",
			"flag", "max-open-segment-files", "configured", lim.MaxOpenSegmentFiles, "effective", files, "open_files_limit", soft)
	}
	lim.MaxOpenSegmentFiles = files
	log.Info("segment file descriptor budget", "max_open_segment_files", files)

	set := metrics.NewSet()
	registerBuildInfo(set, readBuildInfo())
	metrics.RegisterSet(set)
	lcfg := loop.Config{
		KafkaListen: c.String("kafka-listen"),
		HTTPListen:  c.String("http-listen"),
		EventLoops:  c.Int("event-loops"),
		Workers:     c.Int("workers"),
		Limits:      lim,
		HTTPLimits:  loop.HTTPLimitsFrom(&hlim),
		Logger:      log,
		Metrics:     set,
	}
	tlsFiles, err := tlsListeners(c, &lcfg)
	if err != nil {
		return err
	}
	srv, err := loop.New(lcfg)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	host, port, tlsHost, tlsPort, err := advertisedListeners(c, srv)
	if err != nil {
		return err
	}
	gw, err := newGateway(c, srv, host, log, set)
	if err != nil {
		return err
	}
	var kh loop.KafkaHandler
	if gw != nil {
		if err := startGateway(gw); err != nil {
			return err
		}
		defer gw.Close()
		kh = gw
	} else {
		b, err := openBroker(c, host, port, tlsHost, tlsPort, lim, log, set)
		if err != nil {
			return err
		}
		defer b.Close()
		kh = b
	}
	srv.SetKafkaHandler(kh)
	api, err := newHTTPAPI(srv, kh, set, log, &hlim)
	if err != nil {
		return err
	}
	defer api.Close()
	srv.SetHTTPHandler(api)
	srv.SetProcessMemory(api)
	if err := srv.Start(); err != nil {
		return err
	}
	if c.Bool("print-listen-addresses") {
		// The ports the kernel gave a :0 listener, for whoever started us.
		fmt.Printf("floodgate listening kafka=%s http=%s%s\n", srv.KafkaAddr(), srv.HTTPAddr(), tlsAddrs(srv))
	}
	log.Info("floodgate serving", "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))), "gomaxprocs", runtime.GOMAXPROCS(0), "gateway", gw != nil)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP asks for a reload; its default action would end the process
	// (exit 129), so it is caught and never ends it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := srvDone(srv)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			reloadTLS(tlsFiles, log)
			// There is no config file yet: every limit is a flag read
			// at start, so none can change live.
			log.Info("reload requested (SIGHUP): no limit can change live yet, all are start-time flags; still serving", "live_limits", "none")
		case err := <-done:
			return fmt.Errorf("engine stopped: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(sctx)
}

// openBroker opens the embedded broker.
func openBroker(c *cli.Context, host string, port int32, tlsHost string, tlsPort int32, lim limits.Config, log *slog.Logger, set *metrics.Set) (*broker.Broker, error) {
	bcfg := broker.Config{
		Host: host, Port: port, TLSHost: tlsHost, TLSPort: tlsPort,
		AutoCreateTopics:  c.Bool("auto-create-topics"),
		DefaultPartitions: int32(c.Int("default-partitions")),
		MaxFetchBytes:     lim.MaxFetchBytes,
		MaxWaitingFetches: lim.MaxWaitingFetches,
		Logger:            log,
		Metrics:           set,

		MaxOpenSegmentFiles:   lim.MaxOpenSegmentFiles,
		MaxPartitionsPerTopic: int32(lim.MaxPartitionsPerTopic),
		MaxPartitions:         lim.MaxPartitions,
		MaxTopics:             lim.MaxTopics,
		MaxMetadataTopics:     lim.MaxMetadataTopics,
		MaxAutoCreateTopics:   lim.MaxAutoCreateTopics,
		MinSegmentBytes:       lim.MinSegmentBytes,
		Groups:                broker.GroupLimitsFrom(&lim),
	}
	bcfg.TimestampBeforeMax, bcfg.TimestampAfterMax = broker.MillisOrOff(lim.TimestampBeforeMaxMs), broker.MillisOrOff(lim.TimestampAfterMaxMs)
	bcfg.ProducerIDExpiration, bcfg.MaxProducerStates = lim.ProducerIDExpiration, lim.MaxProducerStates
	if err := applyStorageFlags(c, &bcfg, log); err != nil {
		return nil, err
	}
	return broker.Open(bcfg)
}

func srvDone(s *loop.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Wait() }()
	return ch
}

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
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/earlylog"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

func serveCommand() *cli.Command {
	const srv = limits.CatServer
	flags := []cli.Flag{
		&cli.StringFlag{Name: "kafka-listen", Value: "0.0.0.0:9092", Category: srv, Usage: "Kafka listener `ADDR` (host:port)"},
		&cli.StringFlag{Name: "http-listen", Value: "0.0.0.0:9094", Category: srv, Usage: "HTTP listener `ADDR`: health, metrics, REST"},
		&cli.StringFlag{Name: "advertised-kafka-addr", Category: srv, Usage: "`ADDR` given to clients in Metadata (default: listen address)"},
		&cli.IntFlag{Name: "event-loops", Value: 0, Category: srv, Usage: "`N` event loops (0 = the CPUs Go may use)"},
		&cli.IntFlag{Name: "workers", Value: 0, Category: srv, Usage: "`N` request workers (0 = 4 x the CPUs Go may use)"},
		&cli.IntFlag{Name: "gomaxprocs", Value: 0, Category: srv, Usage: "`N` Go Ps (0 = CPUs + event loops)"},
		&cli.BoolFlag{Name: "auto-create-topics", Value: true, Category: limits.CatStorage, Usage: "Create unknown topics on Metadata requests"},
		&cli.IntFlag{Name: "default-partitions", Value: 1, Category: limits.CatStorage, Usage: "`N` partitions of an auto-created topic"},
		&cli.StringFlag{Name: "log-level", Value: "info", Category: srv, Usage: "`LEVEL`: debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", Category: srv, Usage: "`FORMAT`: text or json"},
		&cli.BoolFlag{Name: "print-listen-addresses", Category: srv, Usage: "Print the bound addresses on stdout once serving"},
	}
	flags = append(flags, tableFlags(limits.Table, checkKafkaLimit)...)
	flags = append(flags, httpFlags()...)
	flags = append(flags, storageFlags()...)
	flags = append(flags, gatewayFlags()...)
	flags = append(flags, configFlags()...)
	flags = append(flags, proxyFlags()...)
	flags = append(flags, securityFlags()...)
	flags = append(flags, tlsFlags()...)
	return &cli.Command{
		Name:  "serve",
		Usage: "run floodgate with the embedded broker",
		Description: "Sizes take bytes or a unit (512KiB, 10MiB, 1GB); times take a duration (10s, 10m, 1h)\n" +
			"or a bare number in the flag's unit (ms unless it says otherwise).\n" +
			"README's tuning table says what each limit protects, what clients see and its metric.",
		Flags:  flags,
		Action: runServe,
		// A bad value or an unknown flag is one line, not the whole help.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w (floodgate serve --help lists the flags)", err)
		},
	}
}

// limitsFromFlags reads the Kafka-side limits: the table's defaults, the
// --limits-profile preset over them, and the flags given over both.
func limitsFromFlags(c *cli.Context) (limits.Config, error) {
	cfg := limits.Defaults()
	if err := limits.ApplyProfile(&cfg, c.String("limits-profile"), c.IsSet); err != nil {
		return cfg, err
	}
	if err := applyTableFlags(c, limits.Table, cfg.SetText); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level=%q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: readableDurations}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format=%q: want text or json", format)
}

// readableDurations writes durations as Go writes them ("1.5s", "250ms")
// in both log formats: slog's JSON handler would write nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
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
	// --config and FLOODGATE_* fill in the flags not given (config.go).
	conf, err := loadConfig(c, os.Environ())
	if err != nil {
		return err
	}
	log, err := newLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	// What libraries gave the standard logger before now (and after) goes
	// through log, so that --log-format json means every line.
	earlylog.Replay(log)
	// SIGHUP asks for a reload and never ends the process (its default
	// action, exit 129). It is caught from the start: a HUP that comes
	// while the server starts (a reload right after a deploy) waits for
	// the loop below.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	conf.warnUnknownEnv(log)
	lim, err := limitsFromFlags(c)
	if err != nil {
		return err
	}
	configured := lim // before the fits to the open-files limit below
	hlim, err := httpLimitsFromFlags(c)
	if err != nil {
		return err
	}
	proxy, err := proxyFromFlags(c)
	if err != nil {
		return err
	}
	if n := c.Int("default-partitions"); n < 1 || n > lim.MaxPartitionsPerTopic {
		return fmt.Errorf("--default-partitions=%d: must be between 1 and --max-partitions-per-topic=%d", n, lim.MaxPartitionsPerTopic)
	}
	if n := c.Int("event-loops"); n < 0 || n > 1024 {
		return fmt.Errorf("--event-loops=%d: must be between 0 (the CPUs Go may use) and 1024", n)
	}
	if n := c.Int("workers"); n < 0 || n > 65536 {
		return fmt.Errorf("--workers=%d: must be between 0 (4 x the CPUs Go may use) and 65536", n)
	}
	if n := c.Int("gomaxprocs"); n < 0 || n > 4096 {
		return fmt.Errorf("--gomaxprocs=%d: must be between 0 (the CPUs Go may use + one per event loop) and 4096", n)
	}
	sched := sizeScheduler(c.Int("event-loops"), c.Int("workers"), c.Int("gomaxprocs"), os.Getenv("GOMAXPROCS") != "")
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
	pipeFDs := 0
	if c.String("upstream-brokers") != "" {
		// The gateway's pipes for relaying Fetch answers (gateway/splice.go):
		// two descriptors for each pipe of the pool --gateway-splice-pipes
		// makes, so a large pool lowers --max-connections (with the WARN
		// below) instead of taking client descriptors.
		pipeFDs = gateway.SplicePipeFDs(splicePipes(lim), 0)
		segReserve += pipeFDs
	}
	// Connections waiting for their PROXY header hold descriptors too
	// (they are not counted in --max-connections until the header is read).
	if proxy.Kafka || proxy.HTTP {
		segReserve += lim.ProxyProtocolMaxPending
	}
	fit, clamped := limits.FitConnections(lim.MaxConnections, lim.HTTPReserve+segReserve, soft)
	log.Info("open files limit", "soft", soft, "hard", hard)
	if clamped {
		log.Warn("--max-connections does not fit the open-files limit; clamped",
			"flag", "max-connections", "configured", lim.MaxConnections, "effective", fit,
			"open_files_limit", soft, "reserved_fds", limits.ReservedFDs+lim.HTTPReserve+segReserve, "gateway_splice_pipe_fds", pipeFDs,
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

	sec, err := securityFromFlags(c, log)
	if err != nil {
		return err
	}
	set := metrics.NewSet()
	registerBuildInfo(set, readBuildInfo())
	metrics.RegisterSet(set)
	lcfg := sec.loopConfig(loop.Config{
		KafkaListen: c.String("kafka-listen"),
		HTTPListen:  c.String("http-listen"),
		EventLoops:  sched.loops,
		Workers:     sched.workers,
		Limits:      lim,
		HTTPLimits:  loop.HTTPLimitsFrom(&hlim),
		Logger:      log,
		Metrics:     set,
		Proxy:       proxy,
	})
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
	gw, err := newGateway(c, srv, host, lim, log, set)
	if err != nil {
		return err
	}
	var kh loop.KafkaHandler
	var upstreamReady func() bool
	if gw != nil {
		if err := startGateway(gw); err != nil {
			return err
		}
		defer gw.Close()
		kh, upstreamReady = gw, gw.Ready
	} else {
		b, err := openBroker(c, host, port, tlsHost, tlsPort, lim, log, set)
		if err != nil {
			return err
		}
		defer b.Close()
		kh = b
	}
	if kh, err = guardKafka(c, sec, srv, kh, log, set); err != nil {
		return err
	}
	srv.SetKafkaHandler(kh)
	api, err := newHTTPAPI(srv, kh, upstreamReady, set, log, &hlim)
	if err != nil {
		return err
	}
	defer api.Close()
	srv.SetHTTPHandler(api)
	srv.SetProcessMemory(api)
	_, procLimit, _ := api.MemoryOver()
	goMemLimit := setGoMemoryLimit(procLimit, os.Getenv("GOMEMLIMIT") != "")
	srv.SetLimitSources(conf.sources)
	reload := newReloader(c, conf, log, srv, api, configured, lim, hlim, soft, segReserve)
	adminSrv, adminAddr, err := httpAccess(c, sec, api, log, set)
	if err != nil {
		return err
	}
	defer stopAdmin(adminSrv)
	if err := srv.Start(); err != nil {
		return err
	}
	if c.Bool("print-listen-addresses") {
		// The ports the kernel gave a :0 listener, for whoever started us.
		fmt.Printf("floodgate listening kafka=%s http=%s%s\n", srv.KafkaAddr(), srv.HTTPAddr(), tlsAddrs(srv))
		if adminAddr != nil {
			fmt.Printf("floodgate admin listening admin=%s\n", adminAddr)
		}
	}
	log.Info("floodgate serving", "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))), "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", sched.cpus, "event_loops", sched.loops, "go_memory_limit", goMemLimit, "gateway", gw != nil)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := srvDone(srv)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			reloadTLS(tlsFiles, log)
			reload.reload() // logs what changed; never stops serving
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
		MaxFetchWait:      lim.MaxFetchWait,
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

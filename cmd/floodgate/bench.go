package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/bench/attack"
)

// benchCommand is `floodgate bench`: the load tools of package bench.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load tools: Kafka, open-loop HTTP, idle connections, floods, overload sweeps",
		Subcommands: []*cli.Command{
			benchKafkaCommand(),
			benchHTTPCommand(),
			benchConnsCommand(),
			benchOverloadCommand(),
			benchConnsChildCommand(),
			benchAttackCommand(),
			benchUpstreamCommand(),
		},
	}
}

// outputFlags are shared by every bench subcommand.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON instead of a table"},
		&cli.StringFlag{Name: "plot", Usage: "write the chart data to this .json file (draw it with: go run ./bench/suite chart FILE.json OUT.png)"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress line on stderr"},
	}
}

func benchOutput(c *cli.Context) bench.Output {
	return bench.Output{Stdout: c.App.Writer, JSON: c.Bool("json"), Plot: c.String("plot")}
}

func benchProgress(c *cli.Context) *bench.Progress {
	if c.Bool("quiet") || c.Bool("json") && c.App.ErrWriter == nil {
		return nil
	}
	w := c.App.ErrWriter
	if w == nil {
		w = os.Stderr
	}
	return bench.NewProgress(w)
}

// benchContext ends on SIGINT/SIGTERM so a run stops and cleans up.
func benchContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// parseInts reads a comma-separated list of positive integers (a sweep).
func parseInts(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("--%s: %q is not a positive integer", flag, f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: no value given", flag)
	}
	return out, nil
}

// parseFloats reads a comma-separated list of positive numbers.
func parseFloats(flag, s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(f, "_", ""), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("--%s: %q is not a positive number", flag, f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: no value given", flag)
	}
	return out, nil
}

// emitSweep prints one result, or every result of a sweep.
func emitSweep[T interface{ Table() *bench.Table }](out bench.Output, results []T) error {
	if len(results) == 1 {
		return out.Emit(results[0], results[0].Table())
	}
	t := &bench.Table{}
	for i, r := range results {
		rt := r.Table()
		if i == 0 {
			t.Header = rt.Header
		}
		t.Rows = append(t.Rows, rt.Rows...)
	}
	return out.Emit(results, t)
}

func benchKafkaCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.StringFlag{Name: "brokers", Value: "127.0.0.1:9092", Usage: "comma-separated seed brokers (host:port)"},
		&cli.StringFlag{Name: "clients", Value: "1", Usage: "franz-go clients, one partition each; a list (1,2,4) runs a sweep"},
		&cli.IntFlag{Name: "record-size", Value: 100, Usage: "record value size (bytes)"},
		&cli.Int64Flag{Name: "records", Usage: "records in total (0: run for --duration)"},
		&cli.DurationFlag{Name: "duration", Usage: "how long to produce (0: until --records are done)"},
		&cli.StringFlag{Name: "acks", Value: "1", Usage: "0, 1 or all"},
		&cli.StringFlag{Name: "compression", Value: "none", Usage: "none, gzip, snappy, lz4 or zstd"},
		&cli.Float64Flag{Name: "rate", Usage: "records/s in total, paced (0: as fast as the client buffers allow)"},
		&cli.StringFlag{Name: "topic", Usage: "topic (default: a new random one, with one partition per client)"},
		&cli.DurationFlag{Name: "linger", Usage: "producer batch linger"},
		&cli.StringFlag{Name: "tls-ca-file", Usage: "connect over TLS, verifying the brokers with these PEM CAs (default: plaintext)"},
		&cli.BoolFlag{Name: "preloaded", Usage: "consume: read --records already in --topic (one partition per client) instead of producing them first"},
		&cli.BoolFlag{Name: "delete-topic", Usage: "delete --topic once the run is done (a benchmark cluster that keeps every record slows down as it holds more)"},
	}, outputFlags()...)
	mode := func(name, usage string) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, Flags: flags, Action: func(c *cli.Context) error { return runBenchKafka(c, name) }}
	}
	return &cli.Command{
		Name:  "kafka",
		Usage: "Kafka load with franz-go: records/s, MB/s, latency p50/p99/p999",
		Subcommands: []*cli.Command{
			mode("produce", "produce records; latency is enqueue to acknowledgement"),
			mode("consume", "preload --records, then read them back from the start"),
			mode("roundtrip", "produce and consume together; latency is produce to a record's first delivery, duplicates (a retried produce written twice) counted apart"),
		},
	}
}

func runBenchKafka(c *cli.Context, mode string) error {
	acks, err := bench.ParseAcks(c.String("acks"))
	if err != nil {
		return err
	}
	clients, err := parseInts("clients", c.String("clients"))
	if err != nil {
		return err
	}
	ctx, cancel := benchContext()
	defer cancel()
	var results []*bench.KafkaResult
	for _, n := range clients {
		cfg := bench.KafkaConfig{
			Mode: mode, Brokers: strings.Split(c.String("brokers"), ","), Clients: n,
			RecordSize: c.Int("record-size"), Records: c.Int64("records"), Duration: c.Duration("duration"),
			Acks: acks, Compression: c.String("compression"), Rate: c.Float64("rate"), Topic: c.String("topic"),
			Linger: c.Duration("linger"), Preloaded: c.Bool("preloaded"), DeleteTopic: c.Bool("delete-topic"), Progress: benchProgress(c), TLSCAFile: c.String("tls-ca-file"),
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		r, err := bench.RunKafka(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bench kafka %s with %d clients: %w", mode, n, err)
		}
		results = append(results, r)
	}
	out := benchOutput(c)
	if out.Plot != "" {
		s := bench.Series{Name: "floodgate bench kafka " + mode}
		for _, r := range results {
			s.X = append(s.X, float64(r.Clients))
			s.Y = append(s.Y, r.MBPerSec)
		}
		ch := bench.Chart{Title: fmt.Sprintf("Kafka %s throughput vs clients (%d B records)", mode, c.Int("record-size")),
			XLabel: "clients", YLabel: "MB/s", Series: []bench.Series{s}}
		if err := ch.Save(out.Plot); err != nil {
			return err
		}
	}
	return emitSweep(out, results)
}

func benchHTTPCommand() *cli.Command {
	return &cli.Command{
		Name:  "http",
		Usage: "open-loop HTTP/1.1 load at a constant arrival rate: achieved req/s, p50/p99, errors by status",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:9094/health", Usage: "target URL (http://)"},
			&cli.IntFlag{Name: "connections", Value: 50, Usage: "keep-alive connections"},
			&cli.StringFlag{Name: "rate", Value: "1000", Usage: "offered requests/s; a list (1000,5000) runs a sweep"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long to offer load"},
			&cli.IntFlag{Name: "pipeline", Value: 1, Usage: "requests outstanding per connection (1 = no pipelining)"},
			&cli.StringFlag{Name: "method", Value: "GET", Usage: "request method"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "per-request timeout, from its intended start"},
		}, outputFlags()...),
		Action: func(c *cli.Context) error {
			rates, err := parseFloats("rate", c.String("rate"))
			if err != nil {
				return err
			}
			ctx, cancel := benchContext()
			defer cancel()
			var results []*bench.HTTPResult
			for _, rate := range rates {
				cfg := bench.HTTPConfig{URL: c.String("url"), Connections: c.Int("connections"), Rate: rate,
					Duration: c.Duration("duration"), Pipeline: c.Int("pipeline"), Method: c.String("method"),
					Timeout: c.Duration("timeout"), Progress: benchProgress(c)}
				if err := cfg.Validate(); err != nil {
					return err
				}
				r, err := bench.RunHTTP(ctx, cfg)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
			out := benchOutput(c)
			if out.Plot != "" {
				p99 := bench.Series{Name: "p99"}
				p50 := bench.Series{Name: "p50"}
				for _, r := range results {
					p99.X, p99.Y = append(p99.X, r.OfferedRPS), append(p99.Y, r.Latency.P99MS)
					p50.X, p50.Y = append(p50.X, r.OfferedRPS), append(p50.Y, r.Latency.P50MS)
				}
				ch := bench.Chart{Title: "HTTP latency vs offered load: " + c.String("url"), XLabel: "offered requests/s",
					YLabel: "latency (ms)", Series: []bench.Series{p99, p50}}
				if err := ch.Save(out.Plot); err != nil {
					return err
				}
			}
			return emitSweep(out, results)
		},
	}
}

// holdFlags configure the connections of conns and conns-child.
func holdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Value: "127.0.0.1:9092", Usage: "host:port to connect to"},
		&cli.IntFlag{Name: "per-ip", Value: 50, Usage: "connections per source address (127.1.0.1 upward in 127.0.0.0/8)"},
		&cli.DurationFlag{Name: "dial-timeout", Value: 5 * time.Second, Usage: "bound on one connect"},
		&cli.IntFlag{Name: "concurrency", Value: 64, Usage: "connects in flight per process"},
		&cli.StringFlag{Name: "tls-ca-file", Usage: "hold TLS connections (handshake done), verifying the server with these PEM CAs (default: plaintext)"},
		&cli.IntFlag{Name: "nice", Usage: "niceness (0-19) of the holder processes; --flood runs them at 19 unless set, so the established client is not delayed by them"},
	}
}

func benchConnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "conns",
		Usage: "hold N idle connections: server RSS per connection, accept time, idle CPU; --flood: a connection flood",
		Flags: append(append(holdFlags(),
			&cli.StringFlag{Name: "count", Value: "1000", Usage: "connections to hold; a list (1000,10000) runs a sweep"},
			&cli.IntFlag{Name: "per-process", Value: 15000, Usage: "most connections one client process holds (children are started beyond it)"},
			&cli.IntFlag{Name: "pid", Usage: "server process id: RSS, descriptors and CPU from /proc (--flood: the peak RSS also from the kernel's high-water mark, VmHWM)"},
			&cli.StringFlag{Name: "stats-url", Usage: "floodgate's /admin/stats URL: RSS (process_resident_bytes) and connections"},
			&cli.DurationFlag{Name: "hold", Value: 5 * time.Second, Usage: "how long to hold the connections (idle CPU is measured over it)"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "bound on opening and accepting all connections"},
			&cli.BoolFlag{Name: "flood", Usage: "flood mode: --count connections (about 3x the server's limit) while an established client is measured"},
			&cli.StringFlag{Name: "probe-url", Usage: "flood mode: the established and new clients' request (http://...)"},
			&cli.Float64Flag{Name: "probe-rate", Value: 100, Usage: "flood mode: the established client's requests/s"},
			&cli.DurationFlag{Name: "before", Value: 2 * time.Second, Usage: "flood mode: measuring time before the flood"},
			&cli.DurationFlag{Name: "during", Value: 3 * time.Second, Usage: "flood mode: measuring time once the flood is open"},
			&cli.DurationFlag{Name: "open-for", Value: 15 * time.Second, Usage: "flood mode: stop opening flood connections after this long"},
		), outputFlags()...),
		Action: runBenchConns,
	}
}

func holdSpec(c *cli.Context) bench.HoldSpec {
	return bench.HoldSpec{Target: c.String("target"), PerIP: c.Int("per-ip"),
		DialTimeout: c.Duration("dial-timeout"), Concurrency: c.Int("concurrency"), TLSCAFile: c.String("tls-ca-file"), Nice: c.Int("nice")}
}

// childCommand starts this binary's hidden conns-child command.
func childCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for holder processes: %w", err)
	}
	return []string{exe, "bench", "conns-child"}, nil
}

func runBenchConns(c *cli.Context) error {
	counts, err := parseInts("count", c.String("count"))
	if err != nil {
		return err
	}
	child, err := childCommand()
	if err != nil {
		return err
	}
	probe := bench.ServerProbe{PID: c.Int("pid"), StatsURL: c.String("stats-url")}
	ctx, cancel := benchContext()
	defer cancel()
	out := benchOutput(c)
	if c.Bool("flood") {
		if len(counts) != 1 {
			return fmt.Errorf("--flood takes one --count, not %d", len(counts))
		}
		spec := holdSpec(c)
		spec.Count = counts[0]
		spec.OpenFor = c.Duration("open-for")
		if !c.IsSet("nice") {
			spec.Nice = bench.FloodHolderNice
		}
		r, err := bench.RunFlood(ctx, bench.FloodConfig{Flood: spec, PerProcess: c.Int("per-process"), ChildCommand: child,
			ProbeURL: c.String("probe-url"), ProbeRate: c.Float64("probe-rate"), Before: c.Duration("before"),
			During: c.Duration("during"), Server: probe, Progress: benchProgress(c)})
		if err != nil {
			return err
		}
		if out.Plot != "" {
			ch := bench.Chart{Title: "Established client latency, before vs during the flood", YLabel: "latency (ms)",
				Categories: []string{"p50", "p99", "p999"}, Series: []bench.Series{
					{Name: "before", Y: []float64{r.Before.P50MS, r.Before.P99MS, r.Before.P999MS}},
					{Name: "during", Y: []float64{r.During.P50MS, r.During.P99MS, r.During.P999MS}}}}
			if err := ch.Save(out.Plot); err != nil {
				return err
			}
		}
		return out.Emit(r, r.Table())
	}
	var results []*bench.ConnsResult
	for _, n := range counts {
		spec := holdSpec(c)
		spec.Count = n
		r, err := bench.RunConns(ctx, bench.ConnsConfig{Hold: spec, PerProcess: c.Int("per-process"), ChildCommand: child,
			Server: probe, HoldFor: c.Duration("hold"), Timeout: c.Duration("timeout"), Progress: benchProgress(c)})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if out.Plot != "" {
		s := bench.Series{Name: c.String("target")}
		for _, r := range results {
			s.X = append(s.X, float64(r.Opened))
			s.Y = append(s.Y, float64(r.RSSHeldBytes)/(1<<20))
		}
		ch := bench.Chart{Title: "Server RSS vs idle connections", XLabel: "connections", YLabel: "RSS (MiB)", Series: []bench.Series{s}}
		if err := ch.Save(out.Plot); err != nil {
			return err
		}
	}
	return emitSweep(out, results)
}

func benchConnsChildCommand() *cli.Command {
	return &cli.Command{
		Name:   "conns-child",
		Usage:  "(internal) hold connections for bench conns until stdin closes",
		Hidden: true,
		Flags: append(holdFlags(),
			&cli.IntFlag{Name: "count", Value: 1, Usage: "connections"},
			&cli.IntFlag{Name: "first-index", Usage: "index of the first connection in the whole run"},
			&cli.DurationFlag{Name: "open-for", Usage: "stop opening after this long (0: never)"},
		),
		Action: func(c *cli.Context) error {
			spec := holdSpec(c)
			spec.Count = c.Int("count")
			spec.FirstIndex = c.Int("first-index")
			spec.OpenFor = c.Duration("open-for")
			var in io.Reader = os.Stdin
			return bench.RunHoldChild(context.Background(), spec, in, c.App.Writer)
		},
	}
}

func benchOverloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "overload",
		Usage: "offer 1x, 2x, 5x, 10x a server's rate or connection limit: goodput, rejection rate, admitted p99, peak RSS",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:9094/health", Usage: "target URL (http://)"},
			&cli.StringFlag{Name: "kind", Value: "rate", Usage: "rate (--limit is requests/s) or connections (--limit is connections)"},
			&cli.Float64Flag{Name: "limit", Usage: "the server's configured limit"},
			&cli.StringFlag{Name: "multipliers", Value: "1,2,5,10", Usage: "multiples of --limit to offer"},
			&cli.IntFlag{Name: "connections", Value: 50, Usage: "rate mode: keep-alive connections"},
			&cli.Float64Flag{Name: "per-conn-rate", Value: 10, Usage: "connections mode: requests/s per connection"},
			&cli.DurationFlag{Name: "step", Value: 3 * time.Second, Usage: "how long each multiple is offered"},
			&cli.IntFlag{Name: "pid", Usage: "server process id: each step's peak RSS, sampled from /proc every 20 ms and the kernel's high-water mark (VmHWM)"},
			&cli.StringFlag{Name: "stats-url", Usage: "floodgate's /admin/stats URL: each step's peak RSS, sampled every 200 ms (without --pid)"},
		}, outputFlags()...),
		Action: func(c *cli.Context) error {
			ms, err := bench.ParseMultipliers(c.String("multipliers"))
			if err != nil {
				return err
			}
			ctx, cancel := benchContext()
			defer cancel()
			r, err := bench.RunOverload(ctx, bench.OverloadConfig{URL: c.String("url"), Kind: c.String("kind"),
				Limit: c.Float64("limit"), Multipliers: ms, Connections: c.Int("connections"),
				PerConnRate: c.Float64("per-conn-rate"), Step: c.Duration("step"),
				Server:   bench.ServerProbe{PID: c.Int("pid"), StatsURL: c.String("stats-url")},
				Progress: benchProgress(c)})
			if err != nil {
				return err
			}
			out := benchOutput(c)
			if out.Plot != "" {
				if err := r.Chart(c.String("url")).Save(out.Plot); err != nil {
					return err
				}
			}
			return out.Emit(r, r.Table())
		},
	}
}

// benchUpstreamCommand is `floodgate bench upstream`: the in-memory Kafka
// cluster the attack suite's gateway attacks stand floodgate in front of,
// in a process of its own.
func benchUpstreamCommand() *cli.Command {
	return &cli.Command{
		Name:  "upstream",
		Usage: "run an in-memory Kafka cluster (franz-go's kfake) on 127.0.0.1 until SIGINT or SIGTERM, printing its brokers' addresses (the gateway attacks' upstream)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "brokers", Value: 3, Usage: "brokers in the cluster"},
		},
		Action: func(c *cli.Context) error {
			if n := c.Int("brokers"); n < 1 || n > 64 {
				return fmt.Errorf("bench upstream: --brokers %d: want 1 to 64", n)
			}
			ctx, cancel := benchContext()
			defer cancel()
			return attack.ServeUpstream(ctx, c.App.Writer, c.Int("brokers"))
		},
	}
}

func benchAttackCommand() *cli.Command {
	return &cli.Command{
		Name: "attack",
		Usage: "the attack suite (issues 13, 14): each hostile client against a fresh floodgate with default flags " +
			"while good clients measure; a Markdown table of good p50/p99, /health p99, peak RSS, recovery, pass/fail",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "how long each attack lasts"},
			&cli.DurationFlag{Name: "baseline", Value: 2 * time.Second, Usage: "good clients alone before each attack"},
			&cli.DurationFlag{Name: "watch", Value: 10 * time.Second, Usage: "how long recovery is watched after the attacker leaves"},
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiplies every attack's connection count (1 = the go test short form)"},
			&cli.StringFlag{Name: "only", Usage: "comma-separated substrings: run only the attacks whose name contains one (a whole attack name: that attack alone)"},
			&cli.BoolFlag{Name: "nginx", Usage: "also run each HTTP attack against nginx (started on loopback with a generated config)"},
			&cli.BoolFlag{Name: "sigterm", Usage: "end each attack with SIGTERM during a second round of it: the exit must come within 10 s"},
			&cli.BoolFlag{Name: "list", Usage: "list the attacks and exit"},
			&cli.StringFlag{Name: "floodgate", Usage: "floodgate binary to attack (default: this executable)"},
			&cli.BoolFlag{Name: "json", Usage: "print the results as JSON instead of a table"},
		},
		Action: runBenchAttack,
	}
}

func runBenchAttack(c *cli.Context) error {
	w := c.App.Writer
	if c.Bool("list") {
		for _, a := range attack.Catalogue() {
			fmt.Fprintf(w, "%-36s %-5s issue %d: %s\n", a.Name, a.Listener, a.Issue, a.What)
		}
		return nil
	}
	self := c.String("floodgate")
	if self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench attack: find own executable: %w", err)
		}
		self = exe
	}
	var only []string
	if s := c.String("only"); s != "" {
		only = strings.Split(s, ",")
	}
	ctx, cancel := benchContext()
	defer cancel()
	cfg := attack.SuiteConfig{
		Config: attack.Config{Baseline: c.Duration("baseline"), Duration: c.Duration("duration"),
			Watch: c.Duration("watch"), SIGTERM: c.Bool("sigterm")},
		Floodgate: self, Nginx: c.Bool("nginx"), Scale: c.Float64("scale"), Only: only,
	}
	if !c.Bool("json") {
		ew := c.App.ErrWriter
		if ew == nil {
			ew = os.Stderr
		}
		cfg.Progress = func(a, server string) { fmt.Fprintf(ew, "attack %s on %s\n", a, server) }
	}
	results, err := attack.RunSuite(ctx, cfg)
	if c.Bool("json") {
		if eerr := benchOutput(c).Emit(results, nil); eerr != nil {
			return eerr
		}
	} else {
		fmt.Fprint(w, attack.Markdown(results))
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if !r.Passed() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d attack runs broke a bound", failed, len(results))
	}
	return nil
}

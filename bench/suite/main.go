// Command suite is floodgate's standard benchmark suite (`make bench`). It
// starts floodgate (the built binary) and its peers in the same run —
// nginx, franz-go's in-memory kfake broker, and a Go net/http server — on
// loopback, measures them side by side with the tools of package bench and
// wrk, and rewrites the tables of BENCHMARKS.md between their markers and
// the charts in bench/charts.
//
//	go build -o bin/bench-suite ./bench/suite
//	bin/bench-suite --floodgate bin/floodgate --md BENCHMARKS.md --charts bench/charts
//
// The hidden "peer" mode runs a peer server in a child process:
// `suite peer kfake PORT`, `suite peer kfake-cluster PORT,PORT,PORT` (one
// broker per port; PORT@ADVERTISED names another port in Metadata),
// `suite peer relay splice|copy:LISTEN>TARGET,...` (a bare TCP proxy) or
// `suite peer nethttp ADDR`; `suite peer holder FLAGS`
// is a connection-holder child of the gateway section (bench.HoldSpec
// flags).
//
// `suite chart IN.json OUT.png` draws chart data written by a
// `floodgate bench … --plot FILE.json` run (the server binary does not
// link the plotting stack).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate/floodgate/bench"
	"github.com/floodgate/floodgate/bench/chart"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "chart" {
		if err := drawChart(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "suite chart:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 3 && os.Args[1] == "peer" && os.Args[2] == "holder" {
		if err := runHolder(os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "suite holder:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 4 && os.Args[1] == "peer" {
		if err := runPeer(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "suite peer:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.floodgate, "floodgate", "bin/floodgate", "the floodgate binary to measure")
	flag.StringVar(&o.md, "md", "BENCHMARKS.md", "the Markdown file whose marked tables are rewritten")
	flag.StringVar(&o.charts, "charts", "bench/charts", "directory of the charts")
	flag.StringVar(&o.gobench, "gobench", "", "output of `go test -bench` to tabulate (run here when empty)")
	flag.IntVar(&o.runs, "runs", 3, "runs per comparison (medians are reported)")
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run (iperf,gobench,kafka,limits,http,conns,flood,overload,gateway); empty: all")
	flag.BoolVar(&o.quick, "quick", false, "shorter runs (a smoke test of the suite)")
	flag.StringVar(&o.floodPin, "flood-pin", "", "SERVER-CPUS/LOAD-CPUS (e.g. 0/1): in the flood section, pin the server to the first CPUs and the flood and probe to the others, and run --runs rounds")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench suite:", err)
		os.Exit(1)
	}
}

// drawChart draws the chart data in file in to the picture out.
func drawChart(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read chart data: %w", err)
	}
	var c bench.Chart
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("chart data %s: %w", in, err)
	}
	return chart.Draw(c, out)
}

// runPeer serves one peer until SIGTERM.
func runPeer(kind, arg string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch kind {
	case "nethttp":
		return bench.ServeNetHTTP(ctx, arg)
	case "gnet":
		return bench.ServeRawGnet(ctx, arg)
	case "kfake":
		port, err := strconv.Atoi(arg)
		if err != nil {
			return fmt.Errorf("kfake port %q: %w", arg, err)
		}
		if _, err := bench.RaiseNoFile(); err != nil {
			return err
		}
		c, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		if err != nil {
			return fmt.Errorf("kfake cluster on port %d: %w", port, err)
		}
		defer c.Close()
		<-ctx.Done()
		return nil
	case "kfake-cluster":
		// PORT or PORT@ADVERTISED: a broker listening on PORT that names
		// ADVERTISED as its address (a relay there forwards to PORT).
		var ports []int
		advertise := map[int]int{}
		for _, f := range strings.Split(arg, ",") {
			ps, as, relayed := strings.Cut(f, "@")
			p, err := strconv.Atoi(ps)
			if err != nil {
				return fmt.Errorf("kfake-cluster port %q: %w", f, err)
			}
			if relayed {
				a, err := strconv.Atoi(as)
				if err != nil {
					return fmt.Errorf("kfake-cluster advertised port %q: %w", f, err)
				}
				advertise[p] = a
			}
			ports = append(ports, p)
		}
		if _, err := bench.RaiseNoFile(); err != nil {
			return err
		}
		c, err := kfake.NewCluster(kfake.Ports(ports...), kfake.NumBrokers(len(ports)), kfake.AllowAutoTopicCreation(),
			kfake.ListenFn(bench.AdvertisedListen(advertise)))
		if err != nil {
			return fmt.Errorf("kfake cluster on ports %v: %w", ports, err)
		}
		defer c.Close()
		<-ctx.Done()
		return nil
	case "relay":
		// MODE:LISTEN>TARGET,...: the least a TCP proxy does (bench.ServeRelay).
		mode, spec, _ := strings.Cut(arg, ":")
		routes, err := bench.ParseRelayRoutes(spec)
		if err != nil {
			return err
		}
		return bench.ServeRelay(ctx, bench.RelayMode(mode), routes)
	}
	return fmt.Errorf("unknown peer %q: want kfake, kfake-cluster, relay, nethttp or gnet", kind)
}

// runHolder is a connection-holder child (bench.RunHoldChild) that also
// understands --targets and --kafka-hello.
func runHolder(args []string) error {
	fs := flag.NewFlagSet("holder", flag.ContinueOnError)
	var spec bench.HoldSpec
	var targets string
	fs.StringVar(&spec.Target, "target", "", "host:port")
	fs.IntVar(&spec.Count, "count", 0, "connections")
	fs.IntVar(&spec.FirstIndex, "first-index", 0, "first connection index")
	fs.IntVar(&spec.PerIP, "per-ip", 50, "connections per source address")
	fs.DurationVar(&spec.DialTimeout, "dial-timeout", 5*time.Second, "connect timeout")
	fs.IntVar(&spec.Concurrency, "concurrency", 64, "connects in flight")
	fs.DurationVar(&spec.OpenFor, "open-for", 0, "stop opening after")
	fs.StringVar(&targets, "targets", "", "comma-separated host:ports, round robin")
	fs.BoolVar(&spec.KafkaHello, "kafka-hello", false, "send a Metadata request on each connection")
	fs.IntVar(&spec.Nice, "nice", 0, "niceness of this holder process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if targets != "" {
		spec.Targets = strings.Split(targets, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return bench.RunHoldChild(ctx, spec, os.Stdin, os.Stdout)
}

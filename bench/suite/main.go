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
// `suite peer kfake PORT` or `suite peer nethttp ADDR`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/floodgate/floodgate/bench"
)

func main() {
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
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run (iperf,gobench,kafka,limits,http,conns,flood,overload); empty: all")
	flag.BoolVar(&o.quick, "quick", false, "shorter runs (a smoke test of the suite)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench suite:", err)
		os.Exit(1)
	}
}

// runPeer serves one peer until SIGTERM.
func runPeer(kind, arg string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch kind {
	case "nethttp":
		return bench.ServeNetHTTP(ctx, arg)
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
	}
	return fmt.Errorf("unknown peer %q: want kfake or nethttp", kind)
}

// Command floodgate runs the floodgate server (a Kafka-compatible broker and
// HTTP API on one event loop) and its benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"
)

func main() {
	// /metrics writes one HELP and TYPE line per family (httpapi fills in
	// the HELP text), as Prometheus' linter (promtool check metrics) asks.
	metrics.ExposeMetadata(true)
	app := &cli.App{
		Name:    "floodgate",
		Usage:   "a Kafka-compatible server that stays calm under overload",
		Version: readBuildInfo().String(),
		Commands: []*cli.Command{
			serveCommand(),
			benchCommand(),
			versionCommand(),
			userCommand(),
		},
	}
	// --version prints the same line as `floodgate version`.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, c.App.Version) }
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}

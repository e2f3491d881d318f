// Command floodgate runs the floodgate server (a Kafka-compatible broker and
// HTTP API on one event loop) and its benchmarks.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/internal/earlylog"
)

func main() {
	// /metrics writes one HELP and TYPE line per family (httpapi fills in
	// the HELP text), as Prometheus' linter (promtool check metrics) asks.
	metrics.ExposeMetadata(true)
	app := &cli.App{
		Name:  "floodgate",
		Usage: "a Kafka-compatible server that stays calm under overload",
		// --help shows the version alone (a pseudo-version and a full
		// commit hash make a line past 100 characters); --version and
		// `floodgate version` print the whole line.
		Version: readBuildInfo().Version,
		Commands: []*cli.Command{
			serveCommand(),
			benchCommand(),
			versionCommand(),
			userCommand(),
		},
	}
	// Commands other than serve have no logger of their own: what the
	// standard logger held before main goes to stderr as text, warnings
	// only (a library's INFO notice is noise before --help or a benchmark).
	app.Before = func(c *cli.Context) error {
		if c.Args().First() != "serve" {
			earlylog.Replay(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		}
		return nil
	}
	// --version prints the same line as `floodgate version`.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, readBuildInfo().String()) }
	cli.FlagStringer = helpLine
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}

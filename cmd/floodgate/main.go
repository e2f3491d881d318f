// Command floodgate runs the floodgate server (a Kafka-compatible broker and
// HTTP API on one event loop) and its benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "floodgate",
		Usage: "a Kafka-compatible server that stays calm under overload",
		Commands: []*cli.Command{
			serveCommand(),
			benchCommand(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}

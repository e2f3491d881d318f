package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"
)

// version overrides the module version read from the build info; the
// Makefile's build target sets it with -ldflags -X main.version=....
var version string

// commit overrides the VCS revision read from the build info, for builds
// made with -buildvcs=false (the Makefile sets it from git).
var commit string

// buildInfo is what floodgate was built from.
type buildInfo struct {
	Version, Commit, GoVersion string
}

// readBuildInfo reads the version and VCS revision the Go toolchain
// stamped into the binary; -X main.version wins over the module version
// (which is "(devel)" for a build inside the repository).
func readBuildInfo() buildInfo {
	bi := buildInfo{Version: "unknown", Commit: "unknown", GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			bi.Version = info.Main.Version
		}
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && bi.Commit != "unknown" {
			bi.Commit += "-dirty"
		}
	}
	if version != "" {
		bi.Version = version
	}
	if commit != "" {
		bi.Commit = commit
	}
	return bi
}

// String is the one line `floodgate version` prints.
func (b buildInfo) String() string {
	return fmt.Sprintf("floodgate %s (commit %s, %s)", b.Version, b.Commit, b.GoVersion)
}

// registerBuildInfo adds floodgate_build_info{version,commit,goversion} 1.
func registerBuildInfo(set *metrics.Set, b buildInfo) {
	name := fmt.Sprintf(`floodgate_build_info{version=%q,commit=%q,goversion=%q}`, b.Version, b.Commit, b.GoVersion)
	set.NewGauge(name, func() float64 { return 1 })
}

// versionCommand prints the build info.
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print version, commit and Go version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, readBuildInfo())
			return nil
		},
	}
}

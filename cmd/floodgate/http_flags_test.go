package main

import (
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/limits"
)

// parseHTTP runs the serve flags over args and returns the HTTP limits.
func parseHTTP(t *testing.T, args ...string) (limits.HTTPConfig, error) {
	t.Helper()
	var cfg limits.HTTPConfig
	var perr error
	app := &cli.App{Name: "floodgate", Commands: []*cli.Command{{Name: "serve", Flags: httpFlags(),
		Action: func(c *cli.Context) error { cfg, perr = httpLimitsFromFlags(c); return nil }}}}
	if err := app.Run(append([]string{"floodgate", "serve"}, args...)); err != nil {
		return cfg, err // a value its row refuses is refused as the flag is read
	}
	return cfg, perr
}

func TestHTTPFlags(t *testing.T) {
	cfg, err := parseHTTP(t)
	if err != nil || cfg.MaxHeaderBytes != 8192 || cfg.MaxBodyBytes != 10485760 || cfg.HeaderReadTimeout != 10*time.Second || cfg.MaxInFlight != 10000 {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	// The profile sets the defaults; explicit flags win.
	cfg, err = parseHTTP(t, "--limits-profile", "high-traffic", "--header-read-timeout", "2s", "--max-requests-per-second-global", "50",
		"--max-decompression-ratio", "20.5", "--route", "api:/topics,rps=10,key=header:X-API-Key", "--route", "up:/upload,max-body-size=500MB")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HeaderReadTimeout != 2*time.Second || cfg.MaxBodyBytes != 10485760 || cfg.RPSPerClient != 1000 || cfg.RPSGlobal != 50 ||
		cfg.MaxDecompressionRatio != 20.5 || len(cfg.Routes) != 2 || cfg.Routes[0].Burst != 100 || cfg.Routes[1].MaxBodyBytes != 500e6 {
		t.Fatalf("high-traffic with overrides: %+v", cfg)
	}
	if cfg.MaxRouteBodyBytes() != 500e6 || cfg.BodyLimit([]byte("/upload/x")) != 500e6 || cfg.BodyLimit([]byte("/topics")) != 10485760 {
		t.Fatal("route body limits")
	}
	for _, bad := range [][]string{{"--limits-profile", "turbo"}, {"--route", "x"}, {"--max-memory-percent", "120"}, {"--max-header-count", "0"}} {
		if _, err := parseHTTP(t, bad...); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// httpFlags builds one flag per row of the HTTP limits table, plus the
// repeatable --route.
func httpFlags() []cli.Flag {
	return append(tableFlags(limits.HTTPTable, checkHTTPLimit), &cli.GenericFlag{Name: "route", Value: &routeList{}, Category: limits.CatHTTP,
		Usage: "Path limits: NAME:/PREFIX[,OPT=V...] (repeat)"})
}

// httpLimitsFromFlags starts from the --limits-profile preset and applies
// every HTTP flag given explicitly on the command line.
func httpLimitsFromFlags(c *cli.Context) (limits.HTTPConfig, error) {
	cfg, err := limits.HTTPProfile(c.String("limits-profile"))
	if err != nil {
		return cfg, err
	}
	if err := applyTableFlags(c, limits.HTTPTable, cfg.SetText); err != nil {
		return cfg, err
	}
	var specs []string
	if rl, ok := c.Generic("route").(*routeList); ok {
		specs = *rl
	}
	for _, s := range specs {
		r, err := limits.ParseRoute(s)
		if err != nil {
			return cfg, err
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	return cfg, cfg.Validate()
}

// newHTTPAPI builds the HTTP handler of srv over the Kafka handler k.
// upstreamReady, when set (gateway mode), is false while no upstream broker
// is reachable; it is passed apart from k because k may be the ACL guard in
// front of the gateway.
func newHTTPAPI(srv *loop.Server, k loop.KafkaHandler, upstreamReady func() bool, set *metrics.Set, log *slog.Logger, hc *limits.HTTPConfig) (*httpapi.API, error) {
	ready := srv.Ready
	if upstreamReady != nil {
		ready = func() bool { return srv.Ready() && upstreamReady() }
	}
	api, err := httpapi.New(httpapi.Config{Metrics: set, Stats: func() any { return srv.Stats() }, Ready: ready,
		Kafka: k, Limits: hc, InFlight: srv.InFlight, EventLoops: srv.EventLoops(), Logger: log, Budget: srv.Budget()})
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	return api, nil
}

// routeList collects repeated --route values. A string-slice flag would
// split them on the commas that separate a route's options.
type routeList []string

// Set implements cli.Generic.
func (r *routeList) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// String implements cli.Generic.
func (r *routeList) String() string { return strings.Join(*r, " ") }

// placeholder names the value in --help.
func (r *routeList) placeholder() string { return "SPEC" }

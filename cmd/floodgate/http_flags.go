package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// httpFlags builds one flag per row of the HTTP limits table, plus the
// repeatable --route.
func httpFlags() []cli.Flag {
	var out []cli.Flag
	for _, l := range limits.HTTPTable {
		usage := fmt.Sprintf("%s; unit: %s. Protects %s. When it trips: %s. Metric: %s", l.Flag, l.Unit, l.Protects, l.Answer, l.Metric)
		switch l.Kind {
		case limits.Int:
			v, _ := strconv.ParseInt(l.Default, 10, 64)
			out = append(out, &cli.Int64Flag{Name: l.Flag, Aliases: l.Aliases, Value: v, Usage: usage})
		case limits.Float:
			v, _ := strconv.ParseFloat(l.Default, 64)
			out = append(out, &cli.Float64Flag{Name: l.Flag, Aliases: l.Aliases, Value: v, Usage: usage})
		case limits.Duration:
			v, _ := time.ParseDuration(l.Default)
			out = append(out, &cli.DurationFlag{Name: l.Flag, Aliases: l.Aliases, Value: v, Usage: usage})
		default:
			out = append(out, &cli.StringFlag{Name: l.Flag, Aliases: l.Aliases, Value: l.Default, Usage: usage})
		}
	}
	out = append(out, &cli.GenericFlag{Name: "route", Value: &routeList{},
		Usage: "NAME:PATH_PREFIX[,max-body-size=500MB][,rps=100][,burst=500][,key=client_ip|header:X-API-Key|path|route] " +
			"(repeatable): limits of their own for a path prefix; the longest prefix wins. burst defaults to 10 x rps, key to route (one bucket for the route). " +
			"Over rps: 429 with Retry-After; over max-body-size: 413. Metric: floodgate_http_requests_total{route=NAME}"})
	return out
}

// httpLimitsFromFlags starts from the --limits-profile preset and applies
// every HTTP flag given explicitly on the command line.
func httpLimitsFromFlags(c *cli.Context) (limits.HTTPConfig, error) {
	cfg, err := limits.HTTPProfile(c.String("limits-profile"))
	if err != nil {
		return cfg, err
	}
	for _, l := range limits.HTTPTable {
		if l.Flag == "limits-profile" || !c.IsSet(l.Flag) {
			continue
		}
		if err := cfg.SetText(l.Flag, fmt.Sprint(c.Value(l.Flag))); err != nil {
			return cfg, err
		}
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
func newHTTPAPI(srv *loop.Server, k loop.KafkaHandler, set *metrics.Set, log *slog.Logger, hc *limits.HTTPConfig) (*httpapi.API, error) {
	ready := srv.Ready
	if r, ok := k.(interface{ Ready() bool }); ok { // the gateway: false while no upstream broker is reachable
		ready = func() bool { return srv.Ready() && r.Ready() }
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

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// gatewayFlags are the flags of gateway mode.
func gatewayFlags() []cli.Flag {
	const cat = limits.CatGateway
	return []cli.Flag{
		&cli.StringFlag{Name: "upstream-brokers", Category: cat, Usage: "`ADDRS` (host:port,...) of a cluster to front"},
		&cli.StringFlag{Name: "gateway-listen-ports", Value: "19092-19191", Category: cat, Usage: "Per-broker listener ports `RANGE`"},
		&cli.StringFlag{Name: "gateway-advertised-host", Category: cat, Usage: "`HOST` of the per-broker listeners (default: advertised)"},
		&cli.GenericFlag{Name: "upstream-request-timeout", Value: &durationValue{unit: time.Millisecond, d: 30 * time.Second}, Category: cat,
			Usage: "Upstream broker answer deadline (ms)"},
	}
}

// parsePortRange reads "first-last".
func parsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || first < 1 || last > 65535 || last < first {
		return 0, 0, fmt.Errorf("--gateway-listen-ports=%q: want first-last, e.g. 19092-19191", s)
	}
	return first, last, nil
}

// newGateway builds the gateway from the flags; nil when not in gateway mode.
func newGateway(c *cli.Context, srv *loop.Server, advertisedHost string, lim limits.Config, log *slog.Logger, set *metrics.Set) (*gateway.Gateway, error) {
	upTLS, err := upstreamTLS(c)
	if err != nil {
		return nil, err
	}
	up := c.String("upstream-brokers")
	if up == "" {
		return nil, nil
	}
	var seeds []string
	for _, s := range strings.Split(up, ",") {
		s = strings.TrimSpace(s)
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("--upstream-brokers: %q is not host:port", s)
		}
		seeds = append(seeds, s)
	}
	first, last, err := parsePortRange(c.String("gateway-listen-ports"))
	if err != nil {
		return nil, err
	}
	mech, err := upstreamMechanism(c)
	if err != nil {
		return nil, err
	}
	listenHost, _, _ := net.SplitHostPort(c.String("kafka-listen"))
	adv := c.String("gateway-advertised-host")
	if adv == "" {
		adv = advertisedHost
	}
	return gateway.New(gateway.Config{
		Seeds: seeds, ListenHost: listenHost, PortFirst: first, PortLast: last,
		AdvertisedHost:       adv,
		MaxUpstreamPerBroker: lim.MaxUpstreamPerBroker,
		RequestTimeout:       durationFlag(c, "upstream-request-timeout"),
		MaxFetchBytes:        lim.MaxFetchBytes,
		Decode: kafka.DecodeLimits{MaxPartitions: lim.MaxPartitionsPerRequest,
			MaxNonProduceSize: int(lim.MaxNonProduceRequestSize)},
		Logger:         log,
		Metrics:        set,
		AddListener:    srv.AddKafkaListener,
		SASL:           mech,
		UpstreamTLS:    upTLS,
		ResponseBuffer: srv.ResponseBuffer,
		SplicePipes:    splicePipes(lim),
	})
}

// splicePipes is gateway.Config.SplicePipes for --gateway-splice-pipes,
// whose 0 turns the relay off (the Config's 0 is the default pool).
func splicePipes(lim limits.Config) int {
	if lim.GatewaySplicePipes == 0 {
		return -1
	}
	return lim.GatewaySplicePipes
}

// startGateway connects the gateway to its cluster.
func startGateway(gw *gateway.Gateway) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return gw.Start(ctx)
}

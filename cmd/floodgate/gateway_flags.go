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
	"github.com/floodgate/floodgate/loop"
)

// gatewayFlags are the flags of gateway mode.
func gatewayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "upstream-brokers", Usage: "comma-separated host:port of an existing Kafka cluster; when set, floodgate runs as a gateway in front of it instead of the embedded broker (default: none)"},
		&cli.StringFlag{Name: "gateway-listen-ports", Value: "19092-19191", Usage: "port range (first-last) of the listeners floodgate opens, one per upstream broker"},
		&cli.StringFlag{Name: "gateway-advertised-host", Usage: "host clients are told to use for the per-broker listeners (default: the advertised Kafka host)"},
		&cli.DurationFlag{Name: "upstream-request-timeout", Value: 30 * time.Second, Usage: "time an upstream broker has to answer a request before the client gets a retriable error (JoinGroup gets 5m more)"},
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
func newGateway(c *cli.Context, srv *loop.Server, advertisedHost string, log *slog.Logger, set *metrics.Set) (*gateway.Gateway, error) {
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
	listenHost, _, _ := net.SplitHostPort(c.String("kafka-listen"))
	adv := c.String("gateway-advertised-host")
	if adv == "" {
		adv = advertisedHost
	}
	return gateway.New(gateway.Config{
		Seeds: seeds, ListenHost: listenHost, PortFirst: first, PortLast: last,
		AdvertisedHost:       adv,
		MaxUpstreamPerBroker: int(c.Int64("max-upstream-connections-per-broker")), // validated with the limits
		RequestTimeout:       c.Duration("upstream-request-timeout"),
		MaxFetchBytes:        c.Int64("max-fetch-bytes"),
		Decode: kafka.DecodeLimits{MaxPartitions: int(c.Int64("max-partitions-per-request")),
			MaxNonProduceSize: int(c.Int64("max-non-produce-request-size"))},
		Logger:      log,
		Metrics:     set,
		AddListener: srv.AddKafkaListener,
	})
}

// startGateway connects the gateway to its cluster.
func startGateway(gw *gateway.Gateway) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return gw.Start(ctx)
}

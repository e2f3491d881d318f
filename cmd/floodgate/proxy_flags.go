package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// proxyFlags are the flags of the PROXY protocol and X-Forwarded-For
// (their limits, --proxy-protocol-timeout and --proxy-protocol-max-pending,
// are rows of limits.Table).
func proxyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "proxy-protocol", Category: limits.CatConnections, Usage: "Listeners that expect a PROXY header: kafka,http"},
		&cli.StringFlag{Name: "proxy-protocol-from", Category: limits.CatConnections, Usage: "CIDRs trusted to send PROXY or X-Forwarded-For"},
	}
}

// proxyFromFlags reads --proxy-protocol and --proxy-protocol-from.
func proxyFromFlags(c *cli.Context) (loop.ProxyConfig, error) {
	var p loop.ProxyConfig
	if v := strings.TrimSpace(c.String("proxy-protocol")); v != "" {
		for _, w := range strings.Split(v, ",") {
			switch strings.TrimSpace(w) {
			case "kafka":
				p.Kafka = true
			case "http":
				p.HTTP = true
			default:
				return p, fmt.Errorf("--proxy-protocol=%q: want kafka, http or kafka,http", v)
			}
		}
	}
	from, err := parsePrefixes(c.String("proxy-protocol-from"))
	if err != nil {
		return p, fmt.Errorf("--proxy-protocol-from: %w", err)
	}
	p.From = from
	if (p.Kafka || p.HTTP) && len(p.From) == 0 {
		return p, fmt.Errorf("--proxy-protocol=%s needs --proxy-protocol-from (the balancers' addresses): only their headers are trusted", c.String("proxy-protocol"))
	}
	return p, nil
}

// parsePrefixes reads a comma-separated list of CIDRs or single addresses.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, w := range strings.Split(v, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if strings.Contains(w, "/") {
			p, err := netip.ParsePrefix(w)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", w, err)
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(w)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR or an IP: %w", w, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

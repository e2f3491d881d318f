package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// dialNet connects to an upstream broker: plain TCP, or TLS when cfg is
// set (--upstream-tls). The handshake is bounded by the same timeout as
// the connect; ServerName is the broker's host, as a Kafka client sets it.
func dialNet(addr string, timeout time.Duration, cfg *tls.Config) (net.Conn, error) {
	if cfg == nil {
		return net.DialTimeout("tcp", addr, timeout)
	}
	c := cfg.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("upstream address %q: %w", addr, err)
		}
		c.ServerName = host
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &tls.Dialer{Config: c}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return nc, nil
}

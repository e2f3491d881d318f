package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
	"github.com/floodgate/floodgate/tlsconf"
)

// tlsFlags are the flags of the TLS listeners and of TLS to the upstream
// cluster (gateway mode).
func tlsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kafka-tls-listen", Category: limits.CatSecurity, Usage: "host:port of the Kafka-over-TLS listener"},
		&cli.StringFlag{Name: "https-listen", Category: limits.CatSecurity, Usage: "host:port of the HTTPS listener"},
		&cli.StringFlag{Name: "advertised-kafka-tls-addr", Category: limits.CatSecurity, Usage: "host:port Metadata gives TLS clients"},
		&cli.StringFlag{Name: "tls-cert-file", Category: limits.CatSecurity, Usage: "PEM certificate chain (re-read on SIGHUP)"},
		&cli.StringFlag{Name: "tls-key-file", Category: limits.CatSecurity, Usage: "PEM private key (re-read on SIGHUP)"},
		&cli.StringFlag{Name: "tls-client-ca-file", Category: limits.CatSecurity, Usage: "PEM CAs: turns on mutual TLS"},
		&cli.StringFlag{Name: "tls-min-version", Value: "1.2", Category: limits.CatSecurity, Usage: "Lowest TLS version: 1.2 or 1.3"},
		&cli.BoolFlag{Name: "upstream-tls", Category: limits.CatGateway, Usage: "Connect to the upstream over TLS"},
		&cli.StringFlag{Name: "upstream-tls-ca-file", Category: limits.CatGateway, Usage: "PEM CAs of the upstream (default: system)"},
		&cli.StringFlag{Name: "upstream-tls-cert-file", Category: limits.CatGateway, Usage: "PEM client certificate for the upstream"},
		&cli.StringFlag{Name: "upstream-tls-key-file", Category: limits.CatGateway, Usage: "PEM key of --upstream-tls-cert-file"},
	}
}

// tlsListeners loads the TLS listeners' files into cfg; nil when no TLS
// listener is asked for.
func tlsListeners(c *cli.Context, cfg *loop.Config) (*tlsconf.Server, error) {
	cfg.KafkaTLSListen, cfg.HTTPSListen = c.String("kafka-tls-listen"), c.String("https-listen")
	if cfg.KafkaTLSListen == "" && cfg.HTTPSListen == "" {
		for _, f := range []string{"tls-cert-file", "tls-key-file", "tls-client-ca-file"} {
			if c.String(f) != "" {
				return nil, fmt.Errorf("--%s is set but no TLS listener is (--kafka-tls-listen, --https-listen)", f)
			}
		}
		return nil, nil
	}
	if cfg.KafkaTLSListen != "" && c.String("upstream-brokers") != "" {
		// The gateway's per-broker listeners are plaintext: a client that
		// bootstrapped over TLS would be sent to them and fail.
		return nil, fmt.Errorf("--kafka-tls-listen is not supported in gateway mode (--upstream-brokers): its per-broker listeners are plaintext")
	}
	ts, err := tlsconf.NewServer(tlsconf.ServerFiles{
		CertFile: c.String("tls-cert-file"), KeyFile: c.String("tls-key-file"),
		ClientCAFile: c.String("tls-client-ca-file"), MinVersion: c.String("tls-min-version"),
	})
	if err != nil {
		return nil, err
	}
	cfg.TLS = ts.Config()
	return ts, nil
}

// advertisedListeners returns the addresses the broker advertises: to
// plaintext clients (host, port) and to TLS clients (tlsHost, tlsPort;
// "" without a TLS listener). With the plaintext listener off, both are
// the TLS one.
func advertisedListeners(c *cli.Context, srv *loop.Server) (host string, port int32, tlsHost string, tlsPort int32, err error) {
	if a := srv.KafkaTLSAddr(); a != "" {
		_, listenPort, _ := net.SplitHostPort(a)
		listenHost, _, _ := net.SplitHostPort(c.String("kafka-tls-listen"))
		tlsHost, tlsPort, err = advertised(c.String("advertised-kafka-tls-addr"), net.JoinHostPort(listenHost, listenPort))
		if err != nil {
			return "", 0, "", 0, fmt.Errorf("TLS listener: %w", err)
		}
	}
	if srv.KafkaAddr() == "" {
		return tlsHost, tlsPort, tlsHost, tlsPort, nil
	}
	_, listenPort, _ := net.SplitHostPort(srv.KafkaAddr())
	listenHost, _, _ := net.SplitHostPort(c.String("kafka-listen"))
	host, port, err = advertised(c.String("advertised-kafka-addr"), net.JoinHostPort(listenHost, listenPort))
	return host, port, tlsHost, tlsPort, err
}

// upstreamTLS builds the gateway's upstream TLS configuration; nil when
// --upstream-tls is off.
func upstreamTLS(c *cli.Context) (*tls.Config, error) {
	if !c.Bool("upstream-tls") {
		for _, f := range []string{"upstream-tls-ca-file", "upstream-tls-cert-file", "upstream-tls-key-file"} {
			if c.String(f) != "" {
				return nil, fmt.Errorf("--%s needs --upstream-tls", f)
			}
		}
		return nil, nil
	}
	return tlsconf.NewClient(tlsconf.ClientFiles{CAFile: c.String("upstream-tls-ca-file"),
		CertFile: c.String("upstream-tls-cert-file"), KeyFile: c.String("upstream-tls-key-file")})
}

// tlsAddrs is the TLS part of the --print-listen-addresses line ("" when
// no TLS listener is on).
func tlsAddrs(srv *loop.Server) string {
	s := ""
	if a := srv.KafkaTLSAddr(); a != "" {
		s += " kafka_tls=" + a
	}
	if a := srv.HTTPSAddr(); a != "" {
		s += " https=" + a
	}
	return s
}

// reloadTLS re-reads the TLS listeners' files (SIGHUP): the next
// handshakes use them; established connections keep what they negotiated.
// A failed reload keeps the files in force and is logged.
func reloadTLS(ts *tlsconf.Server, log *slog.Logger) {
	if ts == nil {
		return
	}
	if err := ts.Reload(); err != nil {
		log.Error("TLS reload failed; the previous certificate stays in force", "error", err.Error())
		return
	}
	log.Info("TLS certificate and client CAs reloaded")
}

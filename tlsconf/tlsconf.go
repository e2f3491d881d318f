// Package tlsconf loads the certificates of floodgate's TLS listeners and
// of the gateway's upstream connections, and reloads the listeners' files
// on request (SIGHUP) without dropping a connection: a handshake takes the
// certificate and client CAs current when it starts.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// ServerFiles names the files of a TLS listener.
type ServerFiles struct {
	// CertFile and KeyFile are the PEM certificate chain and private key.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: every client must
	// present a certificate signed by one of these CAs.
	ClientCAFile string
	// MinVersion is the lowest TLS version accepted ("1.2" or "1.3").
	MinVersion string
}

// Server is the TLS configuration of the listeners. Reload swaps the
// certificate and the client CAs atomically; connections already set up
// keep what they negotiated.
type Server struct {
	files ServerFiles
	min   uint16
	cur   atomic.Pointer[serverState]
}

// serverState is one loaded generation of the files: the configuration
// every handshake started under it uses.
type serverState struct {
	cfg *tls.Config
}

// NewServer loads the files once; an error names the file that failed.
func NewServer(f ServerFiles) (*Server, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("TLS needs both --tls-cert-file and --tls-key-file")
	}
	min, err := ParseMinVersion(f.MinVersion)
	if err != nil {
		return nil, err
	}
	s := &Server{files: f, min: min}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On an error the previous certificate and
// CAs stay in force (a half-written file must not take the listener down).
func (s *Server) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s / key %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:                  s.min,
		DynamicRecordSizingDisabled: true,
		Certificates:                []tls.Certificate{cert},
	}
	if s.files.ClientCAFile != "" {
		cas, err := loadPool(s.files.ClientCAFile)
		if err != nil {
			return fmt.Errorf("--tls-client-ca-file: %w", err)
		}
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, cas
	}
	s.cur.Store(&serverState{cfg: cfg})
	return nil
}

// MutualTLS reports whether clients must present a certificate.
func (s *Server) MutualTLS() bool { return s.files.ClientCAFile != "" }

// Config returns the tls.Config of a listener. It is built once; the
// certificate and CAs are looked up per handshake, so a Reload applies to
// the next handshake.
func (s *Server) Config() *tls.Config {
	base := &tls.Config{
		MinVersion: s.min,
		// floodgate writes whole responses at once: full-size records
		// cost less per byte than the small first records meant for
		// a browser's first paint.
		DynamicRecordSizingDisabled: true,
	}
	// Session ticket keys come from base (crypto/tls Config.ticketKeys:
	// the returned config sets none), so a resumption survives a reload.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.cur.Load().cfg, nil }
	return base
}

// ClientFiles names the files of the gateway's upstream connections.
type ClientFiles struct {
	// CAFile verifies the upstream brokers ("": the system roots).
	CAFile string
	// CertFile and KeyFile, when set, are presented to the brokers
	// (clusters that require mutual TLS).
	CertFile, KeyFile string
}

// NewClient builds the tls.Config of upstream connections. ServerName is
// set per dial from the broker's host.
func NewClient(f ClientFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := loadPool(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--upstream-tls-ca-file: %w", err)
		}
		c.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("--upstream-tls-cert-file and --upstream-tls-key-file go together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load upstream TLS certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ParseMinVersion reads --tls-min-version ("" means 1.2).
func ParseMinVersion(v string) (uint16, error) {
	switch strings.TrimSpace(v) {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--tls-min-version=%q: want 1.2 or 1.3", v)
}

// loadPool reads a PEM file of CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Package testcerts makes a throwaway certificate authority, server and
// client certificates for tests and benchmarks of the TLS listeners
// (crypto/x509, ECDSA P-256, valid for a day, for 127.0.0.1 and localhost).
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Set is a CA with one server and one client certificate, as files and as
// loaded values.
type Set struct {
	// Files in the directory given.
	CAFile, CertFile, KeyFile, ClientCertFile, ClientKeyFile string
	// Pool trusts the CA.
	Pool *x509.CertPool
	// Server and Client are the leaf certificates with their keys.
	Server, Client tls.Certificate
	// ClientSubject is the client certificate's subject as
	// pkix.Name.String prints it.
	ClientSubject string
}

// New makes a Set whose files live in t.TempDir().
func New(t testing.TB) *Set {
	t.Helper()
	return NewIn(t, t.TempDir(), "floodgate test CA")
}

// NewIn makes a Set in dir, with a CA of the given common name (two sets
// with different names do not trust each other).
func NewIn(t testing.TB, dir, caName string) *Set {
	t.Helper()
	s, err := Generate(dir, caName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Generate makes a Set in dir (outside a test: the attack suite's and the
// benchmarks' servers).
func Generate(dir, caName string) (*Set, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA: %w", err)
	}
	s := &Set{Pool: x509.NewCertPool()}
	s.Pool.AddCert(ca)
	if s.CAFile, err = writePEM(dir, "ca.pem", "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, name pkix.Name, usage x509.ExtKeyUsage, certFile, keyFile string) (pair tls.Certificate, cf, kf string, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return pair, "", "", fmt.Errorf("testcerts: key: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      name,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return pair, "", "", fmt.Errorf("testcerts: leaf: %w", err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return pair, "", "", fmt.Errorf("testcerts: key: %w", err)
		}
		if cf, err = writePEM(dir, certFile, "CERTIFICATE", der); err != nil {
			return pair, "", "", err
		}
		if kf, err = writePEM(dir, keyFile, "EC PRIVATE KEY", kder); err != nil {
			return pair, "", "", err
		}
		pair, err = tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			return pair, "", "", fmt.Errorf("testcerts: load: %w", err)
		}
		return pair, cf, kf, nil
	}
	if s.Server, s.CertFile, s.KeyFile, err = leaf(2, pkix.Name{CommonName: "floodgate"}, x509.ExtKeyUsageServerAuth, "server.pem", "server-key.pem"); err != nil {
		return nil, err
	}
	clientName := pkix.Name{CommonName: "producer-1", Organization: []string{"payments"}}
	if s.Client, s.ClientCertFile, s.ClientKeyFile, err = leaf(3, clientName, x509.ExtKeyUsageClientAuth, "client.pem", "client-key.pem"); err != nil {
		return nil, err
	}
	s.ClientSubject = clientName.String()
	return s, nil
}

// ClientConfig is a client's tls.Config trusting the CA; withCert adds
// the client certificate (mutual TLS).
func (s *Set) ClientConfig(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: s.Pool, ServerName: "127.0.0.1"}
	if withCert {
		c.Certificates = []tls.Certificate{s.Client}
	}
	return c
}

func writePEM(dir, name, typ string, der []byte) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("testcerts: %w", err)
	}
	return p, nil
}

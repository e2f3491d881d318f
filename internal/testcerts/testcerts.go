// Package testcerts makes a throwaway certificate authority, server and
// client certificates for tests of the TLS listeners (crypto/x509, ECDSA
// P-256, valid for an hour, for 127.0.0.1 and localhost).
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
	// Files in the test's temporary directory.
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
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: caName},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testcerts: CA: %v", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	s := &Set{Pool: x509.NewCertPool()}
	s.Pool.AddCert(ca)
	s.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(serial int64, name pkix.Name, usage x509.ExtKeyUsage, certFile, keyFile string) (tls.Certificate, string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      name,
			NotBefore:    time.Now().Add(-time.Minute),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("testcerts: leaf: %v", err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatalf("testcerts: key: %v", err)
		}
		cf := writePEM(t, dir, certFile, "CERTIFICATE", der)
		kf := writePEM(t, dir, keyFile, "EC PRIVATE KEY", kder)
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatalf("testcerts: load: %v", err)
		}
		return pair, cf, kf
	}
	s.Server, s.CertFile, s.KeyFile = leaf(2, pkix.Name{CommonName: "floodgate"}, x509.ExtKeyUsageServerAuth, "server.pem", "server-key.pem")
	clientName := pkix.Name{CommonName: "producer-1", Organization: []string{"payments"}}
	s.Client, s.ClientCertFile, s.ClientKeyFile = leaf(3, clientName, x509.ExtKeyUsageClientAuth, "client.pem", "client-key.pem")
	s.ClientSubject = clientName.String()
	return s
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

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcerts: key: %v", err)
	}
	return k
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return p
}

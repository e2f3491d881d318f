package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/internal/testcerts"
)

var tlsAddrLine = regexp.MustCompile(`floodgate listening kafka=\S* http=\S* kafka_tls=(\S+) https=(\S+)`)

// tlsAddrs returns the TLS listeners p printed.
func tlsAddrsOf(t *testing.T, p *process) (kafkaTLS, https string) {
	t.Helper()
	// The line comes on stdout after the listeners' log line, which may be
	// what told the caller the server is up: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := tlsAddrLine.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1], m[2]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS addresses printed:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsArgs are the flags of both TLS listeners on 127.0.0.1:0 with certs.
func tlsArgs(certs *testcerts.Set) []string {
	return []string{"--kafka-tls-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
		"--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile}
}

// tlsOnly is a kgo dialer that speaks TLS and refuses to follow Metadata
// anywhere but want.
func tlsOnly(t *testing.T, want string, cfg *tls.Config) kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host != want {
			t.Errorf("client sent to %s; want the TLS listener %s", host, want)
			return nil, fmt.Errorf("unexpected %s", host)
		}
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, host)
	})
}

// roundTrip produces n records to topic and reads them back.
func roundTrip(t *testing.T, seed, topic string, n int, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seed), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	val := bytes.Repeat([]byte("v"), 10<<10)
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", seed, err)
		}
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume from %s: %v", seed, err)
		}
		got += fs.NumRecords()
	}
}

func TestBinaryServesTLSAndReloadsTheCertificateOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	certs := testcerts.NewIn(t, dir, "first CA")
	p := startFloodgate(t, 4096, append([]string{"--in-memory"}, tlsArgs(certs)...)...)
	kafkaTLS, https := tlsAddrsOf(t, p)
	roundTrip(t, kafkaTLS, "over-tls", 20, tlsOnly(t, kafkaTLS, certs.ClientConfig(false)))
	if v := metricValue(t, p.http, "floodgate_tls_handshakes_total"); v < 1 {
		t.Fatalf("floodgate_tls_handshakes_total = %v", v)
	}
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--max-time", "5", "--cacert", certs.CAFile, "https://"+https+"/health").CombinedOutput()
		if err != nil {
			t.Fatalf("curl https /health: %v %s", err, out)
		}
	}
	kcatRoundTrip(t, kafkaTLS, certs, false)

	// A connection made before the reload keeps its session.
	before, err := tls.Dial("tcp", kafkaTLS, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	// Replace the files with a certificate of another CA, then SIGHUP.
	fresh := testcerts.NewIn(t, dir, "second CA")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "TLS certificate and client CAs reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := tls.Dial("tcp", kafkaTLS, certs.ClientConfig(false)); err == nil {
		c.Close()
		t.Fatal("after the reload the old certificate is still served")
	}
	c, err := tls.Dial("tcp", kafkaTLS, fresh.ClientConfig(false))
	if err != nil {
		t.Fatalf("after the reload the new certificate is not served: %v", err)
	}
	c.Close()
	if _, err := before.Write(apiVersionsFrame()); err != nil {
		t.Fatal(err)
	}
	_ = before.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(before, make([]byte, 8)); err != nil {
		t.Fatalf("a connection made before the reload lost its session: %v", err)
	}
	// A reload from a broken file keeps the certificate in force.
	if err := os.WriteFile(fresh.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), "TLS reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, err := tls.Dial("tcp", kafkaTLS, fresh.ClientConfig(false)); err != nil {
		t.Fatalf("a failed reload dropped the certificate: %v", err)
	} else {
		c.Close()
	}
	p.alive(t)
}

// apiVersionsFrame is ApiVersions v0 with correlation id 7.
func apiVersionsFrame() []byte {
	return []byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0, 0}
}

// kcatRoundTrip produces and consumes with kcat over TLS (mutual: with the
// client certificate), or skips when kcat is not installed.
func kcatRoundTrip(t *testing.T, addr string, certs *testcerts.Set, mutual bool) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; skipped the kcat check")
		return
	}
	args := []string{"-b", addr, "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + certs.CAFile}
	if mutual {
		args = append(args, "-X", "ssl.certificate.location="+certs.ClientCertFile, "-X", "ssl.key.location="+certs.ClientKeyFile)
	}
	topic := fmt.Sprintf("kcat-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod := exec.CommandContext(ctx, "kcat", append(args, "-P", "-t", topic)...)
	prod.Stdin = strings.NewReader("one\ntwo\nthree\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce over TLS: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, "kcat", append(args, "-C", "-t", topic, "-o", "beginning", "-e", "-c", "3", "-q")...).Output()
	if err != nil || string(out) != "one\ntwo\nthree\n" {
		t.Fatalf("kcat consume over TLS: %v %q", err, out)
	}
}

func TestBinaryMutualTLSServesCertifiedClientsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	certs := testcerts.New(t)
	p := startFloodgate(t, 4096, append([]string{"--in-memory", "--tls-client-ca-file", certs.CAFile, "--tls-min-version", "1.3"}, tlsArgs(certs)...)...)
	kafkaTLS, https := tlsAddrsOf(t, p)
	roundTrip(t, kafkaTLS, "mtls", 5, tlsOnly(t, kafkaTLS, certs.ClientConfig(true)))
	kcatRoundTrip(t, kafkaTLS, certs, true)
	if !strings.Contains(p.stderr.String(), certs.ClientSubject) {
		t.Fatalf("the client's subject %q is not logged:\n%s", certs.ClientSubject, p.stderr.String())
	}
	// No certificate: refused (TLS 1.3 reports it at the first read).
	c, err := tls.Dial("tcp", kafkaTLS, certs.ClientConfig(false))
	if err == nil {
		_, _ = c.Write(apiVersionsFrame())
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 4))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(true)}}
	resp, err := cl.Get("https://" + https + "/health")
	if err != nil {
		t.Fatalf("HTTPS /health with a client certificate: %v", err)
	}
	resp.Body.Close()
	// TLS 1.2 is below --tls-min-version.
	old := certs.ClientConfig(true)
	old.MaxVersion = tls.VersionTLS12
	if c, err := tls.Dial("tcp", kafkaTLS, old); err == nil {
		c.Close()
		t.Fatal("TLS 1.2 accepted with --tls-min-version 1.3")
	}
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, p.http, `floodgate_tls_handshake_failures_total{reason="no_client_certificate"}`) < 1 ||
		metricValue(t, p.http, `floodgate_tls_handshake_failures_total{reason="no_common_version_or_cipher"}`) < 1 {
		if time.Now().After(deadline) {
			_, body, _ := get(p.http, "/metrics")
			t.Fatalf("handshake failures not counted by reason:\n%s", grep(body, "tls_"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestGatewayReachesAnUpstreamClusterOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	certs := testcerts.New(t)
	upstream := startFloodgate(t, 4096, append([]string{"--in-memory"}, tlsArgs(certs)...)...)
	upTLS, _ := tlsAddrsOf(t, upstream)
	first, err := loopback.FreePortRange(4)
	if err != nil {
		t.Fatal(err)
	}
	gw := startFloodgate(t, 4096, "--upstream-brokers", upTLS, "--upstream-tls", "--upstream-tls-ca-file", certs.CAFile,
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", first, first+3), "--gateway-advertised-host", "127.0.0.1")
	roundTrip(t, gw.kafka, "through-gateway", 10)
	// The gateway's control connection and its forwarding connection.
	if v := metricValue(t, upstream.http, "floodgate_tls_handshakes_total"); v < 2 {
		t.Fatalf("the upstream saw %v TLS handshakes; want the gateway's control and forwarding connections over TLS", v)
	}
	if v := metricValue(t, upstream.http, "floodgate_tls_handshake_failures_total"); v != 0 {
		t.Fatalf("%v TLS handshakes failed upstream", v)
	}
}

func TestInvalidTLSFlagsExitNamingTheFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := floodgateBinary(t)
	certs := testcerts.New(t)
	tests := []struct {
		args []string
		flag string
	}{
		{[]string{"--kafka-tls-listen", "127.0.0.1:0"}, "tls-cert-file"},
		{[]string{"--https-listen", "127.0.0.1:0", "--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile, "--tls-min-version", "1.1"}, "tls-min-version"},
		{[]string{"--tls-cert-file", certs.CertFile}, "tls-cert-file"},
		{[]string{"--https-listen", "127.0.0.1:0", "--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile, "--tls-client-ca-file", certs.CertFile + ".missing"}, "tls-client-ca-file"},
		{[]string{"--upstream-tls-ca-file", certs.CAFile}, "upstream-tls-ca-file"},
		{[]string{"--kafka-tls-listen", "127.0.0.1:0", "--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile, "--upstream-brokers", "127.0.0.1:1"}, "kafka-tls-listen"},
		{[]string{"--kafka-listen", ""}, "kafka-listen"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "="), func(t *testing.T) {
			args := append([]string{"serve", "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--in-memory"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 10s (the flag was accepted) for %v:\n%s", tt.args, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			msg := lines[len(lines)-1]
			if err == nil || !strings.HasPrefix(msg, "floodgate: ") || !strings.Contains(msg, "-"+tt.flag) {
				t.Fatalf("last line %q is not a refusal naming -%s (%v):\n%s", msg, tt.flag, err, out)
			}
		})
	}
}

package loop_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testcerts"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
	"github.com/floodgate/floodgate/tlsconf"
)

// tlsServer starts a server with TLS listeners using certs; mutual turns
// on client certificates.
func tlsServer(t *testing.T, certs *testcerts.Set, mutual bool, opts ...testserver.Option) *testserver.Server {
	t.Helper()
	files := tlsconf.ServerFiles{CertFile: certs.CertFile, KeyFile: certs.KeyFile}
	if mutual {
		files.ClientCAFile = certs.CAFile
	}
	ts, err := tlsconf.NewServer(files)
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Start(t, append([]testserver.Option{testserver.WithTLS(ts.Config())}, opts...)...)
}

// produceConsume produces n records of size bytes on a fresh topic and
// consumes them back, over the client options given.
func produceConsume(t *testing.T, addr string, n, size int, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := fmt.Sprintf("tls-%d", time.Now().UnixNano())
	prod := newClient(t, addr, append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation()}, opts...)...)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: v})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce over TLS: %v", err)
	}
	cons := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume over TLS after %d records: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !bytes.Equal(r.Value, recs[got].Value) || string(r.Key) != fmt.Sprint(got) {
				t.Fatalf("record %d differs", got)
			}
			got++
		})
	}
}

// dialerOnly fails any dial to an address other than want: a client that
// follows Metadata to another listener fails.
func dialerOnly(t *testing.T, want string, cfg *tls.Config) kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host != want {
			t.Errorf("client dialed %s; want only the TLS listener %s", host, want)
			return nil, fmt.Errorf("unexpected address %s", host)
		}
		d := &tls.Dialer{Config: cfg}
		return d.DialContext(ctx, network, host)
	})
}

func TestKafkaOverTLSProducesConsumesAndStaysOnTLS(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false)
	addr := srv.KafkaTLSAddr()
	// 10 KB records: frames arrive in many TLS records and responses are
	// sealed in several.
	produceConsume(t, addr, 300, 10<<10, dialerOnly(t, addr, certs.ClientConfig(false)))
	if n := srv.Metrics.GetOrCreateCounter("floodgate_tls_handshakes_total").Get(); n < 2 {
		t.Fatalf("floodgate_tls_handshakes_total = %d; want at least 2", n)
	}
	// Plaintext still works side by side, and is told the plaintext address.
	produceConsume(t, srv.KafkaAddr(), 10, 100, dialerOnlyPlain(t, srv.KafkaAddr()))
}

func dialerOnlyPlain(t *testing.T, want string) kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host != want {
			t.Errorf("client dialed %s; want only the plaintext listener %s", host, want)
			return nil, fmt.Errorf("unexpected address %s", host)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})
}

func TestKafkaTLSOnlyWhenPlaintextListenerIsOff(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false, testserver.WithLoop(func(c *loop.Config) { c.KafkaListen = "" }))
	if srv.KafkaAddr() != "" {
		t.Fatalf("plaintext Kafka listener is on at %s", srv.KafkaAddr())
	}
	produceConsume(t, srv.KafkaTLSAddr(), 5, 100, dialerOnly(t, srv.KafkaTLSAddr(), certs.ClientConfig(false)))
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMutualTLSServesClientsWithCertificateAndRefusesOthers(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	var logs syncBuffer
	srv := tlsServer(t, certs, true, testserver.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	addr := srv.KafkaTLSAddr()
	produceConsume(t, addr, 20, 10<<10, dialerOnly(t, addr, certs.ClientConfig(true)))
	if !strings.Contains(logs.String(), "subject="+`"`+certs.ClientSubject+`"`) {
		t.Fatalf("the verified client subject %q is not logged; logs:\n%s", certs.ClientSubject, logs.String())
	}

	// Without a certificate: the handshake (or, in TLS 1.3, the first read
	// after it) fails, and nothing is served.
	start := time.Now()
	c, err := tls.Dial("tcp", addr, certs.ClientConfig(false))
	if err == nil {
		_, _ = c.Write(request(apiVersions(3), 1))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 4))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served under mutual TLS")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refusal took %v", d)
	}
	waitCounter(t, srv, `floodgate_tls_handshake_failures_total{reason="no_client_certificate"}`, 1)

	// A certificate from another CA is refused too.
	other := testcerts.NewIn(t, t.TempDir(), "another CA")
	cfg := certs.ClientConfig(false)
	// Sent whatever CAs the server names (Go's client would otherwise
	// send none).
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other.Client, nil }
	if c, err := tls.Dial("tcp", addr, cfg); err == nil {
		_, _ = c.Write(request(apiVersions(3), 1))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 4)); err == nil {
			t.Fatal("a client with a certificate of another CA was served")
		}
		c.Close()
	}
	waitCounter(t, srv, `floodgate_tls_handshake_failures_total{reason="bad_certificate"}`, 1)
}

// waitCounter waits up to 5 s for a counter to reach want.
func waitCounter(t *testing.T, srv *testserver.Server, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := srv.Metrics.GetOrCreateCounter(name).Get()
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d; want %d", name, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPSHealthAnswersNetHTTPAndCurl(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(false)}}
	defer cl.CloseIdleConnections()
	for i := 0; i < 3; i++ { // keep-alive: several requests on one connection
		resp, err := cl.Get("https://" + srv.HTTPSAddr() + "/health")
		if err != nil {
			t.Fatalf("GET /health over TLS: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("GET /health: %d %q (TLS %v)", resp.StatusCode, body, resp.TLS != nil)
		}
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed; skipped the curl check")
		return
	}
	out, err := exec.Command("curl", "-sS", "--max-time", "5", "--cacert", certs.CAFile, "-o", "/dev/null", "-w", "%{http_code}",
		"https://"+srv.HTTPSAddr()+"/health").CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Fatalf("curl https /health: %v %s", err, out)
	}
}

func TestPlaintextAndHalfHandshakesOnTLSPortAreRefusedWithoutHarm(t *testing.T) {
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false, withLimits(func(l *limits.Config) { l.TLSHandshakeTimeout = 500 * time.Millisecond }))
	addr := srv.KafkaTLSAddr()
	good, err := tls.Dial("tcp", addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	// Plaintext Kafka bytes: not a TLS record, closed at once.
	plain := dialFrom(t, "", addr)
	start := time.Now()
	_, _ = plain.Write(request(apiVersions(3), 1))
	expectClosed(t, plain, 2*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("plaintext on the TLS port closed after %v; want at once", d)
	}
	waitCounter(t, srv, `floodgate_tls_handshake_failures_total{reason="not_tls"}`, 1)

	// Half a ClientHello, then silence: closed at the handshake timeout.
	var hello bytes.Buffer
	probe := tls.Client(recorder{&hello}, &tls.Config{ServerName: "x", InsecureSkipVerify: true})
	_ = probe.Handshake() // fails: recorder cannot read; the hello is recorded
	var halves []net.Conn
	for i := 0; i < 20; i++ {
		h := dialFrom(t, "", addr)
		_, _ = h.Write(hello.Bytes()[:hello.Len()/2])
		halves = append(halves, h)
	}
	// The established client is served meanwhile, promptly.
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		expectServed(t, good)
		if d := time.Since(t0); d > 300*time.Millisecond {
			t.Fatalf("a TLS client waited %v while half handshakes were open", d)
		}
	}
	start = time.Now()
	for _, h := range halves {
		expectClosed(t, h, 3*time.Second)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("half handshakes closed after %v; want about the 500ms handshake timeout", d)
	}
	waitCounter(t, srv, `floodgate_tls_handshake_failures_total{reason="timeout"}`, 20)
	expectServed(t, good)
}

// recorder is a net.Conn that keeps what is written and fails reads.
type recorder struct{ w io.Writer }

func (r recorder) Read([]byte) (int, error)         { return 0, io.EOF }
func (r recorder) Write(p []byte) (int, error)      { return r.w.Write(p) }
func (r recorder) Close() error                     { return nil }
func (r recorder) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r recorder) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r recorder) SetDeadline(time.Time) error      { return nil }
func (r recorder) SetReadDeadline(time.Time) error  { return nil }
func (r recorder) SetWriteDeadline(time.Time) error { return nil }

func TestTLSHandshakeLimitRefusesYoungAndEvictsStalledHandshakes(t *testing.T) {
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false, withLimits(func(l *limits.Config) {
		l.MaxTLSHandshakes = 2
		l.TLSHandshakeTimeout = 8 * time.Second // handshakes older than 1 s give their place
	}))
	addr := srv.KafkaTLSAddr()
	// Two silent connections hold both handshake slots.
	a := dialFrom(t, "", addr)
	time.Sleep(50 * time.Millisecond)
	b := dialFrom(t, "", addr)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	third := dialFrom(t, "", addr)
	expectClosed(t, third, 500*time.Millisecond)
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("the refused connection waited %v", d)
	}
	waitCounter(t, srv, `floodgate_connections_rejected_total{reason="max_tls_handshakes"}`, 1)
	// Once the silent ones are older than a second, a real client takes
	// the oldest one's place, well before the 8 s handshake timeout.
	time.Sleep(time.Second)
	start = time.Now()
	c, err := tls.Dial("tcp", addr, certs.ClientConfig(false))
	if err != nil {
		t.Fatalf("a client was shut out by two silent connections: %v", err)
	}
	expectServed(t, c)
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("handshake took %v", d)
	}
	expectClosed(t, a, time.Second) // the oldest gave its place
	waitCounter(t, srv, `floodgate_tls_handshake_failures_total{reason="evicted"}`, 1)
	_ = b
}

func TestTLSClientThatDoesNotReadIsParkedAndKeepsItsSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reason string
		limits func(*limits.Config)
	}{
		// The in-flight limit stops reading first; the park goroutine
		// seals and writes what finishes meanwhile.
		{"at the in-flight limit", "max_inflight_requests", func(*limits.Config) {}},
		// With room in flight the socket fills first: the loop's writev
		// meets EAGAIN with records queued.
		{"on a full socket", "slow_reader", func(l *limits.Config) { l.MaxInflight = 100000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { parkedTLSClient(t, tt.reason, tt.limits) })
	}
}

func parkedTLSClient(t *testing.T, reason string, lim func(*limits.Config)) {
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false, withLimits(lim))
	c, err := tls.Dial("tcp", srv.KafkaTLSAddr(), certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Metadata for every topic: answers of about 20 KB. Pipeline many of
	// them without reading, so the socket buffers fill and the connection
	// parks (slow_reader), then read every answer in order.
	const n = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, srv.KafkaAddr()))
	var topics []string
	for i := 0; i < 80; i++ {
		topics = append(topics, fmt.Sprintf("topic-%03d-%s", i, strings.Repeat("x", 200)))
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, topics...); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(4)
	done := make(chan error, 1)
	go func() {
		var buf []byte
		for i := 0; i < n; i++ {
			buf = append(buf, request(req, int32(i))...)
		}
		_, err := c.Write(buf)
		done <- err
	}()
	// Read only once the connection parked: on loaded cores the server may
	// take longer than any fixed pause to fill the socket buffers.
	parks := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="` + reason + `"}`)
	for deadline := time.Now().Add(10 * time.Second); parks.Get() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		corr, _ := readResponse(t, c, false)
		if corr != int32(i) {
			t.Fatalf("response %d has correlation %d", i, corr)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_parks_total{reason="` + reason + `"}`).Get(); n == 0 {
		var sb strings.Builder
		srv.Metrics.WritePrometheus(&sb)
		t.Fatalf("the connection never parked for %s; the test did not exercise it:\n%s", reason, grepLines(sb.String(), "parks_total"))
	}
	expectServed(t, c)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestIncompleteTLSRecordIsChargedToTheBudgetAndReleasedOnClose(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false)
	raw := dialFrom(t, "", srv.KafkaTLSAddr())
	tc := tls.Client(raw, certs.ClientConfig(false))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	expectServed(t, tc)
	// Nothing else is connected: the budget empties once the answer is
	// written.
	var base int64
	for wait := time.Now().Add(2 * time.Second); srv.Budget().Used() != 0 && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	// Half of a 16000-byte application-data record, written under the
	// session: crypto/tls keeps it until the rest arrives.
	hdr := []byte{23, 3, 3, 16000 >> 8, 16000 & 0xff}
	if _, err := raw.Write(append(hdr, make([]byte, 8000)...)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for srv.Budget().Used()-base < 8000 {
		if time.Now().After(deadline) {
			t.Fatalf("budget used %d (was %d): the incomplete record's 8005 bytes are not charged", srv.Budget().Used(), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
	raw.Close()
	for srv.Budget().Used() > base {
		if time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatalf("budget used %d after the close; want %d", srv.Budget().Used(), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdleTLSConnectionIsClosedAtTheIdleTimeout(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false, withLimits(func(l *limits.Config) { l.IdleTimeout = 300 * time.Millisecond }))
	c, err := tls.Dial("tcp", srv.KafkaTLSAddr(), certs.ClientConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectServed(t, c)
	start := time.Now()
	expectClosed(t, c, 3*time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the 300ms idle timeout", d)
	}
	waitCounter(t, srv, `floodgate_connections_closed_total{reason="idle"}`, 1)
	deadline := time.Now().Add(2 * time.Second)
	for {
		var sb strings.Builder
		srv.Metrics.WritePrometheus(&sb)
		if strings.Contains(sb.String(), "floodgate_tls_connections_active 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS connections still counted active:\n%s", grepLines(sb.String(), "tls_"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPSServesBodiesAndClosesAfterConnectionClose(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	srv := tlsServer(t, certs, false)
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(false)}}
	defer cl.CloseIdleConnections()
	// A REST produce whose body spans many TLS records.
	var body strings.Builder
	body.WriteString(`{"records":[`)
	for i := 0; i < 200; i++ {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"value":"%s"}`, strings.Repeat("x", 1000))
	}
	body.WriteString(`]}`)
	req, _ := http.NewRequest("POST", "https://"+srv.HTTPSAddr()+"/topics/over-https", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", "application/vnd.kafka.json.v2+json")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"offsets"`) {
		t.Fatalf("POST over HTTPS: %d %s", resp.StatusCode, out)
	}
	// Connection: close: the answer arrives whole, then the server closes.
	req, _ = http.NewRequest("GET", "https://"+srv.HTTPSAddr()+"/health", nil)
	req.Close = true
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(out), "ok") {
		t.Fatalf("GET /health with Connection: close over HTTPS: %d %q", resp.StatusCode, out)
	}
}

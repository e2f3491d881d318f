package loop_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/codec/proxyproto"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// lbIP is the test balancer's address, the only trusted one.
const lbIP = "127.0.0.1"

func trustLB(kafka, http bool) testserver.Option {
	return testserver.WithProxy(loop.ProxyConfig{Kafka: kafka, HTTP: http, From: []netip.Prefix{netip.MustParsePrefix(lbIP + "/32")}})
}

// header returns a PROXY header of version v naming client as the source.
func header(v int, client string) []byte {
	src := netip.AddrPortFrom(netip.MustParseAddr(client), 40000)
	dst := netip.MustParseAddrPort("127.0.0.1:9092")
	if src.Addr().Is6() {
		dst = netip.MustParseAddrPort("[::1]:9092")
	}
	if v == 1 {
		return proxyproto.AppendV1(nil, src, dst)
	}
	return proxyproto.AppendV2(nil, false, src, dst, []byte{0xEA, 0, 3, 1, 'v', 'p'}) // an AWS TLV, skipped
}

// proxied connects from the balancer's address and sends hdr.
func proxied(t *testing.T, addr string, hdr []byte) net.Conn {
	t.Helper()
	c := dialFrom(t, lbIP, addr)
	if _, err := c.Write(hdr); err != nil {
		t.Fatalf("write header: %v", err)
	}
	return c
}

// topIPs returns the connection count of each IP in /admin/stats.
func topIPs(srv *testserver.Server) map[string]int32 {
	out := map[string]int32{}
	for _, ip := range srv.Stats().TopIPs {
		out[ip.IP] = ip.Count
	}
	return out
}

func rejected(srv *testserver.Server, reason string) uint64 {
	return srv.Metrics.GetOrCreateCounter(`floodgate_connections_rejected_total{reason="` + reason + `"}`).Get()
}

// Two clients behind one balancer each get their own
// --max-connections-per-ip: 4 connections from the balancer are served
// with a limit of 2, and the third of either client is refused.
func TestProxyHeaderNamesTheClientPerIPLimitsCount(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			srv := testserver.Start(t, trustLB(true, true), withLimits(func(l *limits.Config) { l.MaxConnectionsPerIP = 2 }))
			var conns []net.Conn
			for _, client := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.1", "2001:db8::2"} {
				c := proxied(t, srv.KafkaAddr(), header(v, client))
				expectServed(t, c)
				conns = append(conns, c)
			}
			ips := topIPs(srv)
			if ips["203.0.113.1"] != 2 || ips["203.0.113.2"] != 1 || ips["2001:db8::2"] != 1 || ips[lbIP] != 0 {
				t.Fatalf("/admin/stats top_ips = %v; want the clients the headers named, not the balancer", ips)
			}
			// The refusal answers the request that follows the header.
			third := proxied(t, srv.KafkaAddr(), header(v, "203.0.113.1"))
			if _, err := third.Write(request(apiVersions(3), 1)); err != nil {
				t.Fatal(err)
			}
			if corr, body := readResponse(t, third, false); corr != 1 || len(body) < 2 || int16(binary.BigEndian.Uint16(body)) != loop.RefuseKafkaCode {
				t.Fatalf("refusal: correlation %d, body %x; want ApiVersions error %d", corr, body, loop.RefuseKafkaCode)
			}
			expectClosed(t, third, 3*time.Second)
			if n := rejected(srv, "max_connections_per_ip"); n != 1 {
				t.Fatalf("max_connections_per_ip refusals = %d; want 1", n)
			}
			for _, c := range conns {
				expectServed(t, c)
			}
			// Another client of the same balancer is still admitted.
			expectServed(t, proxied(t, srv.KafkaAddr(), header(v, "203.0.113.2")))
		})
	}
}

// The client's first request is never lost: it may arrive in the same
// segment as the header, or the header may trickle in byte by byte.
func TestProxyHeaderIsReadExactlyWhateverTheSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(c net.Conn, hdr, req []byte) error
	}{
		{"header and request in one write", func(c net.Conn, hdr, req []byte) error {
			_, err := c.Write(append(append([]byte(nil), hdr...), req...))
			return err
		}},
		{"header byte by byte, then the request", func(c net.Conn, hdr, req []byte) error {
			for i := range hdr {
				if _, err := c.Write(hdr[i : i+1]); err != nil {
					return err
				}
				time.Sleep(2 * time.Millisecond)
			}
			_, err := c.Write(req)
			return err
		}},
	}
	srv := testserver.Start(t, trustLB(true, true))
	for _, tt := range tests {
		for _, v := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s v%d", tt.name, v), func(t *testing.T) {
				c := dialFrom(t, lbIP, srv.KafkaAddr())
				if err := tt.write(c, header(v, "198.51.100.9"), request(apiVersions(3), 9)); err != nil {
					t.Fatal(err)
				}
				corr, _ := readResponse(t, c, false)
				if corr != 9 {
					t.Fatalf("correlation %d; want 9", corr)
				}
				expectServed(t, c)
			})
		}
	}
}

// A LOCAL (v2) or UNKNOWN (v1) header is the balancer speaking for
// itself (health checks): served under the balancer's own address.
func TestProxyLocalHeaderUsesTheBalancersAddress(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, trustLB(true, true))
	for name, hdr := range map[string][]byte{
		"v2 LOCAL":   proxyproto.AppendV2(nil, true, netip.AddrPort{}, netip.AddrPort{}, nil),
		"v1 UNKNOWN": []byte("PROXY UNKNOWN\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			c := proxied(t, srv.KafkaAddr(), hdr)
			expectServed(t, c)
			if n := topIPs(srv)[lbIP]; n != 1 {
				t.Fatalf("connections of %s = %d; want 1", lbIP, n)
			}
			c.Close()
			waitFor(t, 3*time.Second, "the closed connection uncounted", func() bool { return topIPs(srv)[lbIP] == 0 })
		})
	}
}

// A peer outside --proxy-protocol-from cannot name a client: on a PROXY
// listener it is refused whatever it sends, and the address it claimed
// is never counted.
func TestProxyHeaderFromUntrustedPeerIsRefused(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, trustLB(true, false))
	tests := []struct {
		name  string
		first []byte
	}{
		{"spoofed v1 header", header(1, "203.0.113.66")},
		{"spoofed v2 header", header(2, "203.0.113.66")},
		{"direct client without header", request(apiVersions(3), 1)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialFrom(t, "127.0.0.5", srv.KafkaAddr())
			_, _ = c.Write(tt.first)
			_, _ = c.Write(request(apiVersions(3), 2))
			expectClosed(t, c, 3*time.Second)
			if n := rejected(srv, "proxy_untrusted"); n != uint64(i+1) {
				t.Fatalf("proxy_untrusted refusals = %d; want %d", n, i+1)
			}
			if ips := topIPs(srv); ips["203.0.113.66"] != 0 || ips["127.0.0.5"] != 0 {
				t.Fatalf("untrusted peer counted: %v", ips)
			}
		})
	}
	// The HTTP listener, not configured for the PROXY protocol, serves
	// the same peer directly.
	if code := httpStatus(t, dialFrom(t, "127.0.0.5", srv.HTTPAddr()), "/health"); code != 200 {
		t.Fatalf("GET /health on the plain HTTP listener: %d", code)
	}
}

// Malformed, oversize, missing and slow headers from a trusted peer are
// refused and counted, each within its bound, while the balancer's other
// connections are served.
func TestBadProxyHeadersAreRefusedWithoutHarmingOthers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := testserver.Start(t, trustLB(true, true), withLimits(func(l *limits.Config) { l.ProxyProtocolTimeout = timeout }))
	bigV2 := proxyproto.AppendV2(nil, false, netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("5.6.7.8:2"), nil)
	binary.BigEndian.PutUint16(bigV2[14:16], 60000)
	tests := []struct {
		name   string
		send   []byte
		reason string
		within time.Duration
	}{
		{"no header: a Kafka request", request(apiVersions(3), 1), "proxy_malformed", time.Second},
		{"v1 with a bad address", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), "proxy_malformed", time.Second},
		{"v1 over 107 bytes", []byte("PROXY TCP4 " + strings.Repeat("9", 200)), "proxy_malformed", time.Second},
		{"v2 version 3", append(header(2, "1.2.3.4")[:12:12], 0x31, 0x11, 0, 12), "proxy_malformed", time.Second},
		{"v2 announcing 60000 bytes", bigV2, "proxy_malformed", time.Second},
		{"half a header, then silence", header(1, "1.2.3.4")[:10], "proxy_timeout", timeout + time.Second},
		{"nothing at all", nil, "proxy_timeout", timeout + time.Second},
	}
	good := proxied(t, srv.KafkaAddr(), header(2, "192.0.2.1"))
	expectServed(t, good)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rejected(srv, tt.reason)
			c := dialFrom(t, lbIP, srv.KafkaAddr())
			start := time.Now()
			if len(tt.send) > 0 {
				_, _ = c.Write(tt.send)
			}
			// Another client of the balancer meanwhile: served at once.
			expectServed(t, proxied(t, srv.KafkaAddr(), header(1, "192.0.2.2")))
			expectClosed(t, c, tt.within)
			if el := time.Since(start); el > tt.within {
				t.Fatalf("closed after %v; want within %v", el, tt.within)
			}
			waitFor(t, 3*time.Second, "the refusal counted under "+tt.reason, func() bool { return rejected(srv, tt.reason) == before+1 })
			expectServed(t, good)
		})
	}
}

// --proxy-protocol-max-pending bounds the connections waiting for their
// header: one more is closed at once, and the slots come back when the
// silent ones time out.
func TestProxyPendingHeadersAreBounded(t *testing.T) {
	t.Parallel()
	const pending, timeout = 4, 400 * time.Millisecond
	srv := testserver.Start(t, trustLB(true, true), withLimits(func(l *limits.Config) {
		l.ProxyProtocolMaxPending, l.ProxyProtocolTimeout = pending, timeout
	}))
	for i := 0; i < pending; i++ {
		dialFrom(t, lbIP, srv.KafkaAddr()) // silent
	}
	waitFor(t, 3*time.Second, "a connection beyond the pending bound closed at once", func() bool {
		c := dialFrom(t, lbIP, srv.KafkaAddr())
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		c.Close()
		return err == io.EOF
	})
	if n := srv.Metrics.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="proxy_protocol_max_pending"}`).Get(); n == 0 {
		t.Fatal("refusal at --proxy-protocol-max-pending not counted")
	}
	time.Sleep(timeout + 200*time.Millisecond)
	expectServed(t, proxied(t, srv.KafkaAddr(), header(1, "192.0.2.3")))
}

// Stop does not wait for connections that never send their header.
func TestStopClosesConnectionsWaitingForTheirHeader(t *testing.T) {
	srv := testserver.Start(t, trustLB(true, true), withLimits(func(l *limits.Config) { l.ProxyProtocolTimeout = time.Minute }))
	c := dialFrom(t, lbIP, srv.KafkaAddr())
	waitFor(t, 3*time.Second, "the connection waiting for its header", func() bool {
		return srv.Metrics.GetOrCreateCounter("floodgate_connections_accepted_total").Get() == 0 && pendingGauge(srv) == 1
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("stop took %v with a connection waiting for its header", el)
	}
	expectClosed(t, c, time.Second)
}

// pendingGauge reads floodgate_proxy_protocol_pending.
func pendingGauge(srv *testserver.Server) float64 {
	return counter(srv, "floodgate_proxy_protocol_pending")
}

// httpStatus sends a GET of path on c with the extra header lines and
// returns the response's status.
func httpStatus(t *testing.T, c net.Conn, path string, header ...string) int {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: t\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// balancer is a test L4 balancer: it accepts clients and forwards each
// connection to floodgate from lbIP, after a PROXY header naming the
// client's address.
type balancer struct {
	ln      net.Listener
	version int
	target  string
	wg      sync.WaitGroup
}

func startBalancer(t *testing.T, target string, version int) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, version: version, target: target}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *balancer) serve() {
	defer b.wg.Done()
	for {
		client, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer client.Close()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(lbIP)}, Timeout: 2 * time.Second}
			up, err := d.Dial("tcp", b.target)
			if err != nil {
				return
			}
			defer up.Close()
			src := client.RemoteAddr().(*net.TCPAddr).AddrPort()
			dst := up.RemoteAddr().(*net.TCPAddr).AddrPort()
			hdr := proxyproto.AppendV1(nil, src, dst)
			if b.version == 2 {
				hdr = proxyproto.AppendV2(nil, false, src, dst, nil)
			}
			if _, err := up.Write(hdr); err != nil {
				return
			}
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, client); done <- struct{}{} }()
			go func() { _, _ = io.Copy(client, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// A franz-go client behind a PROXY-protocol balancer produces and
// consumes; floodgate counts it under its own address, not the balancer's.
func TestKgoProducesAndConsumesThroughAProxyProtocolBalancer(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, trustLB(true, true))
	lb := startBalancer(t, srv.KafkaAddr(), 2)
	const clientIP = "127.0.0.7"
	// Every broker address resolves to the balancer, as in a deployment
	// whose advertised address is the balancer's.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 2 * time.Second}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, lb.ln.Addr().String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.Dialer(dial), kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic("via-lb"), kgo.ConsumeTopics("via-lb"), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint("r", i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if want := fmt.Sprint("r", got); string(r.Value) != want {
				t.Fatalf("record %d = %q; want %q", got, r.Value, want)
			}
			got++
		})
	}
	ips := topIPs(srv)
	if ips[clientIP] == 0 || ips[lbIP] != 0 {
		t.Fatalf("/admin/stats top_ips = %v; want the client %s, not the balancer", ips, clientIP)
	}
}

// X-Forwarded-For names an HTTP request's client only from a trusted
// peer: each client behind the trusted proxy gets its own per-client rate
// (10 requests of burst at 1/s here), a forged left part gets no fresh
// bucket, and an untrusted peer rotating the header gets none either.
func TestXForwardedForFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, trustLB(false, false), testserver.WithHTTPLimits(func(h *limits.HTTPConfig) { h.RPSPerClient = 1 }))
	get := func(from, xff string) int {
		c := dialFrom(t, from, srv.HTTPAddr())
		defer c.Close()
		return httpStatus(t, c, "/health", "X-Forwarded-For: "+xff)
	}
	burst := func(from string, xff func(i int) string) {
		t.Helper()
		for i := 0; i < 10; i++ {
			if code := get(from, xff(i)); code != 200 {
				t.Fatalf("request %d from %s: %d; want 200 within the burst", i, from, code)
			}
		}
	}
	tests := []struct {
		name string
		from string
		xff  string
		want int
	}{
		{"the client behind the trusted proxy is over its rate", lbIP, "198.51.100.1", 429},
		{"another client behind it has its own bucket", lbIP, "198.51.100.2", 200},
		{"a forged left part does not make a new client", lbIP, "192.0.2.77, 198.51.100.1", 429},
		{"an untrusted peer's header is ignored: its own address is over", "127.0.0.6", "192.0.2.99", 429},
	}
	burst(lbIP, func(int) string { return "198.51.100.1" })
	burst("127.0.0.6", func(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := get(tt.from, tt.xff); code != tt.want {
				t.Fatalf("GET /health from %s with X-Forwarded-For %q: %d; want %d", tt.from, tt.xff, code, tt.want)
			}
		})
	}
}

// On the HTTP listener the header names the client just as on Kafka's:
// with one connection per IP, two clients of one balancer are both served
// and the first client's second connection gets 503.
func TestProxyHeaderOnTheHTTPListener(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, trustLB(false, true), withLimits(func(l *limits.Config) { l.MaxConnectionsPerIP = 1 }))
	for i, tt := range []struct {
		v      int
		client string
		want   int
	}{{1, "198.51.100.1", 200}, {2, "198.51.100.2", 200}, {2, "198.51.100.1", 503}} {
		c := proxied(t, srv.HTTPAddr(), header(tt.v, tt.client))
		if code := httpStatus(t, c, "/health"); code != tt.want {
			t.Fatalf("connection %d (client %s): %d; want %d", i, tt.client, code, tt.want)
		}
	}
	// The Kafka listener, not configured for it, serves the balancer directly.
	expectServed(t, dialFrom(t, lbIP, srv.KafkaAddr()))
}

// A peer that leaves in the middle of its header frees its place at once,
// not at --proxy-protocol-timeout: bytes known to be header are consumed,
// so the peer's FIN is seen.
func TestProxyPeerLeavingMidHeaderIsReleasedAtOnce(t *testing.T) {
	srv := testserver.Start(t, trustLB(true, true), withLimits(func(l *limits.Config) { l.ProxyProtocolTimeout = time.Minute }))
	for _, sent := range [][]byte{header(1, "192.0.2.5")[:9], header(2, "192.0.2.5")[:7], header(2, "192.0.2.5")[:20]} {
		c := dialFrom(t, lbIP, srv.KafkaAddr())
		if _, err := c.Write(sent); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 3*time.Second, "the connection waiting for its header", func() bool { return pendingGauge(srv) == 1 })
		c.Close()
		start := time.Now()
		waitFor(t, 3*time.Second, "its place released", func() bool { return pendingGauge(srv) == 0 })
		if el := time.Since(start); el > time.Second {
			t.Fatalf("released %v after the peer left", el)
		}
	}
	if n := rejected(srv, "proxy_closed"); n != 3 {
		t.Fatalf("proxy_closed = %d; want 3", n)
	}
}

// BenchmarkConnectServeClose measures a new connection's whole life: dial,
// (PROXY header,) one ApiVersions round trip, close; the PROXY variants
// add the header reader's goroutine, peek and read to the accept path.
func BenchmarkConnectServeClose(b *testing.B) {
	srv := testserver.Start(b, trustLB(true, true))
	plain := testserver.Start(b)
	req := request(apiVersions(3), 1)
	for _, bc := range []struct {
		name string
		addr string
		hdr  []byte
	}{
		{"direct", plain.KafkaAddr(), nil},
		{"proxy v1", srv.KafkaAddr(), header(1, "192.0.2.1")},
		{"proxy v2", srv.KafkaAddr(), header(2, "192.0.2.1")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			msg := append(append([]byte(nil), bc.hdr...), req...)
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", bc.addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAtLeast(c, buf, 4); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

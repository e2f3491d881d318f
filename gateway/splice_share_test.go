package gateway_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/codec/proxyproto"
	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/loop"
)

// behindBalancer makes every Kafka listener of the gateway expect a PROXY
// header from 127.0.0.1, so that one test process can be several client
// IPs (the header's address is the one every per-IP limit counts).
func behindBalancer(c *loop.Config) {
	c.Proxy = loop.ProxyConfig{Kafka: true, From: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
}

// proxyHeader is a PROXY v1 header naming ip as the client.
func proxyHeader(ip string, port uint16) []byte {
	return proxyproto.AppendV1(nil, netip.AddrPortFrom(netip.MustParseAddr(ip), port), netip.MustParseAddrPort("127.0.0.1:9092"))
}

// proxyDialer is a kgo dialer whose connections name ip in a PROXY header.
func proxyDialer(ip string) func(ctx context.Context, network, host string) (net.Conn, error) {
	var port atomic.Uint32 // kgo dials brokers concurrently
	port.Store(30000)
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(proxyHeader(ip, uint16(port.Add(1)))); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// fetchDecisions is the large Fetch answers that found a pipe or were read
// into memory for want of one (every reason).
func fetchDecisions(g *gw) float64 {
	n := gauge(g, "floodgate_gateway_fetch_spliced_total")
	for _, r := range []string{"no_pipe", "client_share", "ip_share", "pipe_full"} {
		n += gauge(g, `floodgate_gateway_fetch_buffered_total{reason="`+r+`"}`)
	}
	return n
}

// TestOneIPsStuckConnectionsHoldOnlyItsShareOfThePipes: behind a PROXY
// balancer, one client IP opens 16 connections that pipeline four Fetches
// of 900 KiB answers each and read none. Each connection may hold two of
// the 16 pipes (an eighth), so together they held all 16 and every other
// client's answers were read into memory; with the per-IP share they hold
// 4 (a quarter), the rest counted reason="ip_share". A kgo consumer from
// another IP then reads every record intact with answers through pipes.
// Once the stuck connections close, no pipe is in use and the pool keeps
// no entry of either IP.
func TestOneIPsStuckConnectionsHoldOnlyItsShareOfThePipes(t *testing.T) {
	t.Parallel()
	const attacker, victim = "203.0.113.7", "198.51.100.9"
	const pool, conns, fetches = 16, 16, 4
	g, _ := spliceGateway(t, pool, behindBalancer)
	addr := g.srv.KafkaAddr()

	var stuck []net.Conn
	for i := 0; i < conns; i++ {
		c := smallWindowConn(t, addr)
		out := proxyHeader(attacker, uint16(40000+i))
		for j := 0; j < fetches; j++ {
			out = append(out, fetchFrame(int32(j), "spliced", int64(j*10), 900<<10)...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		stuck = append(stuck, c)
	}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for fetchDecisions(g) < conns*fetches {
		if failed := gauge(g, "floodgate_gateway_upstream_errors_total"); failed > 0 {
			t.Fatalf("%.0f of the %d stuck Fetches failed upstream (%.0f answers decided)", failed, conns*fetches, fetchDecisions(g))
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s only %.0f of the %d stuck answers found a pipe or were read into memory", fetchDecisions(g), conns*fetches)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the %d stuck answers were decided in %v", conns*fetches, time.Since(start).Round(time.Millisecond))
	inUse := gauge(g, "floodgate_gateway_pipes_in_use")
	ipShare := gauge(g, `floodgate_gateway_fetch_buffered_total{reason="ip_share"}`)
	heldConns, heldIPs := gateway.PipeHolders(g.gw)
	t.Logf("one IP's %d stuck connections: %.0f of %d pipes in use, held by %d connections of %d IP; of %d answers %.0f spliced, read into memory: %.0f for the IP's share, %.0f for the connection's, %.0f for want of a pipe",
		conns, inUse, pool, heldConns, heldIPs, conns*fetches, gauge(g, "floodgate_gateway_fetch_spliced_total"), ipShare,
		gauge(g, `floodgate_gateway_fetch_buffered_total{reason="client_share"}`), gauge(g, `floodgate_gateway_fetch_buffered_total{reason="no_pipe"}`))
	if inUse > pool/4 {
		t.Errorf("one IP holds %.0f of %d pipes, want at most its share of %d", inUse, pool, pool/4)
	}
	if ipShare == 0 {
		t.Error(`no answer counted reason="ip_share"`)
	}
	if heldIPs != 1 {
		t.Errorf("the pool counts %d IPs holding pipes, want 1", heldIPs)
	}

	spliced0 := gauge(g, "floodgate_gateway_fetch_spliced_total")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.Dialer(proxyDialer(victim)), kgo.ConsumeTopics("spliced"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(480<<10), kgo.FetchMaxPartitionBytes(480<<10), kgo.FetchMaxWait(100*time.Millisecond))
	seen := make([]bool, spliceRecords)
	for got := 0; got < spliceRecords; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the other IP's consumer read %d of %d records", got, spliceRecords)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch error: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			i, err := strconv.Atoi(string(r.Key))
			switch {
			case err != nil || i < 0 || i >= spliceRecords:
				t.Fatalf("record with a corrupt key %q", r.Key)
			case !bytes.Equal(r.Value, answerValue(i)):
				t.Fatalf("record %d corrupt", i)
			case seen[i]:
				t.Fatalf("record %d read twice", i)
			}
			seen[i] = true
			got++
		})
	}
	cl.Close()
	spliced := gauge(g, "floodgate_gateway_fetch_spliced_total") - spliced0
	t.Logf("the other IP's answers through a pipe meanwhile: %.0f", spliced)
	if spliced == 0 {
		t.Error("while one IP's stuck connections held their share, no answer of another IP went through a pipe")
	}

	for _, c := range stuck {
		c.Close()
	}
	waitReleased(t, g)
	if heldConns, heldIPs := gateway.PipeHolders(g.gw); heldConns != 0 || heldIPs != 0 {
		t.Fatalf("with every pipe back the pool still counts %d connections and %d IPs", heldConns, heldIPs)
	}
}

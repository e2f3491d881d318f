package attack

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/proxyproto"
)

// proxyAttacks are issue 19's classes: clients behind (or posing as) an L4
// balancer that speaks the PROXY protocol. The server's Kafka listener
// expects a PROXY header (ServerArgs), and the good clients send one naming
// themselves, as a balancer in front of them would.
func proxyAttacks() []Attack {
	return []Attack{
		{Name: "kafka-proxy-slow-header", Issue: 19, Listener: Kafka,
			What:       "600 connections from 8 trusted addresses (75 each) send \"PROXY TCP4 \" and trickle one more byte every 300 ms, never ending the header",
			ServerArgs: []string{"--proxy-protocol", "kafka", "--proxy-protocol-from", "127.0.0.0/8"}, KafkaProxyHeader: true,
			Run: kafkaProxySlowHeader},
		{Name: "kafka-proxy-spoof", Issue: 19, Listener: Kafka,
			What:       "8 untrusted addresses hold 200 connections and reconnect on 8 more, each sending a PROXY header naming a good client's address, then ApiVersions",
			ServerArgs: []string{"--proxy-protocol", "kafka", "--proxy-protocol-from", "127.0.0.248/29"}, KafkaProxyHeader: true,
			Run: kafkaProxySpoof},
	}
}

// kafkaProxySlowHeader holds connections whose PROXY header never ends:
// each holds a descriptor and a header reader until
// --proxy-protocol-timeout, and those beyond --proxy-protocol-max-pending
// are closed at once.
func kafkaProxySlowHeader(ctx context.Context, t *Target) error {
	return hold(ctx, t, Kafka, t.N(600), 75, 0, func(ctx context.Context, c net.Conn) {
		if writeAll(c, []byte("PROXY TCP4 ")) {
			trickle(ctx, c, 300*time.Millisecond)
		}
	})
}

// kafkaProxySpoof claims the good clients' addresses from addresses the
// server does not trust: were the header believed, the held connections
// would use up those addresses' --max-connections-per-ip.
func kafkaProxySpoof(ctx context.Context, t *Target) error {
	spoof := func(i int) []byte {
		victim, _ := netip.AddrFromSlice(goodIP(i % 5).To4())
		dst, _ := netip.ParseAddrPort(t.KafkaAddr)
		msg := proxyproto.AppendV1(nil, netip.AddrPortFrom(victim, 40000), dst)
		return appendFrame(msg, kmsg.NewPtrApiVersionsRequest(), 1)
	}
	held := make(chan error, 1)
	go func() {
		held <- hold(ctx, t, Kafka, t.N(200), 25, 0, func(ctx context.Context, c net.Conn) {
			if writeAll(c, spoof(1)) {
				drainFor(c, 100*time.Millisecond)
			}
		})
	}()
	err := repeat(ctx, t.N(8), func(ctx context.Context, w int) {
		once(ctx, AttackerIP(8+w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			if writeAll(c, spoof(w)) {
				drainFor(c, 10*time.Millisecond)
			}
		})
	})
	if herr := <-held; err == nil {
		err = herr
	}
	return err
}

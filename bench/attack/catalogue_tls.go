package attack

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// tlsAttacks aim at the Kafka TLS listener (issue 21): what reaches the
// record layer on the event loop, and what holds the handshakes that run
// off it. The good clients stay on the plaintext listeners: the bounds say
// an attack on the TLS port harms nobody else.
func tlsAttacks() []Attack {
	return []Attack{
		{Name: "kafka-tls-plaintext", Issue: 21, Listener: KafkaTLS,
			What: "4 connections at a time send 64 KiB of random bytes (no handshake) to the TLS port, read for 50 ms and close",
			Run:  garbage(KafkaTLS)},
		{Name: "kafka-tls-half-handshake", Issue: 21, Listener: KafkaTLS,
			What: "400 connections (100 per IP) send half a ClientHello, then nothing: more than --max-tls-handshakes (256), so the oldest are evicted or the newest refused",
			Run:  tlsHalfHandshake},
		{Name: "kafka-tls-handshake-storm", Issue: 21, Listener: KafkaTLS,
			What: "8 workers on 8 IPs complete a TLS handshake, send ApiVersions and close without reading (at most 2,000 handshakes/s)",
			Run:  tlsHandshakeStorm},
		{Name: "kafka-tls-trickled-frame", Issue: 21, Listener: KafkaTLS,
			What: "60 connections (4 per IP) complete a handshake, announce a 90 MB Produce frame over TLS and send one byte (one record) every 300 ms",
			Run:  tlsTrickledFrames},
		{Name: "kafka-tls-pipeline-unread", Issue: 21, Listener: KafkaTLS,
			What: "4 connections pipeline ApiVersions over TLS without reading a response",
			Run:  tlsPipelineUnread},
	}
}

// clientHello returns the first flight of a TLS client (its ClientHello
// record), as a real client sends it.
func clientHello() []byte {
	var hello bytes.Buffer
	probe := tls.Client(recordOnly{&hello}, &tls.Config{ServerName: "attack", InsecureSkipVerify: true})
	_ = probe.Handshake() // fails at the read: the hello is recorded
	return hello.Bytes()
}

// recordOnly is a net.Conn that keeps what is written and fails reads.
type recordOnly struct{ w *bytes.Buffer }

func (r recordOnly) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (r recordOnly) Write(p []byte) (int, error)      { return r.w.Write(p) }
func (r recordOnly) Close() error                     { return nil }
func (r recordOnly) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r recordOnly) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r recordOnly) SetDeadline(time.Time) error      { return nil }
func (r recordOnly) SetReadDeadline(time.Time) error  { return nil }
func (r recordOnly) SetWriteDeadline(time.Time) error { return nil }

func tlsHalfHandshake(ctx context.Context, t *Target) error {
	hello := clientHello()
	return hold(ctx, t, KafkaTLS, t.N(400), 100, 0, func(ctx context.Context, c net.Conn) {
		writeAll(c, hello[:len(hello)/2])
	})
}

// handshake completes a TLS handshake on c within ctx; nil on failure.
func handshake(ctx context.Context, t *Target, c net.Conn) *tls.Conn {
	tc := tls.Client(c, t.TLS)
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if tc.HandshakeContext(hctx) != nil {
		return nil
	}
	return tc
}

func tlsHandshakeStorm(ctx context.Context, t *Target) error {
	msg := kafkaFormatter.AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
	return repeat(ctx, t.N(8), func(ctx context.Context, w int) {
		start := time.Now()
		once(ctx, AttackerIP(w), t.KafkaTLSAddr, func(ctx context.Context, c net.Conn) {
			if tc := handshake(ctx, t, c); tc != nil {
				writeAll(tc, msg)
			}
		})
		sleep(ctx, stormPace-time.Since(start))
	})
}

func tlsTrickledFrames(ctx context.Context, t *Target) error {
	head := kafkaHead(90_000_000, 0, 7, 1)
	return hold(ctx, t, KafkaTLS, t.N(60), 4, 0, func(ctx context.Context, c net.Conn) {
		if tc := handshake(ctx, t, c); tc != nil && writeAll(tc, head) {
			trickle(ctx, tc, 300*time.Millisecond)
		}
	})
}

func tlsPipelineUnread(ctx context.Context, t *Target) error {
	msg := kafkaFormatter.AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
	return hold(ctx, t, KafkaTLS, t.N(4), 4, 0, func(ctx context.Context, c net.Conn) {
		if tc := handshake(ctx, t, c); tc != nil {
			pipeline(ctx, tc, msg)
		}
	})
}

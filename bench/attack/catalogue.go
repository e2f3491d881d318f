package attack

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Catalogue returns every attack class, in the order they run: issue 13's
// hostile clients, then issue 14's allocation attacks (catalogue14.go),
// issue 19's PROXY protocol attacks (catalogue19.go), issue 22's REST Proxy
// consumer instances (catalogue22.go), issue 21's attacks on the Kafka
// TLS listener (catalogue_tls.go) and the attacks on gateway mode
// (catalogue_gateway.go).
// Counts are those of Scale 1, chosen so that each attack could exceed the
// 1 GiB default memory budget if the server charged or buffered what the
// attacker announces or provokes, while the whole suite stays far below the
// 20,000 open files of one test process.
func Catalogue() []Attack {
	return append(append(append(append(append(hostileClients(), allocationAttacks()...), proxyAttacks()...), restProxyAttacks()...), tlsAttacks()...),
		gatewayAttacks()...)
}

// hostileClients are issue 13's classes: slow, abandoned, pipelining,
// oversize, garbage and reconnecting clients.
func hostileClients() []Attack {
	return []Attack{
		{Name: "http-abandoned-body", Issue: 13, Listener: HTTP,
			What: "120 connections (60 per IP) send POST /topics/x with Content-Length 10 MiB, one body byte, then nothing",
			Run:  httpAbandonedBody},
		{Name: "http-abandoned-body-closed", Issue: 13, Listener: HTTP,
			What: "rounds of 40 connections that send the same head and one byte, then close",
			Run:  httpAbandonedBodyClosed},
		{Name: "http-chunked-abandoned", Issue: 13, Listener: HTTP,
			What: "rounds of 40 connections that send a chunked POST with one 1 MiB chunk, then close without the last chunk",
			Run:  httpChunkedAbandoned},
		{Name: "http-trickled-body", Issue: 13, Listener: HTTP,
			What: "60 connections send a head with Content-Length 10 MiB, then one body byte per second",
			Run:  httpTrickledBody},
		{Name: "http-slowloris", Issue: 13, Listener: HTTP,
			What: "200 connections (50 per IP) send a request head one byte every 500 ms",
			Run:  httpSlowloris},
		{Name: "http-pipeline-unread", Issue: 13, Listener: HTTP,
			What: "4 connections pipeline GET /metrics and GET /health without reading a response",
			Run:  httpPipelineUnread},
		{Name: "http-oversize-body", Issue: 13, Listener: HTTP,
			What: "2 connections at a time send POST with Content-Length 1 GiB and stream the body as fast as they can",
			Run:  httpOversizeBody},
		{Name: "http-garbage", Issue: 13, Listener: HTTP,
			What: "4 connections at a time send 64 KiB of random bytes, read for 50 ms and close",
			Run:  garbage(HTTP)},
		{Name: "http-reconnect-storm", Issue: 13, Listener: HTTP,
			What: "8 workers on 8 IPs connect, send GET /health and close without reading (2,000 connections/s)",
			Run:  reconnectStorm(HTTP)},
		{Name: "kafka-trickled-frame-one-ip", Issue: 13, Listener: Kafka,
			What: "90 connections from one IP announce a 90 MB Produce frame and send one byte every 300 ms",
			Run:  kafkaTrickledFrames(90, 90)},
		{Name: "kafka-trickled-frame-many-ips", Issue: 13, Listener: Kafka,
			What: "100 connections from 25 IPs (4 each) announce a 90 MB Produce frame and send one byte every 300 ms",
			Run:  kafkaTrickledFrames(100, 4)},
		{Name: "kafka-pipeline-unread-apiversions", Issue: 13, Listener: Kafka,
			What: "4 connections pipeline ApiVersions requests without reading a response",
			Run:  kafkaPipelineAPIVersions},
		{Name: "kafka-oversize-frame", Issue: 13, Listener: Kafka,
			What: "2 connections at a time announce a 200 MiB Produce frame and stream it as fast as they can",
			Run:  kafkaOversizeFrame},
		{Name: "kafka-garbage", Issue: 13, Listener: Kafka,
			What: "4 connections at a time send 64 KiB of random bytes, read for 50 ms and close",
			Run:  garbage(Kafka)},
		{Name: "kafka-reconnect-storm", Issue: 13, Listener: Kafka,
			What: "8 workers on 8 IPs connect, send ApiVersions and close without reading (2,000 connections/s)",
			Run:  reconnectStorm(Kafka)},
	}
}

// bodyHead is a REST produce head announcing a body of n bytes.
func bodyHead(n int) []byte {
	return httpHead("POST", "/topics/attack", "Content-Type: application/vnd.kafka.json.v2+json",
		fmt.Sprintf("Content-Length: %d", n))
}

const tenMiB = 10 << 20

func httpAbandonedBody(ctx context.Context, t *Target) error {
	msg := append(bodyHead(tenMiB), '{')
	return hold(ctx, t, HTTP, t.N(120), 60, 0, func(ctx context.Context, c net.Conn) {
		writeAll(c, msg)
	})
}

// rounds runs round again and again, pausing between rounds, until ctx
// ends.
func rounds(ctx context.Context, pause time.Duration, round func(ctx context.Context)) error {
	for ctx.Err() == nil {
		round(ctx)
		sleep(ctx, pause)
	}
	return nil
}

// closedRound opens n connections from one attacker IP at once, writes
// msg on each, and closes them.
func closedRound(ctx context.Context, t *Target, n int, msg []byte) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once(ctx, AttackerIP(0), t.HTTPAddr, func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
		}()
	}
	wg.Wait()
}

func httpAbandonedBodyClosed(ctx context.Context, t *Target) error {
	msg := append(bodyHead(tenMiB), '{')
	return rounds(ctx, 200*time.Millisecond, func(ctx context.Context) { closedRound(ctx, t, t.N(40), msg) })
}

func httpChunkedAbandoned(ctx context.Context, t *Target) error {
	chunk := make([]byte, 1<<20)
	msg := httpHead("POST", "/topics/attack", "Content-Type: application/vnd.kafka.json.v2+json", "Transfer-Encoding: chunked")
	msg = fmt.Appendf(msg, "%x\r\n", len(chunk))
	msg = append(msg, chunk...)
	return rounds(ctx, 200*time.Millisecond, func(ctx context.Context) { closedRound(ctx, t, t.N(40), msg) })
}

func httpTrickledBody(ctx context.Context, t *Target) error {
	head := bodyHead(tenMiB)
	return hold(ctx, t, HTTP, t.N(60), 60, 0, func(ctx context.Context, c net.Conn) {
		if writeAll(c, head) {
			trickle(ctx, c, time.Second)
		}
	})
}

func httpSlowloris(ctx context.Context, t *Target) error {
	head := httpHead("GET", "/health", "User-Agent: slowloris", "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	return hold(ctx, t, HTTP, t.N(200), 50, 0, func(ctx context.Context, c net.Conn) {
		for i := 0; i < len(head)-2 && ctx.Err() == nil; i++ {
			if !writeAll(c, head[i:i+1]) {
				return
			}
			sleep(ctx, 500*time.Millisecond)
		}
	})
}

// pipeline writes msg again and again on c without reading, until ctx
// ends or the write fails (a closed connection, or ctx's close).
func pipeline(ctx context.Context, c net.Conn, msg []byte) {
	batch := make([]byte, 0, 64<<10)
	for len(batch)+len(msg) <= cap(batch) {
		batch = append(batch, msg...)
	}
	for ctx.Err() == nil {
		if !writeAll(c, batch) {
			return
		}
	}
}

func httpPipelineUnread(ctx context.Context, t *Target) error {
	msg := append(httpHead("GET", "/metrics"), httpHead("GET", "/health")...)
	return hold(ctx, t, HTTP, t.N(4), 4, 0, func(ctx context.Context, c net.Conn) { pipeline(ctx, c, msg) })
}

func httpOversizeBody(ctx context.Context, t *Target) error {
	head := bodyHead(1 << 30)
	return repeat(ctx, t.N(2), func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.HTTPAddr, func(ctx context.Context, c net.Conn) {
			if writeAll(c, head) {
				stream(ctx, c)
			}
		})
	})
}

// garbage sends random bytes to listener l.
func garbage(l Listener) func(ctx context.Context, t *Target) error {
	return func(ctx context.Context, t *Target) error {
		return repeat(ctx, t.N(4), func(ctx context.Context, w int) {
			junk := make([]byte, 64<<10)
			_, _ = rand.Read(junk)
			once(ctx, AttackerIP(w), t.Addr(l), func(ctx context.Context, c net.Conn) {
				if writeAll(c, junk) {
					drainFor(c, 50*time.Millisecond)
				}
			})
		})
	}
}

// stormPace is the shortest time between two connections of one storm
// worker: 8 workers make at most 2,000 connections/s. Unpaced, the
// attacker (in the same process as the test, on the same 2 cores, under
// the race detector) takes the CPU from the server, and the good clients'
// latency measures that contention rather than the server; --scale adds
// workers to go beyond.
const stormPace = 4 * time.Millisecond

// reconnectStorm connects, sends one request and closes without reading.
func reconnectStorm(l Listener) func(ctx context.Context, t *Target) error {
	return func(ctx context.Context, t *Target) error {
		msg := httpHead("GET", "/health")
		if l == Kafka {
			msg = kafkaFormatter.AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
		}
		return repeat(ctx, t.N(8), func(ctx context.Context, w int) {
			start := time.Now()
			once(ctx, AttackerIP(w), t.Addr(l), func(ctx context.Context, c net.Conn) { writeAll(c, msg) })
			sleep(ctx, stormPace-time.Since(start))
		})
	}
}

// kafkaTrickledFrames announces 90 MB Produce frames on n connections,
// perIP from each address, and trickles them.
func kafkaTrickledFrames(n, perIP int) func(ctx context.Context, t *Target) error {
	return func(ctx context.Context, t *Target) error {
		head := kafkaHead(90_000_000, 0, 7, 1)
		return hold(ctx, t, Kafka, t.N(n), perIP, 0, func(ctx context.Context, c net.Conn) {
			if writeAll(c, head) {
				trickle(ctx, c, 300*time.Millisecond)
			}
		})
	}
}

func kafkaPipelineAPIVersions(ctx context.Context, t *Target) error {
	msg := kafkaFormatter.AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), 1)
	return hold(ctx, t, Kafka, t.N(4), 4, 0, func(ctx context.Context, c net.Conn) { pipeline(ctx, c, msg) })
}

func kafkaOversizeFrame(ctx context.Context, t *Target) error {
	head := kafkaHead(200<<20, 0, 7, 1)
	return repeat(ctx, t.N(2), func(ctx context.Context, w int) {
		once(ctx, AttackerIP(w), t.KafkaAddr, func(ctx context.Context, c net.Conn) {
			if writeAll(c, head) {
				stream(ctx, c)
			}
		})
	})
}

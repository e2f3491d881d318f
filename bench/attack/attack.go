// Package attack runs hostile clients against a real server process and
// measures what well-behaved clients on other addresses see meanwhile: the
// attack suite of issues 13 and 14.
//
// Each Attack runs against a fresh server started with default flags. The
// attacker connects from 127.0.0.2 upward (AttackerIP), so per-IP limits
// apply per attacker address; the good clients connect from 127.0.0.250 and
// above. A run has three phases: a baseline (good clients alone), the attack,
// and the recovery after the attacker has closed every connection. Per
// attack the Runner asserts the Bounds: good clients' p99 during the attack,
// /health answering, the server's peak RSS (VmRSS sampled from /proc, and
// the kernel's high-water mark VmHWM from the attack's start until the
// recovery) against the memory limit plus a constant, and the time until
// the server is back to its baseline (floodgate_memory_used_bytes and
// fresh requests answered in time).
//
// Adding a case: write a func(ctx, *Target) error that attacks until ctx
// ends and returns only once every connection it opened is closed (the
// helpers hold, repeat and once do that), and append an Attack with it to
// hostileClients (catalogue.go, issue 13) or allocationAttacks
// (catalogue14.go, issue 14), or to gatewayAttacks (catalogue_gateway.go)
// for one that needs floodgate in gateway mode (Attack.Gateway: the runner
// starts an upstream cluster in front of which floodgate runs);
// TestAttacks and `floodgate bench attack` run every entry. An attack that
// needs other bounds sets Attack.Bounds.
package attack

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/floodgate/floodgate/codec/proxyproto"
)

// Listener names the port an attack aims at.
type Listener string

// The listeners of a target.
const (
	Kafka Listener = "kafka"
	HTTP  Listener = "http"
	// KafkaTLS is the Kafka-over-TLS listener (catalogue_tls.go).
	KafkaTLS Listener = "kafka-tls"
)

// Attack is one class of hostile client.
type Attack struct {
	// Name identifies the attack in tables and test names (lower-case, dashes).
	Name string
	// Issue is the issue that describes the class (13: hostile clients,
	// 14: allocation driven by client input).
	Issue int
	// Listener is the port attacked. HTTP attacks also run against nginx
	// in `floodgate bench attack --nginx`; Kafka attacks need a Kafka port.
	Listener Listener
	// What says in one line what the attacker does, with its counts at
	// Scale 1.
	What string
	// Setup, when set, runs before the baseline (e.g. to fill a topic the
	// attack then fetches); it is not measured.
	Setup func(ctx context.Context, t *Target) error
	// Run attacks t until ctx ends. It must return promptly after that,
	// with every connection it opened closed: the recovery phase starts
	// when it returns. An error means the attack could not be carried out
	// (not that the server resisted it).
	Run func(ctx context.Context, t *Target) error
	// Bounds are what the Runner asserts; zero fields take DefaultBounds.
	Bounds Bounds
	// ServerArgs are flags the server is started with beyond the
	// defaults (floodgate only).
	ServerArgs []string
	// KafkaProxyHeader: the server's Kafka listener expects a PROXY
	// protocol header (ServerArgs say --proxy-protocol kafka), so the good
	// clients start each Kafka connection with a v1 header naming their
	// own address, as a balancer in front of them would.
	KafkaProxyHeader bool
	// Gateway runs floodgate in gateway mode (catalogue_gateway.go): the
	// Runner starts an upstream cluster (a 3-broker kfake, in a process of
	// its own: `floodgate bench upstream`)
	// and floodgate with --upstream-brokers naming it, per-broker
	// listeners on free ports and 127.0.0.1 advertised. The good clients
	// and the attacker reach the cluster only through floodgate.
	Gateway bool
	// Held are gauges of floodgate's /metrics (a name, optionally with
	// labels) counting what the attack makes the server hold beyond the
	// memory budget (e.g. floodgate_gateway_pipes_in_use): the Runner
	// reports their peak during the attack, and recovery also waits for
	// each to be back to at most its value before the attack.
	Held []string
	// Counters are floodgate metrics reported after the attack (their
	// growth during it), as evidence of the path it took.
	Counters []string
	// Reaches, when set, is a counter that must grow during the attack:
	// an attack that no longer reaches the path it aims at (e.g. answers
	// relayed through pipes) measures nothing, and fails.
	Reaches string
}

// Bounds are the assertions of one attack.
type Bounds struct {
	// GoodP99 bounds the p99 latency of every good client's requests
	// during the attack, and a fresh request's latency after it.
	GoodP99 time.Duration
	// HealthP99 bounds the p99 latency of GET /health during the attack
	// (and at least one /health must answer 200).
	HealthP99 time.Duration
	// RSSOverLimit is how far the server's peak RSS may exceed its memory
	// limit (floodgate_memory_limit_bytes): the Go runtime, the heap the
	// GC has not returned yet, code, and what is not charged to the
	// budget by design (connections' own buffers).
	RSSOverLimit int64
	// Recovery bounds the time from the attacker leaving until the server
	// is back to its baseline.
	Recovery time.Duration
}

// DefaultBounds are issue 13's bounds. RSSOverLimit is 256 MiB: an idle
// floodgate is about 30 MiB, and GOGC=100 lets the heap overshoot live data
// until the next cycle; what floodgate holds beyond the budget plus this
// is memory no limit accounts for.
var DefaultBounds = Bounds{
	GoodP99:      200 * time.Millisecond,
	HealthP99:    200 * time.Millisecond,
	RSSOverLimit: 256 << 20,
	Recovery:     time.Second,
}

// withDefaults fills the zero fields of b from DefaultBounds.
func (b Bounds) withDefaults() Bounds {
	if b.GoodP99 == 0 {
		b.GoodP99 = DefaultBounds.GoodP99
	}
	if b.HealthP99 == 0 {
		b.HealthP99 = DefaultBounds.HealthP99
	}
	if b.RSSOverLimit == 0 {
		b.RSSOverLimit = DefaultBounds.RSSOverLimit
	}
	if b.Recovery == 0 {
		b.Recovery = DefaultBounds.Recovery
	}
	return b
}

// Target is a running server under attack.
type Target struct {
	// Name is "floodgate" or "nginx".
	Name string
	// KafkaAddr is the Kafka listener (host:port); empty when the server
	// has none (nginx).
	KafkaAddr string
	// HTTPAddr is the HTTP listener (host:port).
	HTTPAddr string
	// KafkaTLSAddr is the Kafka TLS listener, and TLS a client
	// configuration that trusts its certificate; empty and nil when the
	// server has none (nginx).
	KafkaTLSAddr string
	TLS          *tls.Config
	// PID is the server's process id (RSS is read from /proc).
	PID int
	// Scale multiplies every attack's connection counts (1: the short form
	// of `go test`).
	Scale float64
	// KafkaProxyHeader: good clients send a PROXY header on Kafka
	// connections (Attack.KafkaProxyHeader).
	KafkaProxyHeader bool
	// Upstream is the upstream cluster's brokers when the server runs in
	// gateway mode (Attack.Gateway), for attacks that prepare data behind
	// floodgate's back; nil otherwise.
	Upstream []string
}

// Addr returns the listener l of the target, or "" when it has none.
func (t *Target) Addr(l Listener) string {
	switch l {
	case Kafka:
		return t.KafkaAddr
	case KafkaTLS:
		return t.KafkaTLSAddr
	}
	return t.HTTPAddr
}

// N scales a count of the short form by t.Scale (at least 1).
func (t *Target) N(base int) int {
	s := t.Scale
	if s <= 0 {
		s = 1
	}
	n := int(float64(base)*s + 0.5)
	if n < 1 {
		n = 1
	}
	return n
}

// AttackerIP is the source address of attacker i: 127.0.0.2 upward, never
// a good client's address (the range wraps below 127.0.0.250).
func AttackerIP(i int) net.IP {
	return net.IPv4(127, 0, 0, byte(2+i%(goodIPBase-2)))
}

// goodIPBase is the last byte of the first good client's address.
const goodIPBase = 250

// goodIP is the source address of good client i (127.0.0.250 upward).
func goodIP(i int) net.IP { return net.IPv4(127, 0, 0, byte(goodIPBase+i)) }

// dialKafka connects a good client to the Kafka listener addr from ip,
// with a PROXY v1 header naming ip when the listener expects one.
func (t *Target) dialKafka(ctx context.Context, ip net.IP, addr string) (net.Conn, error) {
	c, err := Dial(ctx, ip, addr)
	if err != nil || !t.KafkaProxyHeader {
		return c, err
	}
	src := c.LocalAddr().(*net.TCPAddr).AddrPort()
	dst := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, err := c.Write(proxyproto.AppendV1(nil, src, dst)); err != nil {
		c.Close()
		return nil, fmt.Errorf("PROXY header to %s: %w", addr, err)
	}
	return c, nil
}

// Dial connects to addr from the source address ip, bounded by 2 s and by
// ctx.
func Dial(ctx context.Context, ip net.IP, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, ip, err)
	}
	return c, nil
}

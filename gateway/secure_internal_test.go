package gateway

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/floodgate/floodgate/internal/kafkatest"
	"github.com/floodgate/floodgate/internal/testcerts"
)

// TestEveryUpstreamConnectionKindUsesTLSAndSASL: against a one-broker
// kfake that requires TLS, SASL or both, every kind of upstream connection
// the gateway opens carries traffic: the control connections (start-up and
// the refreshes every 200 ms, which keep Ready true), a shared connection
// (--max-upstream-connections-per-broker 1 and two clients) and a
// long-poll connection (the consumer's long polls while it shares). A TLS
// server cannot read plaintext and kfake refuses any request but
// ApiVersions before SASL, so a kind that skipped either setup would fail
// the produce, the long poll or the refresh. Over TLS no connection may
// have the inline writev path (its bytes would bypass crypto/tls).
func TestEveryUpstreamConnectionKindUsesTLSAndSASL(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	for _, tc := range []struct {
		name      string
		tls, sasl bool
	}{
		{"plaintext", false, false},
		{"TLS", true, false},
		{"SASL", false, true},
		{"TLS and SASL", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kopts []kfake.Opt
			if tc.tls {
				kopts = append(kopts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{certs.Server}}))
			}
			if tc.sasl {
				kopts = append(kopts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "floodgate", "gw-secret"))
			}
			srv, g := startInternal(t, 4, func(c *Config) {
				c.MaxUpstreamPerBroker = 1
				c.RefreshInterval = 200 * time.Millisecond
				if tc.tls {
					c.UpstreamTLS = &tls.Config{RootCAs: certs.Pool}
				}
				if tc.sasl {
					c.SASL = scram.Auth{User: "floodgate", Pass: "gw-secret"}.AsSha512Mechanism()
				}
			}, kopts...)
			newClient := func(opts ...kgo.Opt) *kgo.Client {
				cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr()), kgo.RetryTimeout(10 * time.Second)}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(cl.Close)
				return cl
			}
			prod := newClient(kgo.DefaultProduceTopic("t"))
			cons := newClient(kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(2*time.Second))
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := make(chan error, 1)
			go func() {
				for ctx.Err() == nil {
					fs := cons.PollFetches(ctx)
					if err := fs.Err(); err != nil && ctx.Err() == nil {
						got <- err
						return
					}
					if fs.NumRecords() > 0 {
						got <- nil
						return
					}
				}
			}()
			time.Sleep(700 * time.Millisecond) // the consumer's fetch waits upstream; refreshes run
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("second")}).FirstErr(); err != nil {
				t.Fatalf("produce during the long poll: %v", err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("long poll: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("the long-polling consumer never saw the record")
			}
			if !g.Ready() {
				t.Fatal("not ready: the refreshes' control connections failed")
			}

			g.mu.RLock()
			var b *upstreamBroker
			for _, x := range g.brokers {
				b = x
			}
			g.mu.RUnlock()
			b.mu.Lock()
			conns := append(append([]*upstreamConn(nil), b.conns...), b.leases...)
			shared, leases := len(b.conns), len(b.leases)
			clients := 0
			if shared > 0 {
				clients = b.conns[0].clients
			}
			b.mu.Unlock()
			if shared != 1 || clients < 2 || leases < 1 {
				t.Fatalf("pool: %d connections (%d clients on the first), %d long-poll connections; want 1 shared by 2 clients and a long-poll one",
					shared, clients, leases)
			}
			for i, u := range conns {
				u.mu.Lock()
				nc, raw, dead := u.nc, u.raw, u.dead
				u.mu.Unlock()
				if dead || nc == nil {
					t.Fatalf("connection %d: dead %v, connected %v", i, dead, nc != nil)
				}
				if _, isTLS := nc.(*tls.Conn); isTLS != tc.tls {
					t.Fatalf("connection %d is a %T; TLS wanted: %v", i, nc, tc.tls)
				}
				if (raw != nil) == tc.tls {
					t.Fatalf("connection %d: inline writes %v over TLS %v", i, raw != nil, tc.tls)
				}
			}
		})
	}
}

// TestRefusedAuthenticationFailsTheConnectionLikeADial: an upstream that
// refuses floodgate's credentials fails the new connection as a failed dial
// does: the pool is told (dial backoff, readiness), the request queued
// meanwhile fails with an error naming the broker and the mechanism, and
// it is recognised as a refusal (fatal at start, unlike an unreachable
// upstream). With the right credentials the same queued request, which
// kfake refuses before SASL, is answered.
func TestRefusedAuthenticationFailsTheConnectionLikeADial(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "floodgate", "gw-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addr := cluster.ListenAddrs()[0]
	for _, tc := range []struct {
		name, pass string
		refused    bool
	}{
		{"wrong password", "wrong", true},
		{"right password", "gw-secret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dialer{timeout: 2 * time.Second, authTimeout: 5 * time.Second,
				sasl: scram.Auth{User: "floodgate", Pass: tc.pass}.AsSha512Mechanism()}
			dialed := make(chan error, 1)
			u := newUpstream(0, addr, d, 5*time.Second, nil, func(err error) { dialed <- err }, nil)
			defer u.close(errUpstreamClosed)
			req := kmsg.NewPtrMetadataRequest()
			req.SetVersion(7)
			frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, 0)
			answered := make(chan error, 1)
			if err := u.send(frame[4:], nil, true, 5*time.Second, func(_ []byte, err error) { answered <- err }); err != nil {
				t.Fatalf("send before the connection is set up: %v", err)
			}
			var derr, rerr error
			select {
			case derr = <-dialed:
			case <-time.After(10 * time.Second):
				t.Fatal("the pool was never told how the dial ended")
			}
			select {
			case rerr = <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the queued request was never answered nor failed")
			}
			if !tc.refused {
				if derr != nil || rerr != nil {
					t.Fatalf("dial: %v, request: %v", derr, rerr)
				}
				return
			}
			if derr == nil || !isAuthRefused(derr) {
				t.Fatalf("dial outcome %v: want a refusal", derr)
			}
			if rerr == nil || !strings.Contains(rerr.Error(), "authenticate to upstream broker 0 at "+addr+" with SCRAM-SHA-512") {
				t.Fatalf("queued request failed with %v: want the refusal naming the broker and mechanism", rerr)
			}
			if !u.isDead() {
				t.Fatal("the connection lives on after its authentication was refused")
			}
		})
	}
}

// TestLongPollOnAFullPoolDoesNotDelayALaterSharer: with one upstream
// connection per broker, a client whose first request is a long poll
// (3 s wait on an empty partition) owns the only connection; its poll must
// not hold the requests of a producer that arrives meanwhile and is given
// that connection to share. kgo consumers fetch on a connection of their
// own, which is the first on a broker their other requests never reached:
// the gateway package's long-poll test, whose leaders kfake picks at
// random, measured a produce of 2.0 s behind such a poll. A long poll on a
// full pool now goes to a long-poll connection.
func TestLongPollOnAFullPoolDoesNotDelayALaterSharer(t *testing.T) {
	srv, _ := startInternal(t, 4, func(c *Config) { c.MaxUpstreamPerBroker = 1 })
	poller, err := net.Dial("tcp", srv.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	if _, err := poller.Write(longPollFrame("poller", 3*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the poll waits upstream

	prod, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("t"), kgo.RetryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	took := time.Since(start)
	if took > time.Second {
		t.Fatalf("a new producer's first record took %v behind another client's long poll", took)
	}
	t.Logf("a new producer's first record acknowledged in %v while a long poll waits", took)
}

// TestLongPollOnItsOwnConnectionIsNotSharedWhileItWaits: with two upstream
// connections per broker, client A's long poll (4 s on an empty partition)
// goes on A's own connection, the pool having room; client B takes the
// second, which fills the pool; client C must then be given B's
// connection, not A's, whose poll holds every request queued behind it (a
// broker answers a connection's requests in order). Before the fix C was
// given A's connection (both had one client) and its Metadata waited for
// the rest of A's poll (found by the attack suite's gateway test).
func TestLongPollOnItsOwnConnectionIsNotSharedWhileItWaits(t *testing.T) {
	srv, _ := startInternal(t, 4, func(c *Config) { c.MaxUpstreamPerBroker = 2 })
	dial := func() net.Conn {
		c, err := net.Dial("tcp", srv.KafkaAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if _, err := dial().Write(longPollFrame("a", 4*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // A's poll waits upstream on A's own connection

	metadata := func(c net.Conn, id string) time.Duration {
		t.Helper()
		start := time.Now()
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(1)
		if _, err := c.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID(id)).AppendRequest(nil, req, 7)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var head [8]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			t.Fatalf("client %s's Metadata: %v", id, err)
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(head[:4]))-4); err != nil {
			t.Fatalf("client %s's Metadata: %v", id, err)
		}
		return time.Since(start)
	}
	metadata(dial(), "b") // B's own connection: the pool is full
	took := metadata(dial(), "c")
	if took > time.Second {
		t.Fatalf("client C's Metadata took %v: C was given the connection A's long poll holds", took)
	}
	t.Logf("client C, sharing on a full pool while A's long poll waits: Metadata answered in %v", took)
}

// longPollFrame is a Fetch v4 (correlation id 1) of partition 0 of the
// seeded topic "t" that waits up to wait for a byte.
func longPollFrame(clientID string, wait time.Duration) []byte {
	fetch := kafkatest.LongPoll("t", 0, wait, 0)
	fetch.SetVersion(4)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)).AppendRequest(nil, fetch, 1)
}

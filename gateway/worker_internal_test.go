package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// hangingListener returns the address of a socket that listens with a
// full accept queue: a connection attempt to it hangs until the dialler's
// timeout (the kernel drops the SYNs), as a broker behind a black hole does.
func hangingListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.DialTimeout("tcp", addr, time.Second) // takes the one place in the queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel accepts beyond a listen backlog of 0")
	}
	return addr
}

// startInternal runs kfake (one broker, more options in kopts) with
// floodgate's gateway in front, with a pool of `workers` workers.
func startInternal(t *testing.T, workers int, cfg func(*Config), kopts ...kfake.Opt) (*loop.Server, *Gateway) {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}, kopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	set := metrics.NewSet()
	l := limits.Defaults()
	l.ProduceRate, l.FetchRate = 0, 0
	srv, err := loop.New(loop.Config{KafkaListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", EventLoops: 1, Workers: workers,
		Limits: l, Logger: quiet, Metrics: set, HTTPLimits: loop.HTTPLimits{HeaderTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	first, err := loopback.FreePortRange(4)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Seeds: cluster.ListenAddrs(), ListenHost: "127.0.0.1", PortFirst: first, PortLast: first + 3,
		AdvertisedHost: "127.0.0.1", RequestTimeout: 10 * time.Second, DialTimeout: 3 * time.Second,
		Logger: quiet, Metrics: set, AddListener: srv.AddKafkaListener}
	if cfg != nil {
		cfg(&c)
	}
	g, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv.SetKafkaHandler(g)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
		g.Close()
	})
	return srv, g
}

// apiVersionsFrame is an ApiVersions v0 request, length prefix included.
func apiVersionsFrame(corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), corr)
}

// TestGatewayUnreachableUpstreamHoldsNoPoolWorker: clients of an upstream
// broker whose dial hangs (a black hole) must not take the pool's workers
// from the clients of the rest of the cluster. Before upstream dials left
// the workers (and bootstrap requests avoided brokers being dialled), the
// two workers sat in 3 s dials and another client's Metadata request failed
// after 4 s with REQUEST_TIMED_OUT; now it is answered in ~3 ms.
func TestGatewayUnreachableUpstreamHoldsNoPoolWorker(t *testing.T) {
	srv, g := startInternal(t, 2, nil)
	b, err := g.ensureBroker(99, hangingListener(t))
	if err != nil {
		t.Fatal(err)
	}
	// Six clients of the black-holed broker, each with a request in flight.
	for i := 0; i < 6; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.localPort))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(apiVersionsFrame(1)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // their requests reach the workers first

	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	req := kmsg.NewPtrMetadataRequest()
	if _, err := req.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a client of a healthy broker waited %v behind dials to a black hole", took)
	} else {
		t.Logf("Metadata answered in %v while 6 clients wait for a black-holed broker", took)
	}
}

// listOffsetsFrame asks for partition 0 of topic t, length prefix included.
func listOffsetsFrame(corr int32) []byte {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(1)
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, corr)
}

// TestGatewayBlackholedBrokerClientsGetRetriableErrors: the clients of the
// black-holed broker are answered (with a retriable error) once the dial
// times out, not left hanging, and a later request within the backoff is
// answered at once.
func TestGatewayBlackholedBrokerClientsGetRetriableErrors(t *testing.T) {
	_, g := startInternal(t, 2, func(c *Config) { c.DialTimeout = 300 * time.Millisecond })
	b, err := g.ensureBroker(99, hangingListener(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.localPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for corr := int32(1); corr <= 2; corr++ {
		start := time.Now()
		if _, err := c.Write(listOffsetsFrame(corr)); err != nil {
			t.Fatal(err)
		}
		var head [8]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			t.Fatalf("request %d: %v", corr, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		if got := int32(binary.BigEndian.Uint32(head[4:])); got != corr {
			t.Fatalf("correlation id %d, want %d", got, corr)
		}
		resp := kmsg.NewPtrListOffsetsResponse()
		resp.SetVersion(1)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode == 0 {
			t.Fatalf("request %d to a black-holed broker answered without an error: %+v", corr, resp.Topics)
		}
		code := resp.Topics[0].Partitions[0].ErrorCode
		if took := time.Since(start); corr == 2 && took > 100*time.Millisecond {
			t.Fatalf("request %d within the dial backoff took %v", corr, took)
		}
		t.Logf("request %d answered with error %d in %v", corr, code, time.Since(start))
	}
}

// TestGatewayLoopbackAdvertisedWithRemoteUpstreamWarns: a gateway that
// tells clients to connect to a loopback host while its upstream is on
// another machine is misconfigured for remote clients, and says so.
func TestGatewayLoopbackAdvertisedWithRemoteUpstreamWarns(t *testing.T) {
	for _, tc := range []struct {
		advertised string
		seeds      []string
		warns      bool
	}{
		{"127.0.0.1", []string{"kafka-1.example.com:9092"}, true},
		{"localhost", []string{"127.0.0.1:9092", "10.0.0.7:9092"}, true},
		{"::1", []string{"[2001:db8::1]:9092"}, true},
		{"127.0.0.1", []string{"127.0.0.1:9092", "localhost:9093"}, false},
		{"gw.example.com", []string{"kafka-1.example.com:9092"}, false},
		{"10.0.0.5", []string{"127.0.0.1:9092"}, false},
	} {
		t.Run(tc.advertised+"→"+strings.Join(tc.seeds, ","), func(t *testing.T) {
			var buf bytes.Buffer
			g := &Gateway{cfg: Config{AdvertisedHost: tc.advertised, Seeds: tc.seeds},
				log: slog.New(slog.NewTextHandler(&buf, nil))}
			g.warnLoopbackAdvertised()
			if got := strings.Contains(buf.String(), "level=WARN"); got != tc.warns {
				t.Fatalf("warned %v, want %v: %q", got, tc.warns, buf.String())
			}
		})
	}
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

// TestGatewayUpstreamErrorWarningsAreRateLimited: 40 requests failing
// against an unreachable broker within a second give one WARN (with the
// count it stands for), not 40.
func TestGatewayUpstreamErrorWarningsAreRateLimited(t *testing.T) {
	var logs logBuffer
	_, g := startInternal(t, 2, func(c *Config) {
		c.DialTimeout = 200 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	b, err := g.ensureBroker(99, hangingListener(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.localPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	const n = 40
	for corr := int32(1); corr <= n; corr++ {
		if _, err := c.Write(listOffsetsFrame(corr)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ { // every request is answered
		var head [4]byte
		if _, err := io.ReadFull(c, head[:]); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(head[:]))); err != nil {
			t.Fatal(err)
		}
	}
	if got := logs.count(`msg="upstream request failed"`); got < 1 || got > 2 {
		t.Fatalf("%d WARN lines for %d failed requests in under a second, want 1 or 2", got, n)
	}
}

// TestKnownAddrsWhileABrokerMoves: the refresh loop lists the brokers'
// addresses while rewritten answers move a broker to a new address (a
// restarted node); under the race detector this test fails if addr is
// read without the broker's lock (it was, and CI caught it once).
func TestKnownAddrsWhileABrokerMoves(t *testing.T) {
	b := &upstreamBroker{id: 1, addr: "127.0.0.1:1"}
	g := &Gateway{brokers: map[int32]*upstreamBroker{1: b}, cfg: Config{Seeds: []string{"127.0.0.1:9"}},
		retired: metrics.NewSet().NewCounter("moves_total")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			b.move(g, fmt.Sprintf("127.0.0.1:%d", 2+i%2))
		}
	}()
	for i := 0; i < 200; i++ {
		addrs := g.knownAddrs()
		if len(addrs) != 2 || addrs[1] != "127.0.0.1:9" {
			t.Fatalf("known addresses %v, want the broker's then the seed", addrs)
		}
	}
	<-done
}

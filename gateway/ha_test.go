package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/loopback"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// gatewayNode is one floodgate gateway on fixed ports, so that it can be
// stopped and started again where its clients knew it.
type gatewayNode struct {
	kafka     string // the bootstrap listener, host:port
	portFirst int    // the per-broker listeners
	lim       limits.Config
	srv       *loop.Server
	g         *gateway.Gateway
	set       *metrics.Set
}

// forwarded is how many requests the running gateway forwarded.
func (n *gatewayNode) forwarded() uint64 {
	if n.set == nil {
		return 0
	}
	return n.set.GetOrCreateCounter("floodgate_gateway_requests_forwarded_total").Get()
}

func newGatewayNode(t *testing.T, lim func(*limits.Config)) *gatewayNode {
	t.Helper()
	kp, err := loopback.FreePortRange(1)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := loopback.FreePortRange(8)
	if err != nil {
		t.Fatal(err)
	}
	l := limits.Defaults()
	l.ProduceRate, l.FetchRate = 0, 0
	l.MaxConnectionsPerIP = 10000
	if lim != nil {
		lim(&l)
	}
	n := &gatewayNode{kafka: fmt.Sprintf("127.0.0.1:%d", kp), portFirst: gp, lim: l}
	t.Cleanup(n.stop)
	return n
}

// start runs the gateway (again) in front of cluster.
func (n *gatewayNode) start(t *testing.T, cluster *kfake.Cluster) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	set := metrics.NewSet()
	srv, err := loop.New(loop.Config{KafkaListen: n.kafka, HTTPListen: "127.0.0.1:0", EventLoops: 1, Limits: n.lim,
		Logger: quiet, Metrics: set, HTTPLimits: loop.HTTPLimits{HeaderTimeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{Seeds: cluster.ListenAddrs(), ListenHost: "127.0.0.1",
		PortFirst: n.portFirst, PortLast: n.portFirst + 7, AdvertisedHost: "127.0.0.1",
		RequestTimeout: 5 * time.Second, RefreshInterval: 500 * time.Millisecond,
		Logger: quiet, Metrics: set, AddListener: srv.AddKafkaListener})
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
	n.srv, n.g, n.set = srv, g, set
}

// stop ends the gateway: its clients' connections close.
func (n *gatewayNode) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Stop(ctx)
	n.g.Close()
	n.srv, n.g, n.set = nil, nil, nil
}

// TestTwoGatewaysProducerSurvivesGatewayRestartWithoutLoss: two gateways
// in front of one cluster, each advertising itself. An idempotent acks=all
// producer bootstrapped with both keeps producing while one gateway is
// stopped and started again — the one its requests go through, which the
// rewritten Metadata of the gateway that answered first chose — and every
// record it had acknowledged is then read back from the cluster, none lost.
func TestTwoGatewaysProducerSurvivesGatewayRestartWithoutLoss(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "ha"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	a, b := newGatewayNode(t, nil), newGatewayNode(t, nil)
	a.start(t, cluster)
	b.start(t, cluster)

	prod, err := kgo.NewClient(kgo.SeedBrokers(a.kafka, b.kafka), kgo.DefaultProduceTopic("ha"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ProduceRequestTimeout(5*time.Second), kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		phase   = "both up"
		byPhase = map[string]int{}
		failed  []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			v := fmt.Sprintf("r-%06d", i)
			prod.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				acked[string(r.Value)] = true
				byPhase[phase]++
			})
		}
	}()
	setPhase := func(p string) {
		mu.Lock()
		phase = p
		mu.Unlock()
	}
	time.Sleep(time.Second)
	if b.forwarded() > a.forwarded() {
		a, b = b, a // a is the gateway carrying the producer
	}
	t.Logf("requests forwarded before the stop: the stopped gateway %d, the other %d", a.forwarded(), b.forwarded())
	if a.forwarded() == 0 {
		t.Fatal("the producer's requests went through neither gateway")
	}
	setPhase("a stopped")
	a.stop()
	time.Sleep(1500 * time.Millisecond)
	setPhase("a restarted")
	a.start(t, cluster)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	<-produced
	if err := prod.Flush(ctx); err != nil {
		// Name what was left: records still buffered in the producer,
		// and what each gateway saw (failed once in CI, not reproduced).
		mu.Lock()
		defer mu.Unlock()
		var st []string
		for _, n := range []*gatewayNode{a, b} {
			var m bytes.Buffer
			if n.set != nil {
				n.set.WritePrometheus(&m)
			}
			for _, line := range strings.Split(m.String(), "\n") {
				if strings.Contains(line, "gateway_") && !strings.HasPrefix(line, "#") && !strings.HasSuffix(line, " 0") {
					st = append(st, n.kafka+" "+line)
				}
			}
		}
		t.Fatalf("flush: %v; %d records still buffered, acknowledged %v, failed %d; gateway metrics:\n%s",
			err, prod.BufferedProduceRecords(), byPhase, len(failed), strings.Join(st, "\n"))
	}
	mu.Lock()
	t.Logf("acknowledged: %v, failed: %d", byPhase, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d records failed, first: %v", len(failed), failed[0])
	}
	for _, p := range []string{"both up", "a stopped", "a restarted"} {
		if byPhase[p] == 0 {
			t.Errorf("nothing acknowledged while %s", p)
		}
	}
	want := len(acked)
	mu.Unlock()

	// Read everything back through the restarted gateway.
	cons, err := kgo.NewClient(kgo.SeedBrokers(a.kafka), kgo.ConsumeTopics("ha"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	dups := 0
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	var fetchErrs []string
	for missing := want; missing > 0; {
		fs := cons.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("%d of %d acknowledged records never read back; fetch errors: %q", missing, want, fetchErrs)
		}
		fs.EachError(func(topic string, p int32, err error) {
			if len(fetchErrs) < 10 {
				fetchErrs = append(fetchErrs, fmt.Sprintf("%s/%d: %v", topic, p, err))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				dups++
			}
			if acked[string(r.Value)] && !seen[string(r.Value)] {
				seen[string(r.Value)] = true
				missing--
			}
		})
	}
	t.Logf("all %d acknowledged records read back (%d duplicates)", want, dups)
}

// TestPerClientLimitsHoldPerGateway: a per-client limit is enforced by
// each gateway on what it sees, so one client address may open
// --max-connections-per-ip connections to each of N gateways, N times
// the limit in all. Size the per-gateway value as the cluster-wide
// allowance / N when clients spread over the gateways.
func TestPerClientLimitsHoldPerGateway(t *testing.T) {
	const perIP = 5
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "lim"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	gws := []*gatewayNode{
		newGatewayNode(t, func(l *limits.Config) { l.MaxConnectionsPerIP = perIP }),
		newGatewayNode(t, func(l *limits.Config) { l.MaxConnectionsPerIP = perIP }),
	}
	for _, n := range gws {
		n.start(t, cluster)
	}
	total := 0
	for _, n := range gws {
		served := 0
		for i := 0; i < perIP+3; i++ {
			c, err := net.Dial("tcp", n.kafka)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if answersAPIVersions(c) {
				served++
			}
		}
		if served != perIP {
			t.Fatalf("gateway %s served %d connections of one address, want %d", n.kafka, served, perIP)
		}
		total += served
	}
	if total != perIP*len(gws) {
		t.Fatalf("%d connections served in all, want %d", total, perIP*len(gws))
	}
	t.Logf("--max-connections-per-ip %d on each of %d gateways: one address held %d connections in all", perIP, len(gws), total)
}

// answersAPIVersions reports whether the server answers an ApiVersions
// request on c with error code 0 (a refused connection is answered with an
// error or closed).
func answersAPIVersions(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	frame := []byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0, 0} // ApiVersions v0, corr 7, client id ""
	if _, err := c.Write(frame); err != nil {
		return false
	}
	var head [10]byte // length, correlation id, error code
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return false
	}
	return head[8] == 0 && head[9] == 0
}

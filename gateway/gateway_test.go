package gateway_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/floodgate/floodgate/gateway"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

type gw struct {
	srv     *loop.Server
	gw      *gateway.Gateway
	cluster *kfake.Cluster
	set     *metrics.Set
}

// startGateway runs kfake with three brokers and floodgate in front of it.
func startGateway(t *testing.T, maxUpstream int, lim func(*limits.Config), opts ...func(*gateway.Config)) *gw {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "orders"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	g := testserver.StartGateway(t, cluster.ListenAddrs(), lim, func(c *gateway.Config) {
		c.MaxUpstreamPerBroker = maxUpstream
		for _, o := range opts {
			o(c)
		}
	})
	return &gw{srv: g.Server, gw: g.Gateway, cluster: cluster, set: g.Metrics}
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceN(t *testing.T, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("value-%06d", i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeN consumes until n records, failing on a duplicate.
func consumeN(t *testing.T, cl *kgo.Client, n int, seen map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", got, n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch error %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			if seen[string(r.Value)] > 1 {
				t.Fatalf("record %s consumed twice", r.Value)
			}
			got++
		})
	}
}

func TestGatewayProduceConsumeAndMetadataRewrite(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	cl := client(t, g.srv.KafkaAddr())
	// Metadata names only floodgate's listeners.
	ctx := context.Background()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 3 {
		t.Fatalf("%d brokers", len(resp.Brokers))
	}
	upstream := map[string]bool{}
	for _, a := range g.cluster.ListenAddrs() {
		upstream[a] = true
	}
	for _, b := range resp.Brokers {
		if upstream[net.JoinHostPort(b.Host, fmt.Sprint(b.Port))] {
			t.Fatalf("metadata leaks upstream broker %s:%d", b.Host, b.Port)
		}
	}
	produceN(t, cl, "orders", 0, 600)
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	consumeN(t, cons, 600, seen)
	for i := 0; i < 600; i++ {
		if seen[fmt.Sprintf("value-%06d", i)] != 1 {
			t.Fatalf("record %d missing", i)
		}
	}
}

// TestGatewayGroupSurvivesLeaderMove moves every partition leader upstream
// while a producer writes through floodgate, then has a consumer group
// (coordinator found through floodgate) read everything exactly once.
//
// The group consumes after the move, not across it: kfake (at the version
// in go.mod) answers OffsetForLeaderEpoch after MoveTopicPartition in a way
// that makes kgo report "lost records" and reset to the start even when
// kgo talks to kfake directly, without floodgate (checked side by side).
func TestGatewayGroupSurvivesLeaderMove(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	prod := client(t, g.srv.KafkaAddr())
	produceN(t, prod, "orders", 0, 300)
	for p := int32(0); p < 6; p++ {
		if err := g.cluster.MoveTopicPartition("orders", p, (p+1)%3); err != nil {
			t.Fatal(err)
		}
	}
	produceN(t, prod, "orders", 300, 300) // follows the new leaders
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumerGroup("gw-group"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[string]int{}
	consumeN(t, cons, 600, seen)
	if len(seen) != 600 {
		t.Fatalf("%d distinct records, want 600", len(seen))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit through floodgate: %v", err)
	}
}

func TestGatewayUpstreamBrokerDownGivesRetriableErrors(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	prod := client(t, g.srv.KafkaAddr())
	produceN(t, prod, "orders", 0, 60)
	if err := g.cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	// Leaders moved off the stopped broker; the client recovers by itself.
	produceN(t, prod, "orders", 60, 60)
	if _, _, err := g.cluster.AddNode(2, 0); err != nil {
		t.Fatal(err)
	}
	produceN(t, prod, "orders", 120, 60)
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	consumeN(t, cons, 180, seen)
}

// TestGatewayRetiresConnectionsToAMovedBroker: node 2 is removed and comes
// back at another address (kfake keeps serving the connections the old
// one accepted, as a broker on its way out may). The producer's upstream
// connection to the old node 2 must take no more requests: it answers
// NOT_LEADER for the partition the new node 2 leads, and before the
// gateway retired it, the producer retried there until its deadline (the
// cause of TestGatewayUpstreamBrokerDownGivesRetriableErrors' rare
// failures).
func TestGatewayRetiresConnectionsToAMovedBroker(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	dialed := &dialLog{}
	prod := client(t, g.srv.KafkaAddr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(dialed))
	produceTo := func(value string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return prod.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: 0, Value: []byte(value)}).FirstErr()
	}
	if err := g.cluster.MoveTopicPartition("orders", 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := produceTo("before"); err != nil { // opens the connection to node 2
		t.Fatal(err)
	}
	if err := g.cluster.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.cluster.AddNode(2, 0); err != nil {
		t.Fatal(err)
	}
	if err := g.cluster.MoveTopicPartition("orders", 0, 2); err != nil {
		t.Fatal(err)
	}
	if err := produceTo("after"); err != nil {
		t.Fatalf("produce to the moved node 2: %v", err)
	}
	// The NOT_LEADER answer names the new leader (KIP-951): at floodgate's
	// listener for node 2, never at the upstream address.
	for _, addr := range dialed.addrs() {
		if slices.Contains(g.cluster.ListenAddrs(), addr) {
			t.Fatalf("the client dialled upstream broker %s, going round the gateway (dialled %v)", addr, dialed.addrs())
		}
	}
	if n := g.set.GetOrCreateCounter("floodgate_gateway_upstream_moves_total").Get(); n != 1 {
		t.Fatalf("floodgate_gateway_upstream_moves_total = %d, want 1", n)
	}
}

// TestGatewayNeverNamesAnUpstreamAddress: a broker joins the cluster when
// --gateway-listen-ports has no port left for it. Clients are told it is
// at floodgate's host, port 0 (unreachable: they treat it as down), never
// at its upstream address, which would let them go round the gateway; the
// brokers it could map keep working.
func TestGatewayNeverNamesAnUpstreamAddress(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	g := testserver.StartGateway(t, cluster.ListenAddrs(), nil, func(c *gateway.Config) { c.PortLast = c.PortFirst + 1 })
	node, _, err := cluster.AddNode(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, g.Server.KafkaAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	upstream := cluster.ListenAddrs()
	var named bool
	for _, b := range resp.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if slices.Contains(upstream, addr) {
			t.Fatalf("broker %d named at its upstream address %s", b.NodeID, addr)
		}
		if b.NodeID == node {
			named = true
			if b.Port != 0 {
				t.Fatalf("unmapped broker %d named at %s, want port 0", node, addr)
			}
		}
	}
	if !named {
		t.Fatalf("broker %d missing from %+v", node, resp.Brokers)
	}
	if n := g.Metrics.GetOrCreateCounter("floodgate_gateway_unmapped_brokers_total").Get(); n == 0 {
		t.Fatal("floodgate_gateway_unmapped_brokers_total did not count it")
	}
	// The two mapped brokers still serve: move both partitions onto them.
	for p := int32(0); p < 2; p++ {
		if err := cluster.MoveTopicPartition("orders", p, p); err != nil {
			t.Fatal(err)
		}
	}
	produceN(t, cl, "orders", 0, 20)
}

// dialLog records the brokers a kgo client dials.
type dialLog struct {
	mu     sync.Mutex
	dialed []string
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (d *dialLog) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, _ error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))))
	d.mu.Unlock()
}

func (d *dialLog) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dialed)
}

func TestGatewayMultiplexesUpstreamConnections(t *testing.T) {
	t.Parallel()
	const clients = 40
	g := startGateway(t, 2, nil)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := client(t, g.srv.KafkaAddr())
			produceN(t, cl, "orders", i*10, 10)
		}(i)
	}
	wg.Wait()
	up := g.set.GetOrCreateGauge("floodgate_gateway_upstream_connections", nil).Get()
	if up > 3*2 {
		t.Fatalf("%v upstream connections for 3 brokers at 2 each", up)
	}
	t.Logf("%d client connections used %v upstream connections", clients, up)
}

func TestGatewayEnforcesLimitsAtTheDoor(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, func(l *limits.Config) { l.MaxRequestSize = 1 << 16 })
	cl := client(t, g.srv.KafkaAddr(), kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := make([]byte, 200<<10)
	_, _ = rand.Read(big) // incompressible
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: big}).FirstErr()
	if err == nil {
		t.Fatal("a 200 KB record passed a 64 KB --max-request-size")
	}
	if g.set.GetOrCreateCounter("floodgate_request_too_large_total").Get() == 0 {
		t.Fatalf("not counted at the gateway: %v", err)
	}
	// Small records still flow.
	produceN(t, cl, "orders", 0, 10)
}

func TestGatewayRESTProduceAndFetch(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	body := `{"records":[{"value":{"n":1}},{"value":{"n":2}},{"value":{"n":3}}]}`
	resp, err := http.Post("http://"+g.srv.HTTPAddr()+"/topics/orders/partitions/4", "application/vnd.kafka.json.v2+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), `"error_code":6`) {
		t.Fatalf("REST produce through the gateway: %d %s", resp.StatusCode, b)
	}
	// A real client reads them from the upstream cluster through floodgate.
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"orders": {4: kgo.NewOffset().AtStart()}}))
	seen := map[string]int{}
	consumeN(t, cons, 3, seen)
	if seen[`{"n":2}`] != 1 {
		t.Fatalf("records: %v", seen)
	}
	// And the REST fetch reads them back.
	resp, err = http.Get("http://" + g.srv.HTTPAddr() + "/topics/orders/partitions/4/records?offset=0&timeout=1000")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "eyJuIjozfQ==") { // base64 of {"n":3}
		t.Fatalf("REST fetch through the gateway: %d %s", resp.StatusCode, b)
	}
}

// TestGatewayGroupFollowsLeaderMoveMidConsumption moves every leader while
// a group is consuming through floodgate. The consumer speaks Kafka 2.0's
// versions (no leader epochs in Fetch), which steps around the kfake
// OffsetForLeaderEpoch behaviour described above; floodgate's part — the
// client following the new leaders through rewritten Metadata, with
// nothing lost or duplicated for the group — is the same.
func TestGatewayGroupFollowsLeaderMoveMidConsumption(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	prod := client(t, g.srv.KafkaAddr())
	produceN(t, prod, "orders", 0, 300)
	cons := client(t, g.srv.KafkaAddr(), kgo.ConsumerGroup("gw-mid"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.MaxVersions(kversion.V2_0_0()))
	seen := map[string]int{}
	consumeN(t, cons, 300, seen)
	for p := int32(0); p < 6; p++ {
		if err := g.cluster.MoveTopicPartition("orders", p, (p+1)%3); err != nil {
			t.Fatal(err)
		}
	}
	produceN(t, prod, "orders", 300, 300)
	consumeN(t, cons, 300, seen)
	if len(seen) != 600 {
		t.Fatalf("%d distinct records, want 600", len(seen))
	}
}

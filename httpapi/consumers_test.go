package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/broker"
	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

const ctV2 = "application/vnd.kafka.v2+json"

// restConsumer drives one REST consumer instance.
type restConsumer struct {
	t    *testing.T
	cl   *http.Client
	base string // the instance's base_uri
}

func newRESTConsumer(t *testing.T, cl *http.Client, srv *testserver.Server, group, body string) *restConsumer {
	t.Helper()
	a := do(t, cl, "POST", "http://"+srv.HTTPAddr()+"/consumers/"+group, ctV2, strings.NewReader(body))
	if a.status != 200 {
		t.Fatalf("create instance: %d %s", a.status, a.body)
	}
	var v struct {
		InstanceID string `json:"instance_id"`
		BaseURI    string `json:"base_uri"`
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil || v.InstanceID == "" ||
		v.BaseURI != "http://"+srv.HTTPAddr()+"/consumers/"+group+"/instances/"+v.InstanceID {
		t.Fatalf("create answer %s: %v", a.body, err)
	}
	return &restConsumer{t: t, cl: cl, base: v.BaseURI}
}

// req sends a request to the instance (path relative to base_uri).
func (rc *restConsumer) req(method, path, body string, hdr ...string) answer {
	rc.t.Helper()
	var r *strings.Reader
	ct := ""
	if body != "" {
		r, ct = strings.NewReader(body), ctV2
	} else {
		r = strings.NewReader("")
	}
	return do(rc.t, rc.cl, method, rc.base+path, ct, r, hdr...)
}

// must sends a request and checks its status.
func (rc *restConsumer) must(status int, method, path, body string, hdr ...string) answer {
	rc.t.Helper()
	a := rc.req(method, path, body, hdr...)
	if a.status != status {
		rc.t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.body, status)
	}
	return a
}

// poll reads records until n came or the deadline passes.
func (rc *restConsumer) poll(n int, accept string, within time.Duration) []fetched {
	rc.t.Helper()
	var out []fetched
	end := time.Now().Add(within)
	for len(out) < n && time.Now().Before(end) {
		a := rc.must(200, "GET", "/records?timeout=500", "", "Accept", accept)
		var recs []fetched
		if err := json.Unmarshal([]byte(a.body), &recs); err != nil {
			rc.t.Fatalf("records %s: %v", a.body, err)
		}
		out = append(out, recs...)
	}
	if len(out) < n {
		rc.t.Fatalf("polled %d records of %d", len(out), n)
	}
	return out
}

func (rc *restConsumer) assignments() []string {
	rc.t.Helper()
	a := rc.must(200, "GET", "/assignments", "")
	var v struct {
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		rc.t.Fatalf("assignments %s: %v", a.body, err)
	}
	var out []string
	for _, p := range v.Partitions {
		out = append(out, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
	}
	return out
}

func produceKgo(t *testing.T, srv *testserver.Server, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func createTopicN(t *testing.T, srv *testserver.Server, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
}

// TestRESTConsumerFlow walks a consumer instance through Confluent's v2
// flow: create, subscribe, poll, commit, read the commit back, seek
// (beginning, offset, end), the format check of Accept, delete.
func TestRESTConsumerFlow(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	cl := client()
	var recs []*kgo.Record
	for i := 0; i < 3; i++ {
		recs = append(recs, &kgo.Record{Topic: "cflow", Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	produceKgo(t, srv, recs...)

	rc := newRESTConsumer(t, cl, srv, "g-flow", `{"name":"c1","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}`)
	// A second instance of the same name in the group is refused.
	if a := do(t, cl, "POST", "http://"+srv.HTTPAddr()+"/consumers/g-flow", ctV2, strings.NewReader(`{"name":"c1"}`)); a.status != 409 || !contains(a.body, `"error_code":40902`) {
		t.Fatalf("duplicate instance: %d %s", a.status, a.body)
	}
	// Polling before subscribing is an illegal state.
	if a := rc.req("GET", "/records", "", "Accept", "application/vnd.kafka.json.v2+json"); a.status != 409 || !contains(a.body, `"error_code":40903`) {
		t.Fatalf("poll without subscription: %d %s", a.status, a.body)
	}
	rc.must(204, "POST", "/subscription", `{"topics":["cflow"]}`)
	if a := rc.must(200, "GET", "/subscription", ""); !contains(a.body, `"topics":["cflow"]`) {
		t.Fatalf("subscription: %s", a.body)
	}
	got := rc.poll(3, "application/vnd.kafka.json.v2+json", 10*time.Second)
	for i, r := range got {
		if r.Topic != "cflow" || r.Offset != int64(i) || string(r.Value) != fmt.Sprintf(`{"n":%d}`, i) || string(r.Key) != fmt.Sprintf(`"k%d"`, i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if as := rc.assignments(); len(as) != 1 || as[0] != "cflow/0" {
		t.Fatalf("assignments %v", as)
	}
	// The binary format does not match a json instance.
	if a := rc.req("GET", "/records", "", "Accept", "application/vnd.kafka.binary.v2+json"); a.status != 406 || !contains(a.body, `"error_code":40601`) {
		t.Fatalf("binary accept on a json instance: %d %s", a.status, a.body)
	}
	// An empty commit commits the positions; GET offsets reads it back.
	rc.must(204, "POST", "/offsets", "")
	if a := rc.must(200, "GET", "/offsets", `{"partitions":[{"topic":"cflow","partition":0}]}`); !contains(a.body, `"offset":3`) {
		t.Fatalf("committed after an empty commit: %s", a.body)
	}
	// An explicit commit names the last record consumed.
	rc.must(204, "POST", "/offsets", `{"offsets":[{"topic":"cflow","partition":0,"offset":0,"metadata":"m1"}]}`)
	if a := rc.must(200, "GET", "/offsets", `{"partitions":[{"topic":"cflow","partition":0}]}`); !contains(a.body, `"offset":1`, `"metadata":"m1"`) {
		t.Fatalf("committed after committing offset 0: %s", a.body)
	}
	rc.must(204, "POST", "/positions/beginning", `{"partitions":[{"topic":"cflow","partition":0}]}`)
	if again := rc.poll(3, "application/vnd.kafka.json.v2+json", 10*time.Second); again[0].Offset != 0 {
		t.Fatalf("after seeking to the beginning: %+v", again)
	}
	rc.must(204, "POST", "/positions", `{"offsets":[{"topic":"cflow","partition":0,"offset":2}]}`)
	if one := rc.poll(1, "*/*", 10*time.Second); len(one) != 1 || one[0].Offset != 2 {
		t.Fatalf("after seeking to offset 2: %+v", one)
	}
	rc.must(204, "POST", "/positions/end", `{"partitions":[{"topic":"cflow","partition":0}]}`)
	if a := rc.must(200, "GET", "/records?timeout=100", ""); strings.TrimSpace(a.body) != "[]" {
		t.Fatalf("after seeking to the end: %s", a.body)
	}
	// Seeking a partition the instance does not hold is refused.
	if a := rc.req("POST", "/positions", `{"offsets":[{"topic":"cflow","partition":5,"offset":0}]}`); a.status != 409 {
		t.Fatalf("seek on an unassigned partition: %d %s", a.status, a.body)
	}
	rc.must(204, "DELETE", "/subscription", "")
	if as := rc.assignments(); len(as) != 0 {
		t.Fatalf("assignments after unsubscribing: %v", as)
	}
	rc.must(204, "DELETE", "", "")
	if a := rc.req("GET", "/assignments", ""); a.status != 404 || !contains(a.body, `"error_code":40403`) {
		t.Fatalf("deleted instance: %d %s", a.status, a.body)
	}
}

// TestRESTConsumerManualAssignmentBinary: an instance with assigned
// partitions (no group membership) reads binary records from the offset
// it commits, and a new instance of the group resumes from that commit.
func TestRESTConsumerManualAssignmentBinary(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	cl := client()
	createTopicN(t, srv, "cman", 2)
	produceKgo(t, srv, &kgo.Record{Topic: "cman", Partition: 1, Value: []byte{0, 1, 2}}, &kgo.Record{Topic: "cman", Partition: 1, Value: []byte{3}})
	// Without auto-commit: deleting the instance would commit its
	// position (2) over the explicit commit.
	rc := newRESTConsumer(t, cl, srv, "g-man", `{"auto.offset.reset":"earliest","auto.commit.enable":"false"}`)
	rc.must(204, "POST", "/assignments", `{"partitions":[{"topic":"cman","partition":1}]}`)
	if a := rc.req("POST", "/subscription", `{"topics":["cman"]}`); a.status != 409 {
		t.Fatalf("subscribing an assigned instance: %d %s", a.status, a.body)
	}
	got := rc.poll(2, "application/vnd.kafka.binary.v2+json", 10*time.Second)
	if string(got[0].Value) != `"AAEC"` || got[0].Partition != 1 || got[1].Offset != 1 {
		t.Fatalf("binary records: %+v", got)
	}
	rc.must(204, "POST", "/offsets", `{"offsets":[{"topic":"cman","partition":1,"offset":0}]}`)
	rc.must(204, "DELETE", "", "")
	next := newRESTConsumer(t, cl, srv, "g-man", `{"auto.offset.reset":"earliest"}`)
	next.must(204, "POST", "/assignments", `{"partitions":[{"topic":"cman","partition":1}]}`)
	if resumed := next.poll(1, "application/vnd.kafka.binary.v2+json", 10*time.Second); resumed[0].Offset != 1 {
		t.Fatalf("resumed at %+v, want offset 1", resumed)
	}
}

// TestRESTAndKgoConsumersShareGroup: a REST instance and a kgo consumer in
// one group split the partitions between them, whichever joined first
// (and so leads and balances with the group's cooperative-sticky
// protocol), each reads only its own partitions, and deleting the REST
// instance hands its partitions to kgo.
func TestRESTAndKgoConsumersShareGroup(t *testing.T) {
	t.Parallel()
	for _, restFirst := range []bool{true, false} {
		name := "kgo leads"
		if restFirst {
			name = "REST leads"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each its own server: the two rebalances wait side by side
			testMixedGroup(t, restFirst)
		})
	}
}

func testMixedGroup(t *testing.T, restFirst bool) {
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	cl := client()
	const topic = "cmixed"
	createTopicN(t, srv, topic, 4)
	var mu sync.Mutex
	kgoOwned := map[int32]bool{}
	startKgo := func() {
		kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumerGroup("g-mixed"), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					kgoOwned[p] = true
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					delete(kgoOwned, p)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		go func() { // kgo joins inside PollFetches
			for !kc.PollFetches(context.Background()).IsClientClosed() {
			}
		}()
	}
	owned := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(kgoOwned)
	}
	if !restFirst {
		startKgo()
		waitFor(t, 10*time.Second, "kgo owns every partition", func() bool { return owned() == 4 })
	}
	rc := newRESTConsumer(t, cl, srv, "g-mixed", `{"name":"rest","format":"binary","auto.offset.reset":"earliest"}`)
	rc.must(204, "POST", "/subscription", `{"topics":["cmixed"]}`)
	if restFirst {
		waitFor(t, 10*time.Second, "the REST instance owns every partition", func() bool { return len(rc.assignments()) == 4 })
		startKgo()
	}
	var restParts []string
	waitFor(t, 20*time.Second, "the partitions split 2 and 2", func() bool {
		restParts = rc.assignments()
		mu.Lock()
		defer mu.Unlock()
		if len(restParts) != 2 || len(kgoOwned) != 2 {
			return false
		}
		for _, p := range restParts {
			var n int32
			fmt.Sscanf(strings.TrimPrefix(p, topic+"/"), "%d", &n)
			if kgoOwned[n] {
				return false
			}
		}
		return true
	})
	var recs []*kgo.Record
	for p := int32(0); p < 4; p++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("p%d", p))})
	}
	produceKgo(t, srv, recs...)
	got := rc.poll(2, "application/vnd.kafka.binary.v2+json", 10*time.Second)
	var seen []string
	for _, r := range got {
		seen = append(seen, fmt.Sprintf("%s/%d", r.Topic, r.Partition))
	}
	sort.Strings(seen)
	sort.Strings(restParts)
	if strings.Join(seen, ",") != strings.Join(restParts, ",") {
		t.Fatalf("the REST instance read %v, owns %v", seen, restParts)
	}
	rc.must(204, "DELETE", "", "")
	waitFor(t, 20*time.Second, "kgo owns every partition", func() bool { return owned() == 4 })
}

// TestRESTConsumerInstanceExpires: an instance idle past
// --rest-consumer-instance-timeout is deleted, leaves its group (the
// group ends up empty) and is counted.
func TestRESTConsumerInstanceExpires(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.RESTConsumerTimeout = 300 * time.Millisecond })
	cl := client()
	createTopicN(t, srv, "cexp", 1)
	rc := newRESTConsumer(t, cl, srv, "g-exp", `{"auto.offset.reset":"earliest"}`)
	rc.must(204, "POST", "/subscription", `{"topics":["cexp"]}`)
	rc.must(200, "GET", "/records?timeout=100", "")
	// Any request to the instance would keep it alive: watch the gauge.
	instances := srv.Metrics.GetOrCreateGauge("floodgate_rest_consumer_instances", nil)
	waitFor(t, 5*time.Second, "the instance is gone", func() bool { return instances.Get() == 0 })
	if a := rc.req("GET", "/assignments", ""); a.status != 404 || !contains(a.body, `"error_code":40403`) {
		t.Fatalf("expired instance: %d %s", a.status, a.body)
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	waitFor(t, 5*time.Second, "the group has no members", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := kadm.NewClient(adm).DescribeGroups(ctx, "g-exp")
		return err == nil && len(gs["g-exp"].Members) == 0
	})
	if n := srv.Metrics.GetOrCreateCounter("floodgate_rest_consumer_instances_expired_total").Get(); n != 1 {
		t.Fatalf("expired_total = %d, want 1", n)
	}
}

// TestRESTConsumerInstanceLimits: creating instances past the total and
// the per-client limit is refused 429 with the limit named, and deleting
// one frees its slot.
func TestRESTConsumerInstanceLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		total, perIP  int
		limit         string
		configuredMax int64
	}{
		{"total", 2, 0, "max-rest-consumer-instances", 2},
		{"per client IP", 10, 2, "max-rest-consumer-instances-per-client", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startHTTP(t, func(c *limits.HTTPConfig) {
				c.MaxRESTConsumers, c.MaxRESTConsumersPerClient = tt.total, tt.perIP
			})
			cl := client()
			url := "http://" + srv.HTTPAddr() + "/consumers/g-lim"
			var first *restConsumer
			for i := 0; i < 2; i++ {
				rc := newRESTConsumer(t, cl, srv, "g-lim", "{}")
				if first == nil {
					first = rc
				}
			}
			a := do(t, cl, "POST", url, ctV2, strings.NewReader("{}"))
			if a.status != 429 || a.header.Get("Retry-After") == "" || !contains(a.body, `"error_code":42901`) {
				t.Fatalf("third instance: %d %v %s", a.status, a.header, a.body)
			}
			if lim, conf, _ := limitBody(t, a.body); lim != tt.limit || conf != tt.configuredMax {
				t.Fatalf("refusal names %s=%d, want %s=%d", lim, conf, tt.limit, tt.configuredMax)
			}
			metric := `floodgate_http_limit_tripped_total{limit="` + tt.limit + `"}`
			if n := srv.Metrics.GetOrCreateCounter(metric).Get(); n != 1 {
				t.Fatalf("%s = %d", metric, n)
			}
			first.must(204, "DELETE", "", "")
			newRESTConsumer(t, cl, srv, "g-lim", "{}")
		})
	}
}

// TestRESTConsumerBufferedBytesLimit: a poll whose fetched batches would
// take the instances past --max-rest-consumer-buffered-bytes is refused
// 429 naming the limit, and what it held is given back.
func TestRESTConsumerBufferedBytesLimit(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.MaxRESTConsumerBuffered = 1024 })
	cl := client()
	produceKgo(t, srv, &kgo.Record{Topic: "cbuf", Value: []byte(strings.Repeat("x", 4096))})
	rc := newRESTConsumer(t, cl, srv, "g-buf", `{"auto.offset.reset":"earliest"}`)
	rc.must(204, "POST", "/subscription", `{"topics":["cbuf"]}`)
	var a answer
	waitFor(t, 10*time.Second, "a refused poll", func() bool {
		a = rc.req("GET", "/records?timeout=200", "")
		return a.status != 200 || strings.TrimSpace(a.body) != "[]"
	})
	if a.status != 429 || !contains(a.body, `"limit":"max-rest-consumer-buffered-bytes"`, `"error_code":42901`) {
		t.Fatalf("poll over the buffered-bytes limit: %d %.200s", a.status, a.body)
	}
	if n := srv.Metrics.GetOrCreateGauge("floodgate_rest_consumer_buffered_bytes", nil).Get(); n != 0 {
		t.Fatalf("buffered bytes after the refusal: %v", n)
	}
}

// TestRESTConsumerPollHoldsNoWorker: with one pool worker, a GET
// .../records waiting for records does not delay another request.
func TestRESTConsumerPollHoldsNoWorker(t *testing.T) {
	srv := startHTTP(t, func(*limits.HTTPConfig) {}, testserver.WithWorkers(1),
		testserver.WithBroker(func(c *broker.Config) { c.DefaultPartitions = 1 }))
	cl := client()
	createTopicN(t, srv, "cwait", 1)
	rc := newRESTConsumer(t, cl, srv, "g-wait", "{}")
	rc.must(204, "POST", "/subscription", `{"topics":["cwait"]}`)
	rc.must(200, "GET", "/records?timeout=10", "") // joined
	done := make(chan answer, 1)
	go func() { done <- rc.req("GET", "/records?timeout=3000", "") }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if a := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/topics", "", nil); a.status != 200 {
		t.Fatalf("topics: %d %s", a.status, a.body)
	}
	took := time.Since(start)
	if took > time.Second {
		t.Fatalf("GET /topics took %v while a poll waited", took)
	}
	t.Logf("GET /topics answered in %v while a 3 s poll waited, with one pool worker", took)
	if a := <-done; a.status != 200 {
		t.Fatalf("poll: %d %s", a.status, a.body)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRESTConsumerInstancesReleaseEverything: what instances hold (a
// goroutine each, their group membership) is released when they are
// deleted and when they expire: the goroutine count returns to where it
// was, and the instances gauge to 0. It logs what one joined instance
// costs in heap.
func TestRESTConsumerInstancesReleaseEverything(t *testing.T) {
	for _, expire := range []bool{false, true} {
		name := "delete"
		if expire {
			name = "expire"
		}
		t.Run(name, func(t *testing.T) {
			timeout := time.Minute
			if expire {
				timeout = 500 * time.Millisecond
			}
			srv := startHTTP(t, func(c *limits.HTTPConfig) { c.RESTConsumerTimeout, c.MaxRESTConsumersPerClient = timeout, 0 })
			cl := client()
			createTopicN(t, srv, "crel", 1)
			do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/health", "", nil) // the client's connection exists before the baseline
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			base := runtime.NumGoroutine()
			const n = 100
			var all []*restConsumer
			for i := 0; i < n; i++ {
				rc := newRESTConsumer(t, cl, srv, fmt.Sprintf("g-rel-%d", i), "{}")
				rc.must(204, "POST", "/subscription", `{"topics":["crel"]}`)
				if !expire {
					rc.must(200, "GET", "/records?timeout=0", "")
				}
				all = append(all, rc)
			}
			runtime.GC()
			var held runtime.MemStats
			runtime.ReadMemStats(&held)
			t.Logf("%d instances: %d goroutines more, heap +%d bytes per instance", n, runtime.NumGoroutine()-base,
				(int64(held.HeapAlloc)-int64(before.HeapAlloc))/n)
			if !expire {
				for _, rc := range all {
					rc.must(204, "DELETE", "", "")
				}
			}
			gauge := srv.Metrics.GetOrCreateGauge("floodgate_rest_consumer_instances", nil)
			waitFor(t, 10*time.Second, "every instance is gone", func() bool { return gauge.Get() == 0 })
			waitFor(t, 10*time.Second, "the goroutines are back to the baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
		})
	}
}

// TestNewRESTRoutesPassTheGate: the consumer, v3 and broker routes are
// admitted like every route: over --max-requests-per-second-per-client
// they get 429 naming the limit, before any instance is created.
func TestNewRESTRoutesPassTheGate(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.RPSPerClient = 1 }) // burst 10
	cl := client()
	base := "http://" + srv.HTTPAddr()
	paths := []struct{ method, path, body string }{
		{"POST", "/consumers/g-gate", "{}"},
		{"GET", "/v3/clusters", ""},
		{"GET", "/brokers", ""},
	}
	refused := 0
	for i := 0; i < 30; i++ {
		p := paths[i%len(paths)]
		a := do(t, cl, p.method, base+p.path, ctV2, strings.NewReader(p.body))
		if a.status == 429 {
			if lim, _, _ := limitBody(t, a.body); lim != "max-requests-per-second-per-client" || !contains(a.body, `"error_code":429`) {
				t.Fatalf("refusal %s", a.body)
			}
			refused++
		}
	}
	if refused < 15 {
		t.Fatalf("%d of 30 requests refused at 1 rps with a burst of 10", refused)
	}
	if n := srv.Metrics.GetOrCreateCounter("floodgate_rest_consumer_instances_created_total").Get(); n > 10 {
		t.Fatalf("%d instances created past the rate limit", n)
	}
}

// panicOnHeartbeat is a Kafka handler whose Heartbeat panics (a bug in a
// handler, or an answer nobody expected), to check that a consumer
// instance's heartbeat goroutine survives it.
type panicOnHeartbeat struct{ loop.KafkaHandler }

func (p panicOnHeartbeat) ServeKafka(req kmsg.Request, clientID, addr string, respond func(kmsg.Response)) {
	if req.Key() == 12 {
		panic("heartbeat bug")
	}
	p.KafkaHandler.ServeKafka(req, clientID, addr, respond)
}

// TestRESTConsumerHeartbeatPanicIsRecovered: a panic during an instance's
// background heartbeat is counted (floodgate_http_handler_panics_total)
// and the server keeps serving; it used to end the process, since the
// instance's goroutine had no recovery.
func TestRESTConsumerHeartbeatPanicIsRecovered(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {}, testserver.WithKafkaHandler(func(b *broker.Broker) loop.KafkaHandler {
		return panicOnHeartbeat{b}
	}))
	cl := client()
	produceKgo(t, srv, &kgo.Record{Topic: "hbpanic", Value: []byte(`{"n":1}`)})
	rc := newRESTConsumer(t, cl, srv, "g-hbpanic", `{"name":"c1","format":"json","auto.offset.reset":"earliest"}`)
	rc.must(204, "POST", "/subscription", `{"topics":["hbpanic"]}`)
	rc.poll(1, "application/vnd.kafka.json.v2+json", 10*time.Second) // joined: heartbeats are due from now
	panics := srv.Metrics.GetOrCreateCounter("floodgate_http_handler_panics_total")
	waitFor(t, 15*time.Second, "a heartbeat panic counted", func() bool { return panics.Get() > 0 })
	if a := do(t, cl, "GET", "http://"+srv.HTTPAddr()+"/health", "", nil); a.status != 200 {
		t.Fatalf("/health after the panic: %d %s", a.status, a.body)
	}
}

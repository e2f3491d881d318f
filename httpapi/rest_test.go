package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

type offsetsAnswer struct {
	Offsets []struct {
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		ErrorCode *int    `json:"error_code"`
		Error     *string `json:"error"`
	} `json:"offsets"`
}

type fetched struct {
	Topic     string          `json:"topic"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
}

// consume reads n records of topic with franz-go.
func consume(t *testing.T, srv *testserver.Server, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// TestRESTProduceThenKafkaConsume: records produced over HTTP (json and
// binary formats, with and without keys, to a topic and to a partition)
// are read back by a Kafka client.
func TestRESTProduceThenKafkaConsume(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	cl := client()
	base := "http://" + srv.HTTPAddr()
	a := do(t, cl, "POST", base+"/topics/rest-in", "application/vnd.kafka.json.v2+json",
		strings.NewReader(`{"records":[{"key":"k1","value":{"n":1}},{"value":[1,2,3]},{"key":null,"value":"three"}]}`))
	if a.status != 200 {
		t.Fatalf("json produce: %d %s", a.status, a.body)
	}
	var oa offsetsAnswer
	if err := json.Unmarshal([]byte(a.body), &oa); err != nil || len(oa.Offsets) != 3 {
		t.Fatalf("answer %s: %v", a.body, err)
	}
	for i, o := range oa.Offsets {
		if o.Offset != int64(i) || o.ErrorCode != nil || o.Error != nil || o.Partition != 0 {
			t.Fatalf("offset %d: %+v", i, o)
		}
	}
	bin := fmt.Sprintf(`{"records":[{"key":%q,"value":%q}]}`,
		base64.StdEncoding.EncodeToString([]byte("bk")), base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}))
	a = do(t, cl, "POST", base+"/topics/rest-in/partitions/0", "application/vnd.kafka.binary.v2+json", strings.NewReader(bin))
	if a.status != 200 || !strings.Contains(a.body, `"offset":3`) {
		t.Fatalf("binary produce: %d %s", a.status, a.body)
	}
	recs := consume(t, srv, "rest-in", 4)
	want := []struct{ key, value string }{{`"k1"`, `{"n":1}`}, {"", `[1,2,3]`}, {"", `"three"`}, {"bk", "\x00\x01\x02\xff"}}
	for i, w := range want {
		if string(recs[i].Key) != w.key || string(recs[i].Value) != w.value || recs[i].Offset != int64(i) {
			t.Fatalf("record %d: key %q value %q offset %d, want %q %q", i, recs[i].Key, recs[i].Value, recs[i].Offset, w.key, w.value)
		}
	}
	if recs[1].Key != nil {
		t.Fatalf("null key came back as %q", recs[1].Key)
	}
}

// TestKafkaProduceThenRESTFetch: records produced by franz-go (snappy by
// default, then gzip, lz4 and zstd) are read over HTTP.
func TestKafkaProduceThenRESTFetch(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	codecs := []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.GzipCompression(), kgo.Lz4Compression(), kgo.ZstdCompression(), kgo.NoCompression()}
	for i, codec := range codecs {
		kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("kafka-in"), kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var rs []*kgo.Record
		for j := 0; j < 3; j++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%d-%d", i, j)),
				Value: []byte(strings.Repeat(fmt.Sprintf("value-%d-%d ", i, j), 20)), Partition: 0})
		}
		if err := kc.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		cancel()
		kc.Close()
	}
	base := "http://" + srv.HTTPAddr()
	a := do(t, client(), "GET", base+"/topics/kafka-in/partitions/0/records?offset=0&max_bytes=1000000", "", nil)
	if a.status != 200 || a.header.Get("Content-Type") != "application/vnd.kafka.binary.v2+json" {
		t.Fatalf("fetch: %d %s", a.status, a.body)
	}
	var got []fetched
	if err := json.Unmarshal([]byte(a.body), &got); err != nil {
		t.Fatal(err)
	}
	// One fetch may stop at max_bytes; read on until every record is there.
	for len(got) < 3*len(codecs) {
		next := got[len(got)-1].Offset + 1
		a = do(t, client(), "GET", fmt.Sprintf("%s/topics/kafka-in/partitions/0/records?offset=%d", base, next), "", nil)
		var more []fetched
		if err := json.Unmarshal([]byte(a.body), &more); err != nil || len(more) == 0 {
			t.Fatalf("fetch from %d: %s", next, a.body)
		}
		got = append(got, more...)
	}
	for n, f := range got {
		i, j := n/3, n%3
		var k, v string
		_ = json.Unmarshal(f.Key, &k)
		_ = json.Unmarshal(f.Value, &v)
		kb, _ := base64.StdEncoding.DecodeString(k)
		vb, _ := base64.StdEncoding.DecodeString(v)
		if string(kb) != fmt.Sprintf("key-%d-%d", i, j) || string(vb) != strings.Repeat(fmt.Sprintf("value-%d-%d ", i, j), 20) ||
			f.Offset != int64(n) || f.Topic != "kafka-in" {
			t.Fatalf("record %d: %+v", n, f)
		}
	}
	// A later offset returns only what follows it, the json format as text.
	a = do(t, client(), "GET", base+"/topics/kafka-in/partitions/0/records?offset=14", "", nil, "Accept", "application/vnd.kafka.json.v2+json")
	if a.status != 200 || !strings.Contains(a.body, `"key":"key-4-2"`) || strings.Contains(a.body, "key-4-1") {
		t.Fatalf("json fetch: %d %s", a.status, a.body)
	}
}

// TestRESTTopicsAndErrors covers GET /topics, GET /topics/{topic},
// offsets, and the REST errors.
func TestRESTTopicsAndErrors(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	cl := client()
	base := "http://" + srv.HTTPAddr()
	for _, tp := range []string{"b-topic", "a-topic"} {
		if a := do(t, cl, "POST", base+"/topics/"+tp, "application/vnd.kafka.json.v2+json", strings.NewReader(`{"records":[{"value":1},{"value":2}]}`)); a.status != 200 {
			t.Fatalf("produce: %d %s", a.status, a.body)
		}
	}
	tests := []struct {
		method, path, ct, body string
		status                 int
		contains               string
	}{
		{"GET", "/topics", "", "", 200, `["a-topic","b-topic"]`},
		{"GET", "/topics/a-topic", "", "", 200, `"name":"a-topic"`},
		{"GET", "/topics/a-topic", "", "", 200, `"replicas":[{"broker":`},
		{"GET", "/topics/nope", "", "", 404, `"error_code":40401`},
		{"GET", "/topics/a-topic/partitions/0/offsets", "", "", 200, `{"beginning_offset":0,"end_offset":2}`},
		{"GET", "/topics/a-topic/partitions/7/records", "", "", 404, `"error_code":40402`},
		{"GET", "/topics/a-topic/partitions/0/records?offset=x", "", "", 400, "offset"},
		{"POST", "/topics/a-topic", "text/plain", `{}`, 415, "Content-Type"},
		{"POST", "/topics/a-topic", "application/vnd.kafka.json.v2+json", `{"records":`, 422, "malformed"},
		{"POST", "/topics/a-topic", "application/vnd.kafka.binary.v2+json", `{"records":[{"value":"!!"}]}`, 422, "base64"},
		{"POST", "/topics/a-topic/partitions/9", "application/vnd.kafka.json.v2+json", `{"records":[{"value":1}]}`, 404, "40402"},
		{"DELETE", "/topics", "", "", 405, "method"},
		{"GET", "/topics/bad%20name", "", "", 404, "invalid topic"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			a := do(t, cl, tt.method, base+tt.path, tt.ct, strings.NewReader(tt.body))
			if a.status != tt.status || !strings.Contains(a.body, tt.contains) {
				t.Fatalf("%d %s, want %d containing %q", a.status, a.body, tt.status, tt.contains)
			}
		})
	}
	m := do(t, cl, "GET", base+"/metrics", "", nil).body
	for _, s := range []string{`floodgate_http_requests_total{route="topics",code="200"}`, `floodgate_http_requests_total{route="topic",code="404"}`,
		"floodgate_header_size_exceeded_total 0", "floodgate_requests_in_flight", `floodgate_rate_limit_exceeded_total{scope="client"} 0`} {
		if !strings.Contains(m, s) {
			t.Fatalf("metrics lack %s", s)
		}
	}
}

// TestV2RoutesRefuseOtherMethodsNamingWhatTheyAllow pins each v2 route's
// methods: a route that takes records allows POST, the others GET and HEAD
// only, and a 405 names them in Allow.
func TestV2RoutesRefuseOtherMethodsNamingWhatTheyAllow(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	cl := client()
	base := "http://" + srv.HTTPAddr()
	if a := do(t, cl, "POST", base+"/topics/m", "application/vnd.kafka.json.v2+json", strings.NewReader(`{"records":[{"value":1}]}`)); a.status != 200 {
		t.Fatalf("produce: %d %s", a.status, a.body)
	}
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/brokers", 200, ""},
		{"POST", "/brokers", 405, "GET, HEAD"},
		{"PUT", "/topics", 405, "GET, HEAD"},
		{"HEAD", "/topics/m", 200, ""},
		{"DELETE", "/topics/m", 405, "GET, HEAD, POST"},
		{"POST", "/topics/m/partitions", 405, "GET, HEAD"},
		{"GET", "/topics/m/partitions/0", 200, ""},
		{"PUT", "/topics/m/partitions/0", 405, "GET, HEAD, POST"},
		{"POST", "/topics/m/partitions/0/records", 405, "GET, HEAD"},
		{"DELETE", "/topics/m/partitions/0/offsets", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			a := do(t, cl, tt.method, base+tt.path, "", nil)
			if a.status != tt.status || a.header.Get("Allow") != tt.allow {
				t.Fatalf("%d Allow %q %s, want %d Allow %q", a.status, a.header.Get("Allow"), a.body, tt.status, tt.allow)
			}
		})
	}
}

// TestCurlProduce produces with the curl command line when curl is
// installed, then consumes with franz-go.
func TestCurlProduce(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	srv := startHTTP(t, func(c *limits.HTTPConfig) {})
	out, err := exec.Command(curl, "-sS", "-X", "POST", "-H", "Content-Type: application/vnd.kafka.json.v2+json",
		"--data", `{"records":[{"key":"a","value":{"x":1}},{"key":"b","value":{"x":2}}]}`,
		"http://"+srv.HTTPAddr()+"/topics/curl").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"offset":1`) {
		t.Fatalf("curl: %v %s", err, out)
	}
	recs := consume(t, srv, "curl", 2)
	if string(recs[0].Value) != `{"x":1}` || string(recs[1].Key) != `"b"` {
		t.Fatalf("records %q %q", recs[0].Value, recs[1].Key)
	}
}

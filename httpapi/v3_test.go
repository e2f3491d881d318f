package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/limits"
)

type v3Answer struct {
	ErrorCode   int    `json:"error_code"`
	Message     string `json:"message"`
	ClusterID   string `json:"cluster_id"`
	TopicName   string `json:"topic_name"`
	PartitionID int32  `json:"partition_id"`
	Offset      int64  `json:"offset"`
	Key         *struct {
		Type string `json:"type"`
		Size int    `json:"size"`
	} `json:"key"`
}

// v3Lines decodes a records answer: one object per line.
func v3Lines(t *testing.T, body string) []v3Answer {
	t.Helper()
	var out []v3Answer
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		var a v3Answer
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("records answer line %q: %v", l, err)
		}
		out = append(out, a)
	}
	return out
}

// TestV3TopicsAndRecords: the v3 cluster, topic (create, list, get,
// delete) and records routes, one record with headers and the streamed
// form with a bad record among good ones; a kgo consumer reads the
// headers back.
func TestV3TopicsAndRecords(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	cl := client()
	base := "http://" + srv.HTTPAddr() + "/v3/clusters"
	a := do(t, cl, "GET", base, "", nil)
	var clusters struct {
		Kind string `json:"kind"`
		Data []struct {
			ClusterID string `json:"cluster_id"`
			Topics    struct {
				Related string `json:"related"`
			} `json:"topics"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(a.body), &clusters); err != nil || a.status != 200 || clusters.Kind != "KafkaClusterList" || len(clusters.Data) != 1 {
		t.Fatalf("clusters: %d %s (%v)", a.status, a.body, err)
	}
	id := clusters.Data[0].ClusterID
	topics := base + "/" + id + "/topics"
	if clusters.Data[0].Topics.Related != topics {
		t.Fatalf("topics link %q, want %q", clusters.Data[0].Topics.Related, topics)
	}
	if a := do(t, cl, "GET", base+"/no-such-cluster/topics", "", nil); a.status != 404 || !contains(a.body, `"error_code":404`) {
		t.Fatalf("unknown cluster: %d %s", a.status, a.body)
	}

	a = do(t, cl, "POST", topics, "application/json", strings.NewReader(`{"topic_name":"v3t","partitions_count":3,"replication_factor":1,"configs":[{"name":"retention.ms","value":"60000"}]}`))
	if a.status != 201 || !contains(a.body, `"topic_name":"v3t"`, `"partitions_count":3`, `"kind":"KafkaTopic"`) {
		t.Fatalf("create topic: %d %s", a.status, a.body)
	}
	if a := do(t, cl, "POST", topics, "application/json", strings.NewReader(`{"topic_name":"v3t","partitions_count":3}`)); a.status != 400 || !contains(a.body, `"error_code":400`, "already exists") {
		t.Fatalf("create an existing topic: %d %s", a.status, a.body)
	}
	if a := do(t, cl, "GET", topics, "", nil); a.status != 200 || !contains(a.body, `"kind":"KafkaTopicList"`, `"topic_name":"v3t"`) {
		t.Fatalf("list topics: %d %s", a.status, a.body)
	}
	if a := do(t, cl, "GET", topics+"/v3t", "", nil); a.status != 200 || !contains(a.body, `"partitions_count":3`) {
		t.Fatalf("get topic: %d %s", a.status, a.body)
	}

	// One record, with headers, a STRING key and a JSON value.
	hv := base64.StdEncoding.EncodeToString([]byte("trace-1"))
	a = do(t, cl, "POST", topics+"/v3t/records", "application/json", strings.NewReader(
		`{"partition_id":2,"headers":[{"name":"trace","value":"`+hv+`"},{"name":"empty","value":null}],"key":{"type":"STRING","data":"k"},"value":{"type":"JSON","data":{"x":1}}}`))
	one := v3Lines(t, a.body)
	if a.status != 200 || len(one) != 1 || one[0].ErrorCode != 200 || one[0].PartitionID != 2 || one[0].Offset != 0 ||
		one[0].ClusterID != id || one[0].Key == nil || one[0].Key.Type != "STRING" || one[0].Key.Size != 1 {
		t.Fatalf("one record: %d %s", a.status, a.body)
	}
	// The streamed form: one answer per record, in order; the bad one
	// (not base64) fails alone.
	a = do(t, cl, "POST", topics+"/v3t/records", "application/json", strings.NewReader(
		`{"partition_id":2,"value":{"type":"BINARY","data":"`+base64.StdEncoding.EncodeToString([]byte{0, 1})+`"}}
{"partition_id":2,"value":{"type":"BINARY","data":"%%%"}}
{"partition_id":2,"value":{"data":"plain json"}}`))
	lines := v3Lines(t, a.body)
	if a.status != 200 || len(lines) != 3 || lines[0].ErrorCode != 200 || lines[0].Offset != 1 ||
		lines[1].ErrorCode != 400 || lines[2].ErrorCode != 200 || lines[2].Offset != 2 {
		t.Fatalf("streamed records: %d %s", a.status, a.body)
	}
	// A single bad record answers with its own status.
	if a := do(t, cl, "POST", topics+"/v3t/records", "application/json", strings.NewReader(`{"partition_id":9,"value":{"data":1}}`)); a.status != 404 || !contains(a.body, `"error_code":404`) {
		t.Fatalf("record to a missing partition: %d %s", a.status, a.body)
	}

	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"v3t": {2: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 3 && ctx.Err() == nil {
		kc.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	if len(recs) != 3 {
		t.Fatalf("kgo read %d records", len(recs))
	}
	r := recs[0]
	if string(r.Key) != "k" || string(r.Value) != `{"x":1}` || len(r.Headers) != 2 ||
		r.Headers[0].Key != "trace" || string(r.Headers[0].Value) != "trace-1" || r.Headers[1].Key != "empty" || r.Headers[1].Value != nil {
		t.Fatalf("first record: key %q value %q headers %+v", r.Key, r.Value, r.Headers)
	}
	if string(recs[1].Value) != "\x00\x01" || string(recs[2].Value) != `"plain json"` {
		t.Fatalf("streamed values %q %q", recs[1].Value, recs[2].Value)
	}

	if a := do(t, cl, "DELETE", topics+"/v3t", "", nil); a.status != 204 {
		t.Fatalf("delete topic: %d %s", a.status, a.body)
	}
	if a := do(t, cl, "DELETE", topics+"/v3t", "", nil); a.status != 404 || !contains(a.body, `"error_code":404`) {
		t.Fatalf("delete a deleted topic: %d %s", a.status, a.body)
	}
}

// TestV2PartitionsBrokersAndErrorShape: GET /topics/{t}/partitions[/{p}]
// and /brokers, 406 for an Accept no route answers with, and every error
// in Confluent's {"error_code","message"} shape.
func TestV2PartitionsBrokersAndErrorShape(t *testing.T) {
	t.Parallel()
	srv := startHTTP(t, func(*limits.HTTPConfig) {})
	cl := client()
	base := "http://" + srv.HTTPAddr()
	createTopicN(t, srv, "v2p", 2)
	a := do(t, cl, "GET", base+"/topics/v2p/partitions", "", nil)
	var parts []struct {
		Partition int32 `json:"partition"`
		Leader    int32 `json:"leader"`
		Replicas  []struct {
			Broker int32 `json:"broker"`
			Leader bool  `json:"leader"`
			InSync bool  `json:"in_sync"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(a.body), &parts); err != nil || a.status != 200 || len(parts) != 2 || parts[1].Partition != 1 ||
		len(parts[0].Replicas) != 1 || !parts[0].Replicas[0].Leader || !parts[0].Replicas[0].InSync {
		t.Fatalf("partitions: %d %s (%v)", a.status, a.body, err)
	}
	if a := do(t, cl, "GET", base+"/topics/v2p/partitions/1", "", nil); a.status != 200 || !contains(a.body, `"partition":1`) {
		t.Fatalf("partition 1: %d %s", a.status, a.body)
	}
	if a := do(t, cl, "GET", base+"/brokers", "", nil, "Accept", "application/vnd.kafka.v2+json"); a.status != 200 || !contains(a.body, `{"brokers":[`) {
		t.Fatalf("brokers: %d %s", a.status, a.body)
	}
	tests := []struct {
		name, method, path, accept string
		status, code               int
	}{
		{"missing partition", "GET", "/topics/v2p/partitions/7", "", 404, 40402},
		{"missing topic", "GET", "/topics/nope-v2p/partitions", "", 404, 40401},
		{"unknown route", "GET", "/nowhere", "", 404, 404},
		{"wrong method", "PUT", "/topics", "", 405, 405},
		{"accept xml", "GET", "/topics", "application/xml", 406, 406},
		{"accept text on v3", "GET", "/v3/clusters", "text/html", 406, 406},
		{"missing instance", "GET", "/consumers/g/instances/nobody/assignments", "", 404, 40403},
		{"bad consumer route", "GET", "/consumers/g/nope", "", 404, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.accept != "" {
				hdr = []string{"Accept", tt.accept}
			}
			a := do(t, cl, tt.method, base+tt.path, "", nil, hdr...)
			var e struct {
				ErrorCode int    `json:"error_code"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || a.status != tt.status || e.ErrorCode != tt.code || e.Message == "" {
				t.Fatalf("%s %s: %d %s, want %d with error_code %d", tt.method, tt.path, a.status, a.body, tt.status, tt.code)
			}
		})
	}
	// Wildcards and a listed type among others are acceptable.
	for _, accept := range []string{"*/*", "application/*", "text/html, application/json;q=0.9"} {
		if a := do(t, cl, "GET", base+"/topics", "", nil, "Accept", accept); a.status != 200 {
			t.Fatalf("Accept %q: %d %s", accept, a.status, a.body)
		}
	}
}

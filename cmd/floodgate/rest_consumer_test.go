package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// restStep is one curl-like request of the README's consumer example and
// what its answer must hold.
type restStep struct {
	method, path, body, accept string
	status                     int
	want                       []string
}

// TestRESTConsumerFlowInTheBinary runs the README's consumer instance
// example against the binary (produce, create, subscribe, poll, commit,
// read the commit, seek, unsubscribe, assign, delete, the v2 partition and
// broker routes), then an instance that expires after
// --rest-consumer-instance-timeout.
func TestRESTConsumerFlowInTheBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	p := startFloodgate(t, 4096, "--in-memory", "--rest-consumer-instance-timeout", "1s")
	const (
		v2   = "application/vnd.kafka.v2+json"
		json = "application/vnd.kafka.json.v2+json"
		inst = "/consumers/my-group/instances/c1"
	)
	steps := []restStep{
		{"POST", "/topics/events", `{"records":[{"key":"user-1","value":{"clicks":3}},{"value":[1,2,3]}]}`, "", 200, []string{`"offset":1`}},
		{"POST", "/consumers/my-group", `{"name":"c1","format":"json","auto.offset.reset":"earliest","auto.commit.enable":"false"}`, "", 200,
			[]string{`"instance_id":"c1"`, `"base_uri":"http://` + p.http + inst + `"`}},
		{"POST", inst + "/subscription", `{"topics":["events"]}`, "", 204, nil},
		{"GET", inst + "/subscription", "", "", 200, []string{`{"topics":["events"]}`}},
		{"GET", inst + "/records?timeout=3000", "", json, 200,
			[]string{`{"topic":"events","key":"user-1","value":{"clicks":3},"partition":0,"offset":0}`, `"offset":1`}},
		{"GET", inst + "/assignments", "", "", 200, []string{`{"partitions":[{"topic":"events","partition":0}]}`}},
		{"POST", inst + "/offsets", `{"offsets":[{"topic":"events","partition":0,"offset":0}]}`, "", 204, nil},
		{"GET", inst + "/offsets", `{"partitions":[{"topic":"events","partition":0}]}`, "", 200, []string{`"offset":1`}},
		{"POST", inst + "/positions/beginning", `{"partitions":[{"topic":"events","partition":0}]}`, "", 204, nil},
		{"GET", inst + "/records?timeout=3000", "", json, 200, []string{`"offset":0`}},
		{"POST", inst + "/positions", `{"offsets":[{"topic":"events","partition":0,"offset":1}]}`, "", 204, nil},
		{"GET", inst + "/records?timeout=3000", "", "application/vnd.kafka.binary.v2+json", 406, []string{`"error_code":40601`}},
		{"DELETE", inst + "/subscription", "", "", 204, nil},
		{"POST", inst + "/assignments", `{"partitions":[{"topic":"events","partition":0}]}`, "", 204, nil},
		{"GET", inst + "/records?timeout=3000", "", json, 200, []string{`"offset":1`}},
		{"DELETE", inst, "", "", 204, nil},
		{"GET", inst + "/assignments", "", "", 404, []string{`"error_code":40403`}},
		{"GET", "/topics/events/partitions", "", "", 200, []string{`"partition":0`, `"in_sync":true`}},
		{"GET", "/brokers", "", "", 200, []string{`{"brokers":[`}},
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	run := func(s restStep) string {
		t.Helper()
		req, err := http.NewRequest(s.method, "http://"+p.http+s.path, strings.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		if s.body != "" {
			req.Header.Set("Content-Type", v2)
			if strings.HasPrefix(s.path, "/topics/") {
				req.Header.Set("Content-Type", json)
			}
		}
		if s.accept != "" {
			req.Header.Set("Accept", s.accept)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", s.method, s.path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != s.status {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, resp.StatusCode, b, s.status)
		}
		for _, w := range s.want {
			if !strings.Contains(string(b), w) {
				t.Fatalf("%s %s: %s lacks %s", s.method, s.path, b, w)
			}
		}
		return string(b)
	}
	for _, s := range steps {
		run(s)
	}
	// An instance left alone expires after the timeout (1 s here).
	run(restStep{"POST", "/consumers/my-group", `{"name":"idle"}`, "", 200, nil})
	time.Sleep(2500 * time.Millisecond)
	run(restStep{"GET", "/consumers/my-group/instances/idle/assignments", "", "", 404, []string{`"error_code":40403`}})
	if v := metricValue(t, p.http, "floodgate_rest_consumer_instances_expired_total"); v != 1 {
		t.Fatalf("floodgate_rest_consumer_instances_expired_total = %v, want 1", v)
	}
}

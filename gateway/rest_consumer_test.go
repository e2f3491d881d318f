package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// restDo sends one v2 request through the gateway's HTTP listener.
func restDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/vnd.kafka.v2+json")
	}
	req.Header.Set("Accept", "application/vnd.kafka.binary.v2+json, application/vnd.kafka.v2+json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGatewayRESTConsumerInstanceReadsEveryPartition: a REST consumer
// instance in gateway mode is a member of a group on the upstream
// cluster (three kfake brokers: its group requests find the coordinator,
// its fetches reach each partition's leader), reads every record of a
// six-partition topic once, and commits where it stopped. Its JoinGroup and
// SyncGroup requests all reach one broker, the coordinator: before the
// gateway looked the coordinator up, they went round the brokers and were
// answered NOT_COORDINATOR until one hit it (and once in CI no try of
// eight did).
func TestGatewayRESTConsumerInstanceReadsEveryPartition(t *testing.T) {
	t.Parallel()
	g := startGateway(t, 1000, nil)
	var mu sync.Mutex
	groupNodes := map[int32]int{}
	for _, key := range []int16{int16(kmsg.JoinGroup), int16(kmsg.SyncGroup)} {
		g.cluster.ControlKey(key, func(kmsg.Request) (kmsg.Response, error, bool) {
			mu.Lock()
			groupNodes[g.cluster.CurrentNode()]++
			mu.Unlock()
			return nil, nil, false // observed, served as usual
		})
	}
	produceN(t, client(t, g.srv.KafkaAddr()), "orders", 0, 60)
	base := "http://" + g.srv.HTTPAddr() + "/consumers/g-rest-gw"
	if status, body := restDo(t, "POST", base, `{"name":"c","auto.offset.reset":"earliest"}`); status != 200 {
		t.Fatalf("create: %d %s", status, body)
	}
	inst := base + "/instances/c"
	if status, body := restDo(t, "POST", inst+"/subscription", `{"topics":["orders"]}`); status != 204 {
		t.Fatalf("subscribe: %d %s", status, body)
	}
	seen := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < 60 && time.Now().Before(deadline) {
		status, body := restDo(t, "GET", inst+"/records?timeout=500", "")
		if status != 200 {
			t.Fatalf("records: %d %s", status, body)
		}
		var recs []struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		}
		if err := json.Unmarshal([]byte(body), &recs); err != nil {
			t.Fatalf("records %s: %v", body, err)
		}
		for _, r := range recs {
			k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
			if seen[k]++; seen[k] > 1 {
				t.Fatalf("record %s read twice", k)
			}
		}
	}
	if len(seen) != 60 {
		t.Fatalf("read %d of 60 records", len(seen))
	}
	status, body := restDo(t, "GET", inst+"/assignments", "")
	if status != 200 || strings.Count(body, `"topic":"orders"`) != 6 {
		t.Fatalf("assignments: %d %s", status, body)
	}
	if status, body := restDo(t, "POST", inst+"/offsets", ""); status != 204 {
		t.Fatalf("commit: %d %s", status, body)
	}
	var parts []string
	for p := 0; p < 6; p++ {
		parts = append(parts, fmt.Sprintf(`{"topic":"orders","partition":%d}`, p))
	}
	status, body = restDo(t, "GET", inst+"/offsets", `{"partitions":[`+strings.Join(parts, ",")+`]}`)
	var committed struct {
		Offsets []struct {
			Offset int64 `json:"offset"`
		} `json:"offsets"`
	}
	if err := json.Unmarshal([]byte(body), &committed); err != nil || status != 200 || len(committed.Offsets) != 6 {
		t.Fatalf("committed: %d %s", status, body)
	}
	var sum int64
	for _, o := range committed.Offsets {
		sum += o.Offset
	}
	if sum != 60 {
		t.Fatalf("committed offsets sum to %d, want 60: %s", sum, body)
	}
	if status, body := restDo(t, "DELETE", inst, ""); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(groupNodes) != 1 {
		t.Fatalf("JoinGroup and SyncGroup reached brokers %v, want the coordinator alone", groupNodes)
	}
}

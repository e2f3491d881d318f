package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestRESTConsumerInstanceBelongsToItsHTTPUser: with --http-auth basic
// and ACLs enforced, a consumer instance acts with its creator's ACLs (its
// group and fetch requests reach the ACL guard as that user, not as
// User:ANONYMOUS), and another authenticated user can neither poll nor
// delete it: the instance is not found for them.
func TestRESTConsumerInstanceBelongsToItsHTTPUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	for _, u := range []string{"admin", "alice", "mallory"} {
		if out, err := floodgateUser(t, u+"-pw\n", "add", u, "--data-dir", dir); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	p := startFloodgate(t, 4096, "--data-dir", dir, "--sasl-mechanisms", "SCRAM-SHA-256", "--auth-required",
		"--super-users", "admin", "--http-auth", "basic")
	base := "http://" + p.http
	do := func(method, path, user, body, accept string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/vnd.kafka.v2+json")
			if strings.HasPrefix(path, "/topics/") {
				req.Header.Set("Content-Type", "application/vnd.kafka.json.v2+json")
			}
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		req.SetBasicAuth(user, user+"-pw")
		cl := http.Client{Timeout: 10 * time.Second}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := do("POST", "/topics/private", "admin", `{"records":[{"value":"secret"}]}`, ""); st != 200 {
		t.Fatalf("admin produce: %d %s", st, b)
	}
	// alice may read the topic and use the group; mallory may nothing.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow("User:alice").Topics("private").Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Allow("User:alice").Groups("alice-group").Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral),
	} {
		if res, err := adm.CreateACLs(ctx, b); err != nil || res[0].Err != nil {
			t.Fatalf("create ACL: %v %+v", err, res)
		}
	}
	const inst = "/consumers/alice-group/instances/a1"
	steps := []struct {
		name, method, path, user, body, accept string
		status                                 int
		want                                   string
	}{
		{"alice creates an instance", "POST", "/consumers/alice-group", "alice", `{"name":"a1","format":"json","auto.offset.reset":"earliest"}`, "", 200, `"instance_id":"a1"`},
		{"alice subscribes", "POST", inst + "/subscription", "alice", `{"topics":["private"]}`, "", 204, ""},
		{"alice polls with her ACLs", "GET", inst + "/records?timeout=5000", "alice", "", "application/vnd.kafka.json.v2+json", 200, `"value":"secret"`},
		{"mallory cannot poll alice's instance", "GET", inst + "/records?timeout=100", "mallory", "", "application/vnd.kafka.json.v2+json", 404, `"error_code":40403`},
		{"mallory cannot read its assignments", "GET", inst + "/assignments", "mallory", "", "", 404, `"error_code":40403`},
		{"mallory cannot delete alice's instance", "DELETE", inst, "mallory", "", "", 404, `"error_code":40403`},
		{"alice's instance is still there", "GET", inst + "/assignments", "alice", "", "", 200, `"topic":"private"`},
		{"alice deletes it", "DELETE", inst, "alice", "", "", 204, ""},
	}
	for _, s := range steps {
		st, b := do(s.method, s.path, s.user, s.body, s.accept)
		if st != s.status || !strings.Contains(b, s.want) {
			t.Fatalf("%s: %d %s, want %d with %s", s.name, st, b, s.status, s.want)
		}
	}
}

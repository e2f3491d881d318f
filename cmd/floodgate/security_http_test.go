package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// httpDo sends one request with optional Basic credentials.
func httpDo(t *testing.T, method, url, user, pass, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/vnd.kafka.json.v2+json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var adminLine = regexp.MustCompile(`floodgate admin listening admin=(\S+)`)

func TestHTTPBasicAuthACLsAndAdminListenerInTheBinary(t *testing.T) {
	dir := t.TempDir()
	for _, u := range []string{"admin", "alice"} {
		if out, err := floodgateUser(t, u+"-pw\n", "add", u, "--data-dir", dir); err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	p := startFloodgate(t, 4096, "--data-dir", dir, "--sasl-mechanisms", "SCRAM-SHA-256", "--auth-required",
		"--super-users", "admin", "--http-auth", "basic", "--admin-listen", "127.0.0.1:0")
	var admin string
	waitUntil(t, 5*time.Second, "admin listening line", func() bool {
		m := adminLine.FindStringSubmatch(p.stderr.String())
		if m != nil {
			admin = m[1]
		}
		return m != nil
	})
	base := "http://" + p.http
	cases := []struct {
		name, method, url, user, pass, body string
		want                                int
	}{
		{"health is open", "GET", base + "/health", "", "", "", 200},
		{"ready is open", "GET", base + "/ready", "", "", "", 200},
		{"REST without credentials", "GET", base + "/topics", "", "", "", 401},
		{"REST with a wrong password", "GET", base + "/topics", "alice", "nope", "", 401},
		{"REST as a super user", "GET", base + "/topics", "admin", "admin-pw", "", 200},
		{"produce as a super user", "POST", base + "/topics/rest-acl", "admin", "admin-pw", `{"records":[{"value":"a"}]}`, 200},
		{"produce without an ACL", "POST", base + "/topics/rest-acl", "alice", "alice-pw", `{"records":[{"value":"b"}]}`, 403},
		{"/metrics moved to the admin listener", "GET", base + "/metrics", "admin", "admin-pw", "", 404},
		{"/admin/stats moved to the admin listener", "GET", base + "/admin/stats", "admin", "admin-pw", "", 404},
		{"admin listener: health", "GET", "http://" + admin + "/health", "", "", "", 200},
		{"admin listener: metrics open without --metrics-auth", "GET", "http://" + admin + "/metrics", "", "", "", 200},
		{"admin listener: stats need credentials", "GET", "http://" + admin + "/admin/stats", "", "", "", 401},
		{"admin listener: stats need DESCRIBE on the cluster", "GET", "http://" + admin + "/admin/stats", "alice", "alice-pw", "", 403},
		{"admin listener: stats for a super user", "GET", "http://" + admin + "/admin/stats", "admin", "admin-pw", "", 200},
	}
	for _, c := range cases {
		status, hdr, body := httpDo(t, c.method, c.url, c.user, c.pass, c.body)
		if status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.want)
		}
		if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: 401 without a Basic WWW-Authenticate (%q)", c.name, hdr.Get("WWW-Authenticate"))
		}
	}
	// Granted WRITE over Kafka by the super user, alice produces over REST.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("rest-acl").
		Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || res[0].Err != nil {
		t.Fatalf("create ACL: %v %+v", err, res)
	}
	if status, _, body := httpDo(t, "POST", base+"/topics/rest-acl", "alice", "alice-pw", `{"records":[{"value":"c"}]}`); status != 200 {
		t.Fatalf("alice produce with WRITE: %d %s", status, body)
	}
	if status, _, body := httpDo(t, "GET", base+"/topics/rest-acl/partitions/0/records?offset=0", "alice", "alice-pw", ""); status != 403 {
		t.Fatalf("alice fetch without READ: %d %s, want 403", status, body)
	}
	// Granted DESCRIBE on the cluster, alice reads the operator's stats.
	res, err = kadm.NewClient(cl).CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Clusters().
		Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || res[0].Err != nil {
		t.Fatalf("create cluster ACL: %v %+v", err, res)
	}
	if status, _, body := httpDo(t, "GET", "http://"+admin+"/admin/stats", "alice", "alice-pw", ""); status != 200 {
		t.Fatalf("alice's stats with DESCRIBE on the cluster: %d %s", status, body)
	}
	// Guessing passwords over HTTP is stopped before it costs a derivation.
	var last int
	for i := 0; i < 20; i++ {
		last, _, _ = httpDo(t, "GET", base+"/topics", "alice", "guess", "")
	}
	if last != 429 {
		t.Fatalf("20 wrong passwords in a row: the last answered %d, want 429", last)
	}
	if !strings.Contains(p.stderr.String(), "audit: CreateAcls") && !strings.Contains(p.stderr.String(), "audit: ACL created") {
		t.Fatalf("no audit line for the ACL creation:\n%s", p.stderr.String())
	}
}

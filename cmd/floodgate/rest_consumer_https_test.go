package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testcerts"
)

// TestRESTConsumerBaseURIKeepsTheScheme: an instance created over HTTPS
// is given an https:// base_uri (a client following an http:// one would
// send its requests, Basic credentials included, in the clear, or to a
// listener that is off), and one created over HTTP an http:// one; the
// base_uri given over HTTPS is followed. The v3 self links likewise.
func TestRESTConsumerBaseURIKeepsTheScheme(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	certs := testcerts.New(t)
	p := startFloodgate(t, 4096, append([]string{"--in-memory"}, tlsArgs(certs)...)...)
	_, https := tlsAddrsOf(t, p)
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(false)}}
	do := func(method, url, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/vnd.kafka.v2+json")
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ name, base, want string }{
		{"https", "https://" + https, "https://" + https + "/consumers/g/instances/over-https"},
		{"http", "http://" + p.http, "http://" + p.http + "/consumers/g/instances/over-http"},
	} {
		st, body := do("POST", c.base+"/consumers/g", `{"name":"over-`+c.name+`"}`)
		var v struct {
			BaseURI string `json:"base_uri"`
		}
		if err := json.Unmarshal([]byte(body), &v); st != 200 || err != nil || v.BaseURI != c.want {
			t.Fatalf("create over %s: %d %s, want base_uri %s", c.name, st, body, c.want)
		}
		if st, body := do("GET", v.BaseURI+"/subscription", ""); st != 200 {
			t.Fatalf("GET base_uri/subscription (%s): %d %s", v.BaseURI, st, body)
		}
		// The v3 links keep the scheme too.
		if st, body := do("GET", c.base+"/v3/clusters", ""); st != 200 || !strings.Contains(body, `"self":"`+c.base+"/v3/clusters/") {
			t.Fatalf("GET /v3/clusters over %s: %d %s, want self links under %s", c.name, st, body, c.base)
		}
	}
}

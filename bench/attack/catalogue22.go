package attack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// restProxyAttacks are issue 22's classes: what the REST Proxy's consumer
// instances let a client make the server hold.
func restProxyAttacks() []Attack {
	return []Attack{
		{Name: "http-rest-consumer-instance-flood", Issue: 22, Listener: HTTP,
			What: "8 workers on 8 IPs create REST consumer instances, each in a fresh group, subscribe and poll once so each joins, and never delete them",
			Run:  httpRESTConsumerFlood},
	}
}

// httpRESTConsumerFlood creates consumer instances as fast as the server
// answers: each is a group member with a goroutine and a heartbeat loop
// until it expires. The server must cap them (--max-rest-consumer-instances
// and per client IP) and answer the rest 429 at once.
func httpRESTConsumerFlood(ctx context.Context, t *Target) error {
	workers := t.N(8)
	clients := make([]*http.Client, workers)
	for w := range clients {
		clients[w] = httpClientFrom(AttackerIP(w), 10*time.Second)
		defer clients[w].CloseIdleConnections()
	}
	seq := make([]int, workers)
	return repeat(ctx, workers, func(ctx context.Context, w int) {
		seq[w]++
		group := fmt.Sprintf("http://%s/consumers/attack-%d-%d", t.HTTPAddr, w, seq[w])
		var created struct {
			BaseURI string `json:"base_uri"`
		}
		if status := restCall(ctx, clients[w], http.MethodPost, group, `{"auto.offset.reset":"earliest"}`, &created); status != http.StatusOK {
			sleep(ctx, 10*time.Millisecond)
			return
		}
		// base_uri names the Host the attacker used: the same address.
		restCall(ctx, clients[w], http.MethodPost, created.BaseURI+"/subscription", `{"topics":["attack-consumers"]}`, nil)
		restCall(ctx, clients[w], http.MethodGet, created.BaseURI+"/records?timeout=0", "", nil)
	})
}

// restCall sends one v2 request and returns its status (0 when it failed),
// decoding a 200 answer into out when given.
func restCall(ctx context.Context, cl *http.Client, method, url, body string, out any) int {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/vnd.kafka.v2+json")
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode == http.StatusOK {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/floodgate/floodgate/internal/loopback"
)

// waitReady polls /ready until it answers want or the deadline passes.
func waitReady(t *testing.T, p *process, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body, err := get(p.http, "/ready")
		if err == nil && code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready: %d %q %v, want %d\n%s", code, body, err, want, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayStartsWhileUpstreamIsDown: the gateway binary started before
// its cluster keeps running with /ready false, retries with a bounded
// backoff (a few rate-limited WARN lines, not one per attempt), turns ready
// once the cluster is up, and then serves a producer. Before, it exited at
// start ("no upstream seed answered").
func TestGatewayStartsWhileUpstreamIsDown(t *testing.T) {
	kp, err := loopback.FreePortRange(3)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := loopback.FreePortRange(8)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for i := 0; i < 3; i++ {
		seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", kp+i))
	}
	p := startFloodgate(t, 4096, "--in-memory", "--upstream-brokers", strings.Join(seeds, ","),
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", gp, gp+7), "--gateway-advertised-host", "127.0.0.1")
	waitReady(t, p, 503, 2*time.Second)
	time.Sleep(2 * time.Second) // retrying meanwhile
	p.alive(t)
	waitReady(t, p, 503, time.Second)
	if n := strings.Count(p.stderr.String(), "upstream cluster unreachable"); n > 3 {
		t.Fatalf("%d WARN lines in 2 s of retries, want at most 3 (rate-limited)", n)
	}

	cluster, err := kfake.NewCluster(kfake.Ports(kp, kp+1, kp+2), kfake.NumBrokers(3),
		kfake.SeedTopics(3, "late"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	waitReady(t, p, 200, 10*time.Second)

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RetryTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "late", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce through the gateway once its cluster is up: %v", err)
	}

	// /ready follows the cluster going away: the producer's upstream
	// connections break and the gateway re-reads the cluster at once
	// rather than at the next refresh (10 s).
	cluster.Close()
	waitReady(t, p, 503, 5*time.Second)
	p.alive(t)
}

// TestGatewayReadyFollowsTheClusterBehindTheACLGuard: with SASL users (so
// the ACL guard stands in front of the gateway), /ready still follows the
// upstream cluster: 503 while it is down, 200 once it is up. Before, the
// guard hid the gateway's readiness and /ready said 200 with no cluster.
func TestGatewayReadyFollowsTheClusterBehindTheACLGuard(t *testing.T) {
	kp, err := loopback.FreePortRange(1)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := loopback.FreePortRange(4)
	if err != nil {
		t.Fatal(err)
	}
	p := startFloodgate(t, 4096, "--data-dir", t.TempDir(), "--sasl-mechanisms", "SCRAM-SHA-512",
		"--upstream-brokers", fmt.Sprintf("127.0.0.1:%d", kp),
		"--gateway-listen-ports", fmt.Sprintf("%d-%d", gp, gp+3), "--gateway-advertised-host", "127.0.0.1")
	if !strings.Contains(p.stderr.String(), "ACLs loaded") {
		t.Fatalf("the ACL guard is not in front of the gateway:\n%s", p.stderr.String())
	}
	waitReady(t, p, 503, 2*time.Second)
	time.Sleep(500 * time.Millisecond)
	waitReady(t, p, 503, time.Second)
	cluster, err := kfake.NewCluster(kfake.Ports(kp), kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	waitReady(t, p, 200, 10*time.Second)
}

package attack

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGatewayClientSharedOntoALongPollIsNotHeldByIt: with
// --max-upstream-connections-per-broker 2, client A's long poll goes on
// A's own upstream connection (the pool has room), client B takes the
// second one, and client C, arriving at a full pool, is given one of the
// two to share. A broker answers one connection's requests in order, so
// C's ApiVersions must not be queued behind A's Fetch, which waits
// upstream for 20 s: C is answered within the good clients' bound.
func TestGatewayClientSharedOntoALongPollIsNotHeldByIt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the floodgate binary and a kfake cluster")
	}
	a := Attack{Name: "long-poll-then-share", Gateway: true, ServerArgs: []string{"--max-upstream-connections-per-broker", "2"}}
	srv, stop, err := startFor(a, startFloodgate(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := createPollTopic(ctx, &srv.Target); err != nil {
		t.Fatal(err)
	}
	addr, err := leaderAddr(ctx, &srv.Target, pollTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the set-up clients' upstream connections close with them

	connect := func(i int) *kafkaConn {
		c, err := Dial(ctx, goodIP(i), addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &kafkaConn{Conn: c}
	}
	pollA := connect(0)
	if !writeAll(pollA, kafkaFormatter.AppendRequest(nil, fetchRequest(pollTopic, 0, 0, 20*time.Second, 1, 1<<20), 1)) {
		t.Fatal("A's long poll not written")
	}
	time.Sleep(200 * time.Millisecond) // forwarded upstream, waiting there
	if err := connect(1).roundTrip(kmsg.NewPtrApiVersionsRequest(), 1, 5*time.Second); err != nil {
		t.Fatalf("B's ApiVersions: %v", err)
	}
	start := time.Now()
	err = connect(2).roundTrip(kmsg.NewPtrApiVersionsRequest(), 1, 5*time.Second)
	took := time.Since(start)
	t.Logf("C's ApiVersions on a full pool, A's long poll waiting upstream: %v, %v", took.Round(time.Millisecond), err)
	if err != nil || took > DefaultBounds.GoodP99 {
		t.Fatalf("C's ApiVersions took %v (%v), want under %v: C shares the upstream connection A's long poll holds", took.Round(time.Millisecond), err, DefaultBounds.GoodP99)
	}
}

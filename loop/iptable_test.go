package loop_test

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// TestOneIPIsSpreadOverLoopsAndCountedOnce: the connections of one client
// IP are spread over every event loop (a client with many connections, a
// load generator or a NAT, is served by every core), while
// --max-connections-per-ip still counts them all together, and a closed
// connection frees its place whichever loop it was on.
func TestOneIPIsSpreadOverLoopsAndCountedOnce(t *testing.T) {
	t.Parallel()
	const perIP = 4
	srv := testserver.Start(t, testserver.WithEventLoops(2),
		withLimits(func(l *limits.Config) { l.MaxConnectionsPerIP = perIP }))
	conns := make([]net.Conn, perIP)
	for i := range conns {
		conns[i] = dialFrom(t, "127.0.0.5", srv.KafkaAddr())
		expectServed(t, conns[i])
	}
	st := srv.Stats()
	if !slices.Equal(st.PerLoop, []int{2, 2}) {
		t.Fatalf("connections per loop = %v, want [2 2]: one IP's connections are not spread", st.PerLoop)
	}
	found := false
	for _, ip := range st.TopIPs {
		if ip.IP == "127.0.0.5" {
			found = true
			if ip.Count != perIP {
				t.Fatalf("127.0.0.5 counted %d connections, want %d", ip.Count, perIP)
			}
		}
	}
	if !found {
		t.Fatalf("127.0.0.5 missing from TopIPs %v", st.TopIPs)
	}

	over := dialFrom(t, "127.0.0.5", srv.KafkaAddr())
	expectClosed(t, over, 3*time.Second)

	// Close one from each loop: two places free, whichever loop they were on.
	conns[0].Close()
	conns[1].Close()
	waitFor(t, 3*time.Second, "closed connections counted out", func() bool {
		for _, ip := range srv.Stats().TopIPs {
			if ip.IP == "127.0.0.5" {
				return ip.Count == perIP-2
			}
		}
		return false
	})
	for i := 0; i < 2; i++ {
		expectServed(t, dialFrom(t, "127.0.0.5", srv.KafkaAddr()))
	}
	expectClosed(t, dialFrom(t, "127.0.0.5", srv.KafkaAddr()), 3*time.Second)
	for _, c := range conns[2:] {
		expectServed(t, c)
	}
}

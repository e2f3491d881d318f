package gateway

import (
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestPipePoolSharesOfAConnectionAndAnIPAndTheirEntriesGoAtZero: in a pool
// of 16 pipes one connection gets 2 (an eighth) and the connections of one
// IP 4 (a quarter), refused beyond with reason client_share and ip_share;
// another IP still gets a pipe. However the pipes come back (given back
// empty, dropped with bytes in them, or after the pool closed), the maps
// keep no entry of a connection or an IP that holds none, and the IP gets
// its whole share again.
func TestPipePoolSharesOfAConnectionAndAnIPAndTheirEntriesGoAtZero(t *testing.T) {
	const attacker, other = "203.0.113.7", "198.51.100.9"
	for _, tc := range []struct {
		name    string
		release func(pp *pipePool, p *pipe)
		closed  bool // the pool is closed before the pipes come back
	}{
		{name: "given back empty", release: func(_ *pipePool, p *pipe) { p.Done(0) }},
		{name: "dropped with bytes left in them", release: func(_ *pipePool, p *pipe) { p.Done(4096) }},
		{name: "given back after the pool closed", release: func(_ *pipePool, p *pipe) { p.Done(0) }, closed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := metrics.NewSet()
			pp := newPipePool(16, minSpliced, set, nil)
			if pp == nil || pp.max != 16 {
				t.Skip("the system allows no pool of 16 pipes of 16 KiB")
			}
			t.Cleanup(pp.close)
			if pp.perClient != 2 || pp.perIP != 4 {
				t.Fatalf("shares of a pool of 16: %d per connection, %d per IP; want 2 and 4", pp.perClient, pp.perIP)
			}
			var held []*pipe
			// Eight connections of one IP ask for two pipes each.
			for conn := uint64(1); conn <= 8; conn++ {
				for i := 0; i < 2; i++ {
					if p := pp.get(conn, attacker); p != nil {
						held = append(held, p)
					}
				}
			}
			if len(held) != 4 {
				t.Fatalf("one IP's eight connections got %d pipes, want its share of 4", len(held))
			}
			if p := pp.get(1, attacker); p != nil {
				t.Fatal("a connection holding its share got a third pipe")
			}
			if got := pp.metrics.ipCapped.Get(); got != 12 {
				t.Errorf("ip_share refusals: %d, want 12 (connections 3 to 8, twice each)", got)
			}
			if got := pp.metrics.capped.Get(); got != 1 {
				t.Errorf("client_share refusals: %d, want 1", got)
			}
			p := pp.get(100, other)
			if p == nil {
				t.Fatal("another IP got no pipe while the first holds only its share")
			}
			held = append(held, p)
			if len(pp.ips) != 2 || pp.ips[attacker] != 4 || len(pp.held) != 3 {
				t.Fatalf("maps while held: ips %v, connections %v", pp.ips, pp.held)
			}
			if tc.closed {
				pp.close()
			}
			for _, p := range held {
				tc.release(pp, p)
			}
			pp.mu.Lock()
			ips, conns := len(pp.ips), len(pp.held)
			pp.mu.Unlock()
			if ips != 0 || conns != 0 {
				t.Fatalf("after every pipe came back the pool still counts %d IPs and %d connections: %v %v", ips, conns, pp.ips, pp.held)
			}
			if tc.closed {
				if open, _ := pp.counts(); open != 0 {
					t.Fatalf("%d pipes left open after the pool closed", open)
				}
				return
			}
			for i := 0; i < 4; i++ {
				p := pp.get(uint64(10+i), attacker)
				if p == nil {
					t.Fatalf("after its pipes came back the IP got %d of its share of 4", i)
				}
				defer p.Done(0)
			}
		})
	}
}

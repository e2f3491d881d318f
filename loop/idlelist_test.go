package loop

import (
	"net/netip"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/floodgate/floodgate/limits"
)

// TestIdleListMovesRarelyAndReapsExactly: an active connection is moved
// to the back of the idle list at most once per touch grain (a request
// does not relink its neighbours), and the reaper still closes exactly
// the connections idle for the whole timeout, whatever their place.
func TestIdleListMovesRarelyAndReapsExactly(t *testing.T) {
	const timeout = 640 * time.Millisecond // grain: 10 ms
	ms := func(n int) int64 { return int64(n) * int64(time.Millisecond) }
	tests := []struct {
		name       string
		touches    [][2]int // (connection, at ms), in order
		reapAt     int      // ms
		wantHead   int      // head of the list after the touches
		wantReaped []bool
	}{
		{"active head unmoved is kept, idle one behind it is reaped",
			[][2]int{{0, 0}, {1, 1}, {0, 5}}, 643, 0, []bool{false, true}},
		{"a touch after the grain moves to the back",
			[][2]int{{0, 0}, {1, 1}, {0, 12}}, 643, 1, []bool{false, true}},
		{"both idle: both reaped",
			[][2]int{{0, 0}, {1, 1}}, 643, 0, []bool{true, true}},
		{"nothing idle yet",
			[][2]int{{0, 0}, {1, 1}, {0, 5}, {1, 6}}, 639, 0, []bool{false, false}},
		{"touched within the timeout near its end is kept",
			[][2]int{{0, 0}, {1, 1}, {0, 9}, {1, 9}}, 648, 0, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{Limits: limits.Defaults()}}
			s.cfg.Limits.IdleTimeout = timeout
			l := newLoopState(s, nil)
			conns := []*conn{newConn(l, kindKafka, netip.AddrFrom4([4]byte{127, 0, 0, 1})), newConn(l, kindKafka, netip.AddrFrom4([4]byte{127, 0, 0, 2}))}
			for _, tc := range tt.touches {
				l.touch(conns[tc[0]], ms(tc[1]))
			}
			if l.idle.head != conns[tt.wantHead] {
				t.Fatalf("head is not connection %d", tt.wantHead)
			}
			l.reap(time.Unix(0, ms(tt.reapAt)))
			for i, c := range conns {
				if reaped := c.closeReason == causeIdle; reaped != tt.wantReaped[i] {
					t.Errorf("connection %d reaped %v, want %v (last active %d ms)", i, reaped, tt.wantReaped[i], c.lastActive/ms(1))
				}
			}
		})
	}
}

// TestHeadWatchHoldsOneEntryPerConnection: a keep-alive connection moves
// its head deadline with every request; the watch keeps one entry for it
// (it held one per request for the whole header timeout: a million
// entries at 100,000 requests/s), renewed when it comes due on a later
// deadline.
func TestHeadWatchHoldsOneEntryPerConnection(t *testing.T) {
	s := &Server{cfg: Config{Limits: limits.Defaults()}}
	s.cfg.HTTPLimits.HeaderTimeout = time.Second
	l := newLoopState(s, nil)
	c := newConn(l, kindHTTP, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	c.busy()
	c.http = &httpConnState{}
	start := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ { // 1000 requests over 500 ms
		c.startHead(start.Add(time.Duration(i) * 500 * time.Microsecond))
	}
	if len(l.heads) != 1 {
		t.Fatalf("%d head watch entries for one connection", len(l.heads))
	}
	// The first deadline passes while the last one is still ahead: the
	// entry is renewed on the later deadline, not dropped, and the
	// connection is not refused.
	c.gc = liveConn{}
	l.expireHeads(start.Add(time.Second + time.Millisecond).UnixNano())
	if len(l.heads) != 1 || l.heads[0].deadline != c.http.deadline || !c.http.watched || c.http.phase != phaseHead {
		t.Fatalf("after the first deadline: %d entries, phase %d, watched %v", len(l.heads), c.http.phase, c.http.watched)
	}
}

// liveConn stands for a connection still on its loop; calling it panics.
type liveConn struct{ gnet.Conn }

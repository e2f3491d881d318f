package loop

import (
	"net/netip"
	"testing"
	"time"

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
			if l.head != conns[tt.wantHead] {
				t.Fatalf("head is not connection %d", tt.wantHead)
			}
			l.reap(time.Unix(0, ms(tt.reapAt)))
			for i, c := range conns {
				if reaped := c.closeReason == "idle"; reaped != tt.wantReaped[i] {
					t.Errorf("connection %d reaped %v, want %v (last active %d ms)", i, reaped, tt.wantReaped[i], c.lastActive/ms(1))
				}
			}
		})
	}
}

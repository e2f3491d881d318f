package loop

import (
	"net/netip"
	"testing"
	"unsafe"
)

// TestIdleConnStateIsSmall: what every connection pays before it sends a
// byte is the conn struct alone (traffic and HTTP state are made at the
// first bytes); it was 672 B, plus a 64 B slots array and the IP string,
// then 160 B with its close reason a string and the input charge rx (now
// in connBusy).
func TestIdleConnStateIsSmall(t *testing.T) {
	// 128 B is a size class of Go's allocator: one byte more allocates 144.
	if n := unsafe.Sizeof(conn{}); n > 128 {
		t.Fatalf("conn is %d B; want at most 128 (move what an idle connection does not use to connBusy)", n)
	}
	c := newConn(nil, kindKafka, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if c.connBusy != nil {
		t.Fatal("a new connection has traffic state before its first byte")
	}
}

// TestCloseCausesHaveLabels: every close cause has its metric label, so a
// close is never counted under an empty reason.
func TestCloseCausesHaveLabels(t *testing.T) {
	seen := map[string]bool{}
	for c := closeCause(1); c < numCloseCauses; c++ {
		l := c.String()
		if l == "" || (seen[l] && c != causeClient) {
			t.Errorf("cause %d has label %q (empty or repeated)", c, l)
		}
		seen[l] = true
	}
}

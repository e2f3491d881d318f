package loop

import (
	"net/netip"
	"testing"
	"unsafe"
)

// TestIdleConnStateIsSmall: what every connection pays before it sends a
// byte is the conn struct alone (traffic and HTTP state are made at the
// first bytes); it was 672 B, plus a 64 B slots array and the IP string,
// then 160 B with the input charge rx (now in connBusy).
func TestIdleConnStateIsSmall(t *testing.T) {
	// 144 B is a size class of Go's allocator: one byte more allocates 160.
	if n := unsafe.Sizeof(conn{}); n > 144 {
		t.Fatalf("conn is %d B; want at most 144 (move what an idle connection does not use to connBusy)", n)
	}
	c := newConn(nil, kindKafka, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if c.connBusy != nil {
		t.Fatal("a new connection has traffic state before its first byte")
	}
}

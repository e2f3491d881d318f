package main

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// TestAdminListenerCapsConnectionsPerIP: one address holding idle
// connections gets at most adminMaxConnsPerIP of the admin listener's
// slots (the next is closed at once); another address is still served,
// and a closed connection gives its place back.
func TestAdminListenerCapsConnectionsPerIP(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := metrics.NewSet().NewCounter("floodgate_admin_connections_refused_total")
	ll := &limitListener{Listener: ln, slots: make(chan struct{}, adminMaxConns), perIP: adminMaxConnsPerIP, byIP: map[string]int{},
		refused: refused}
	defer ll.Close()
	var mu sync.Mutex
	var accepted []net.Conn
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	dial := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		ne, timeout := err.(net.Error)
		return !(timeout && ne.Timeout())
	}
	var mine []net.Conn
	for i := 0; i < adminMaxConnsPerIP; i++ {
		mine = append(mine, dial("127.0.0.1"))
	}
	for i, c := range mine {
		if closedByServer(c) {
			t.Fatalf("connection %d of one address closed; want %d kept", i, adminMaxConnsPerIP)
		}
	}
	if extra := dial("127.0.0.1"); !closedByServer(extra) {
		t.Fatalf("connection %d of one address kept; want it closed at once", adminMaxConnsPerIP+1)
	}
	if n := refused.Get(); n != 1 {
		t.Fatalf("floodgate_admin_connections_refused_total = %d, want 1", n)
	}
	if other := dial("127.0.0.2"); closedByServer(other) {
		t.Fatal("another address was refused")
	}
	mu.Lock()
	accepted[0].Close() // the server ends one of the first address's connections
	mu.Unlock()
	if again := dial("127.0.0.1"); closedByServer(again) {
		t.Fatal("a freed place was not given back")
	}
}

package loop

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestRecordScanFollowsRecordBoundariesWhateverTheChunking(t *testing.T) {
	// Two records (3 and 2 body bytes) and the start of a third (1 of 4).
	stream := []byte{23, 3, 3, 0, 3, 'a', 'b', 'c', 23, 3, 3, 0, 2, 'd', 'e', 23, 3, 3, 0, 4, 'f'}
	tests := []struct {
		name  string
		sizes []int
	}{
		{"whole", []int{len(stream)}},
		{"byte by byte", nil},
		{"split in headers", []int{2, 6, 3, 4, 6}},
		{"split in bodies", []int{6, 8, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recordScan
			b := stream
			for i := 0; len(b) > 0; i++ {
				n := 1
				if tt.sizes != nil {
					n = tt.sizes[i]
				}
				r.feed(b[:n])
				b = b[n:]
			}
			if got := r.held(); got != 6 {
				t.Fatalf("held %d; want 6 (the third record's header and one byte)", got)
			}
		})
	}
	var r recordScan
	r.feed(stream[:15])
	if r.held() != 0 {
		t.Fatalf("held %d after two whole records; want 0", r.held())
	}
}

func TestHandshakeTableRefusesWhenFullOfYoungAndEvictsTheOldest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn := func() *net.TCPConn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	var tab handshakeTable
	t0 := time.Now()
	p1 := &pendingHandshake{nc: conn(), start: t0}
	p2 := &pendingHandshake{nc: conn(), start: t0.Add(10 * time.Millisecond)}
	steps := []struct {
		name    string
		p       *pendingHandshake
		want    bool
		running int
	}{
		{"room", p1, true, 1},
		{"room for the second", p2, true, 2},
		{"full of young handshakes: refused", &pendingHandshake{nc: conn(), start: t0.Add(500 * time.Millisecond)}, false, 2},
		{"the oldest is old enough: it gives its place", &pendingHandshake{nc: conn(), start: t0.Add(1500 * time.Millisecond)}, true, 2},
	}
	for _, s := range steps {
		if got := tab.admit(s.p, 2, time.Second); got != s.want || tab.running() != s.running {
			t.Fatalf("%s: admitted %v, running %d; want %v, %d", s.name, got, tab.running(), s.want, s.running)
		}
	}
	// p1 was evicted: its socket's deadline is past, so a read fails at once.
	if _, err := p1.nc.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("evicted handshake's read: %v; want a deadline error", err)
	}
	if !tab.done(p1) || tab.running() != 2 {
		t.Fatalf("done(p1): evicted %v, running %d", p1.evicted, tab.running())
	}
	if tab.done(p2) || tab.running() != 1 {
		t.Fatalf("done(p2): evicted %v, running %d; want false, 1", p2.evicted, tab.running())
	}
}

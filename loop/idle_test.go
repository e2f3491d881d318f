package loop_test

import (
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// idleConns opens n connections to addr from raw sockets (no Go objects
// on the client side, so the process's heap and RSS growth is the
// server's), from 127.0.0.2 up so that no per-IP limit is met.
func idleConns(t testing.TB, addr string, n int) {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	to := &unix.SockaddrInet4{Port: ta.Port}
	copy(to.Addr[:], ta.IP.To4())
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for i := 0; i < n; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		fds = append(fds, fd)
		from := &unix.SockaddrInet4{Addr: [4]byte{127, 0, byte(1 + i/200/250), byte(2 + i/200%250)}}
		if err := unix.Bind(fd, from); err != nil {
			t.Fatalf("bind %d: %v", i, err)
		}
		if err := unix.Connect(fd, to); err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
	}
}

// heapAfterGC returns the live Go heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestIdleConnectionCostsLittle: an idle connection costs the server
// its gnet connection and a small conn, nothing more (traffic state is
// made at the first byte). Every byte here is paid a million times at one
// million connections. FLOODGATE_IDLE_CONNS sets the count (default 2000;
// up to ~9,000 fit the 20,000 open files of one process, both ends).
func TestIdleConnectionCostsLittle(t *testing.T) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("FLOODGATE_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	srv := testserver.Start(t, withLimits(func(l *limits.Config) {
		l.MaxConnections = n + 100
		l.MaxConnectionsPerIP = 1000
	}))
	time.Sleep(200 * time.Millisecond) // let start-up settle
	heap0, rss0 := heapAfterGC(), loop.ResidentBytes()
	idleConns(t, srv.KafkaAddr(), n)
	waitFor(t, 30*time.Second, "connections registered", func() bool { return srv.Stats().Connections >= int64(n) })
	time.Sleep(200 * time.Millisecond)
	heap1 := heapAfterGC()
	debug.FreeOSMemory()
	rss1 := loop.ResidentBytes()
	perHeap := float64(heap1-heap0) / float64(n)
	perRSS := float64(rss1-rss0) / float64(n)
	t.Logf("%d idle connections: Go heap %.0f B each, RSS %.0f B each (both ends in one process: the client holds only descriptors)", n, perHeap, perRSS)
	// Measured at 2,000 connections: 1,349 B before the conn diet, 745 B
	// after, of which gnet's own connection (its conn and addresses) is
	// about 500 B.
	if perHeap > 900 {
		t.Fatalf("an idle connection costs %.0f B of Go heap; want at most 900", perHeap)
	}
}

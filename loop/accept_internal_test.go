package loop

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptedSocketsInheritKeepaliveFromTheListener: keepalive is set
// once on the listening socket and accepted sockets carry it without a
// setsockopt per accept. The listener here asks for timings unlike Go's
// per-accept default (15 s), so an accepted socket configured by Go again
// would show 15 s instead of the listener's values.
func TestAcceptedSocketsInheritKeepaliveFromTheListener(t *testing.T) {
	tests := []struct {
		name string
		ka   net.KeepAliveConfig
	}{
		{"server default", acceptKeepAlive},
		{"distinct timings", net.KeepAliveConfig{Enable: true, Idle: 37 * time.Second, Interval: 11 * time.Second, Count: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := listenConfig(tc.ka, socketBuffers{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rc := acceptOne(t, ln)
			want := map[string]struct{ level, opt, v int }{
				"SO_KEEPALIVE":  {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				"TCP_KEEPIDLE":  {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(tc.ka.Idle / time.Second)},
				"TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(tc.ka.Interval / time.Second)},
				"TCP_KEEPCNT":   {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tc.ka.Count},
				"TCP_NODELAY":   {unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
			}
			if err := rc.Control(func(fd uintptr) {
				for name, o := range want {
					got, err := unix.GetsockoptInt(int(fd), o.level, o.opt)
					if err != nil {
						t.Errorf("%s: %v", name, err)
					} else if got != o.v {
						t.Errorf("accepted socket's %s = %d, want %d (the listener's)", name, got, o.v)
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSetBacklogCutsAndRestoresTheListenQueue: a listener whose backlog is
// cut queues only about that many unaccepted connections (the kernel drops
// further SYNs, so their connects time out), and restoring it queues as
// many as before.
func TestSetBacklogCutsAndRestoresTheListenQueue(t *testing.T) {
	ln, err := listenTCP("127.0.0.1:0", socketBuffers{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	// dial opens n connections that nobody accepts and returns how many
	// completed; it closes them and drains the queue afterwards.
	dial := func(n int) int {
		var conns []net.Conn
		for i := 0; i < n; i++ {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
			if err == nil {
				conns = append(conns, c)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		_ = tl.SetDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			c, err := tl.Accept()
			if err != nil {
				break
			}
			c.Close()
		}
		_ = tl.SetDeadline(time.Time{})
		return len(conns)
	}
	const cut, n = 4, 14
	setBacklog(tl, cut)
	if got := dial(n); got > cut+2 {
		t.Fatalf("backlog cut to %d: %d of %d connects completed", cut, got, n)
	}
	setBacklog(tl, fullBacklog)
	if got := dial(n); got != n {
		t.Fatalf("backlog restored: %d of %d connects completed", got, n)
	}
}

// TestAcceptedSocketsInheritBufferSizesFromTheListener: the buffer sizes
// (--socket-send-buffer, --socket-receive-buffer) are set
// once on the listener and the sockets it accepts carry them (Linux
// reports twice the value asked); left at -1, an accepted socket keeps the
// kernel's default, and the gauge's value is 0.
func TestAcceptedSocketsInheritBufferSizesFromTheListener(t *testing.T) {
	tests := []struct {
		name                  string
		bufs                  socketBuffers
		wantSend, wantReceive int // 0: the kernel's default, not the value set
		gaugeSend, gaugeRecv  bool
	}{
		{name: "autotuning", bufs: socketBuffers{send: -1, receive: -1}},
		{name: "both set", bufs: socketBuffers{send: 40000, receive: 24000}, wantSend: 80000, wantReceive: 48000, gaugeSend: true, gaugeRecv: true},
		{name: "send only", bufs: socketBuffers{send: 56000, receive: -1}, wantSend: 112000, gaugeSend: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := listenTCP("127.0.0.1:0", tc.bufs)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rc := acceptOne(t, ln)
			var send, receive int
			if err := rc.Control(func(fd uintptr) {
				send, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
				receive, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
			}); err != nil {
				t.Fatal(err)
			}
			check := func(what string, got, want int, set int64) {
				switch {
				case want != 0 && got != want:
					t.Errorf("accepted socket's %s = %d, want %d (the listener's %d, doubled)", what, got, want, set)
				case want == 0 && (got == 80000 || got == 48000 || got == 112000):
					t.Errorf("accepted socket's %s = %d, a size this test sets elsewhere: want the kernel's default", what, got)
				}
			}
			check("SO_SNDBUF", send, tc.wantSend, tc.bufs.send)
			check("SO_RCVBUF", receive, tc.wantReceive, tc.bufs.receive)
			gs, gr := effectiveSocketBuffers(ln, tc.bufs)
			if (gs != 0) != tc.gaugeSend || (gr != 0) != tc.gaugeRecv || (tc.gaugeSend && gs != int64(tc.wantSend)) || (tc.gaugeRecv && gr != int64(tc.wantReceive)) {
				t.Errorf("effective sizes %d / %d, want %d / %d (0: autotuning)", gs, gr, tc.wantSend, tc.wantReceive)
			}
		})
	}
}

// acceptOne dials ln, accepts the connection and returns the accepted
// socket's raw connection; both ends close when the test ends.
func acceptOne(t *testing.T, ln net.Listener) syscall.RawConn {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc, err := ln.(*net.TCPListener).AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc, err := nc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

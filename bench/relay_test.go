package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestParseRelayRoutes(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []RelayRoute
		ok   bool
	}{
		{"127.0.0.1:1>127.0.0.1:2", []RelayRoute{{"127.0.0.1:1", "127.0.0.1:2"}}, true},
		{"a:1>b:2,c:3>d:4", []RelayRoute{{"a:1", "b:2"}, {"c:3", "d:4"}}, true},
		{"a:1", nil, false},
		{">b:2", nil, false},
		{"a:1>", nil, false},
	} {
		got, err := ParseRelayRoutes(tc.spec)
		if (err == nil) != tc.ok {
			t.Fatalf("%q: err %v, want ok %v", tc.spec, err, tc.ok)
		}
		if tc.ok && (len(got) != len(tc.want) || got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1]) {
			t.Fatalf("%q: got %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// TestRelayMovesBytesBothWays sends 4 MiB through a relay in each mode to
// an echo server and checks every byte comes back in order.
func TestRelayMovesBytesBothWays(t *testing.T) {
	for _, mode := range []RelayMode{RelaySplice, RelayCopy} {
		t.Run(string(mode), func(t *testing.T) {
			echo, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer echo.Close()
			go func() {
				for {
					c, err := echo.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(c, c); c.Close() }()
				}
			}()
			front := freeLoopbackPort(t)
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() {
				served <- ServeRelay(ctx, mode, []RelayRoute{{Listen: front, Target: echo.Addr().String()}})
			}()
			var c net.Conn
			for deadline := time.Now().Add(5 * time.Second); ; {
				if c, err = net.Dial("tcp", front); err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 4<<20)
			for i := range want {
				want[i] = byte(i * 7)
			}
			go func() { _, _ = c.Write(want) }()
			got := make([]byte, len(want))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("bytes changed on the way through the relay")
			}
			c.Close()
			cancel()
			if err := <-served; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServeRelayRefusesAnUnknownMode(t *testing.T) {
	if err := ServeRelay(context.Background(), "zerocopy", nil); err == nil {
		t.Fatal("an unknown mode was accepted")
	}
}

func TestAdvertisedListenNamesTheAdvertisedPort(t *testing.T) {
	p, _ := strconv.Atoi(freeLoopbackPort(t)[len("127.0.0.1:"):])
	ln, err := AdvertisedListen(map[int]int{p: 45678})("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != "127.0.0.1:45678" {
		t.Fatalf("Addr %s, want 127.0.0.1:45678", got)
	}
	other, err := AdvertisedListen(nil)("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, port, _ := net.SplitHostPort(other.Addr().String()); port == "0" {
		t.Fatal("a listener without an advertised port should name its own")
	}
}

// freeLoopbackPort returns a 127.0.0.1 address with a port free a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// RelayMode is how a Relay moves bytes between its two sockets.
type RelayMode string

const (
	// RelaySplice moves bytes with splice(2) through a pipe (Go's
	// TCPConn.ReadFrom on Linux): they never enter user space.
	RelaySplice RelayMode = "splice"
	// RelayCopy reads into a buffer and writes it out again: two copies
	// between the kernel and user space per byte.
	RelayCopy RelayMode = "copy"
)

// relayBuffer is RelayCopy's buffer per direction.
const relayBuffer = 256 << 10

// RelayRoute is one listener of a relay and the address it forwards to.
type RelayRoute struct {
	Listen, Target string
}

// ParseRelayRoutes reads "LISTEN>TARGET,LISTEN>TARGET" (host:port each).
func ParseRelayRoutes(spec string) ([]RelayRoute, error) {
	var routes []RelayRoute
	for _, f := range strings.Split(spec, ",") {
		l, t, ok := strings.Cut(f, ">")
		if !ok || l == "" || t == "" {
			return nil, fmt.Errorf("relay route %q: want LISTEN>TARGET", f)
		}
		routes = append(routes, RelayRoute{Listen: l, Target: t})
	}
	return routes, nil
}

// ServeRelay runs the least a TCP proxy can do, as a floor for what any
// gateway's hop costs: each connection accepted on a route's listener is
// joined to a new connection to its target, and bytes are moved both ways
// with mode, unread and unlimited, until either side closes. It accepts
// until ctx ends; connections still open then are left to the process's
// exit (it runs as a bench-suite peer, which exits on return).
func ServeRelay(ctx context.Context, mode RelayMode, routes []RelayRoute) error {
	if mode != RelaySplice && mode != RelayCopy {
		return fmt.Errorf("relay mode %q: want %s or %s", mode, RelaySplice, RelayCopy)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, r := range routes {
		ln, err := net.Listen("tcp", r.Listen)
		if err != nil {
			return fmt.Errorf("relay listen %s: %w", r.Listen, err)
		}
		lns = append(lns, ln)
	}
	var wg sync.WaitGroup
	for i, ln := range lns {
		wg.Add(1)
		go func(ln net.Listener, target string) {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go relayConn(c, target, mode)
			}
		}(ln, routes[i].Target)
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	return nil
}

// relayConn joins client to a new connection to target until either
// direction ends, then closes both.
func relayConn(client net.Conn, target string, mode RelayMode) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		client.Close()
		return
	}
	done := make(chan struct{}, 2)
	move := func(dst, src net.Conn) {
		if mode == RelaySplice {
			_, _ = io.Copy(dst, src) // *net.TCPConn.ReadFrom: splice(2)
		} else {
			_, _ = io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, make([]byte, relayBuffer))
		}
		done <- struct{}{}
	}
	go move(up, client)
	go move(client, up)
	<-done
	client.Close()
	up.Close()
	<-done
}

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so io.CopyBuffer
// copies through its buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// AdvertisedListen returns a listen function for kfake.ListenFn whose
// listener on a port of advertise reports that port's advertised port as
// its address, which kfake names in its Metadata answers: clients then
// reach the broker through whatever listens there (a relay).
func AdvertisedListen(advertise map[int]int) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		_, ps, _ := net.SplitHostPort(address)
		p, _ := strconv.Atoi(ps)
		adv, ok := advertise[p]
		if !ok {
			return ln, nil
		}
		tcp, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			ln.Close()
			return nil, errors.New("advertised listen: not a TCP listener")
		}
		return advertisedListener{Listener: ln, addr: &net.TCPAddr{IP: tcp.IP, Port: adv}}, nil
	}
}

// advertisedListener is a listener that names another address.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

// Addr returns the advertised address.
func (l advertisedListener) Addr() net.Addr { return l.addr }

package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/limits"
)

// listenerKind says which protocol a connection speaks.
type listenerKind uint8

const (
	kindKafka listenerKind = iota
	kindHTTP
)

func (k listenerKind) String() string {
	if k == kindHTTP {
		return "http"
	}
	return "kafka"
}

// Accept backoff after a resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM):
// start small and double up to a second, as net/http and nginx do.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// TCP keepalive of accepted connections: Go's defaults for a listener
// (probe after 15 s idle, every 15 s, give up after 9), kept so that a peer
// that vanished without a FIN is found as before.
var acceptKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// socketBuffers are the SO_SNDBUF and SO_RCVBUF given to a listener, which
// Linux copies to the sockets it accepts (--socket-send-buffer,
// --socket-receive-buffer); a value of 0 or less leaves the kernel's
// autotuning.
type socketBuffers struct{ send, receive int64 }

// socketBuffersOf returns the socket buffer sizes lim asks for.
func socketBuffersOf(lim *limits.Config) socketBuffers {
	return socketBuffers{send: lim.SocketSendBuffer, receive: lim.SocketReceiveBuffer}
}

// listenTCP binds a listener whose accepted sockets cost no setsockopt for
// keepalive or buffer sizes. Go's default listener sets keepalive on every
// accepted socket (four setsockopt(2) calls, 16 % of the acceptor's CPU
// under a connection flood); Linux copies these options from the listening
// socket to the sockets it accepts, so they are set once here and Go's
// per-accept configuration is off.
func listenTCP(addr string, bufs socketBuffers) (net.Listener, error) {
	return listenConfig(acceptKeepAlive, bufs).Listen(context.Background(), "tcp", addr)
}

// listenConfig returns a ListenConfig that sets ka and bufs on the
// listening socket and nothing on accepted sockets.
func listenConfig(ka net.KeepAliveConfig, bufs socketBuffers) *net.ListenConfig {
	return &net.ListenConfig{
		KeepAlive: -1, // accepted sockets inherit the listener's options
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				opts := []struct{ level, opt, v int }{
					{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
					{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(ka.Idle / time.Second)},
					{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(ka.Interval / time.Second)},
					{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, ka.Count},
				}
				for _, o := range opts {
					if serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.v); serr != nil {
						serr = fmt.Errorf("listener keepalive option %d: %w", o.opt, serr)
						return
					}
				}
				serr = setSocketBuffers(int(fd), bufs)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

// setSocketBuffers sets the buffer sizes of bufs that are above 0 on fd.
// The receive buffer must be set before listen(2) to size the TCP window
// of the connections it accepts; on a listener already listening it
// applies to the connections accepted from then on.
func setSocketBuffers(fd int, bufs socketBuffers) error {
	for _, o := range []struct {
		name string
		opt  int
		v    int64
	}{{"SO_SNDBUF", unix.SO_SNDBUF, bufs.send}, {"SO_RCVBUF", unix.SO_RCVBUF, bufs.receive}} {
		if o.v <= 0 {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, int(o.v)); err != nil {
			return fmt.Errorf("listener %s %d: %w", o.name, o.v, err)
		}
	}
	return nil
}

// effectiveSocketBuffers is what the kernel made of bufs on ln (it doubles
// a value and caps it at net.core.wmem_max / rmem_max): 0 for a size left
// to autotuning.
func effectiveSocketBuffers(ln net.Listener, bufs socketBuffers) (send, receive int64) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return 0, 0
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return 0, 0
	}
	_ = rc.Control(func(fd uintptr) {
		if bufs.send > 0 {
			v, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			send = int64(v)
		}
		if bufs.receive > 0 {
			v, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
			receive = int64(v)
		}
	})
	return send, receive
}

// probeMarker marks the connections used to discover the event loops.
type probeMarker struct{}

// discoverLoops finds every event loop of the engine so that the acceptor
// can choose the loop of each connection itself (by source IP, so per-IP
// counts stay loop-local). gnet exposes a loop only through a connection it
// owns, so a few loopback connections are registered and closed at boot.
func (s *Server) discoverLoops() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("discover loops: %w", err)
	}
	defer ln.Close()
	n := s.cfg.EventLoops
	for attempt := 0; attempt < 64*n && s.loopCount() < n; attempt++ {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("discover loops: %w", err)
		}
		server, err := ln.Accept()
		if err != nil {
			client.Close()
			return fmt.Errorf("discover loops: %w", err)
		}
		ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), probeMarker{}), server)
		ch, err := s.engine.Register(ctx)
		if err == nil {
			<-ch
		}
		server.Close()
		client.Close()
	}
	if s.loopCount() < n {
		return fmt.Errorf("discover loops: found %d of %d", s.loopCount(), n)
	}
	return nil
}

func (s *Server) loopCount() int {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	return len(s.loops)
}

// startAcceptor runs the accept loop of one listener.
func (s *Server) startAcceptor(ln net.Listener, kind listenerKind, tag int32) {
	s.acceptors.Add(1)
	go func() {
		defer s.acceptors.Done()
		s.acceptLoop(ln.(*net.TCPListener), kind, tag, false)
	}()
}

// startTLSAcceptor runs the accept loop of a TLS listener (tls.go).
func (s *Server) startTLSAcceptor(ln net.Listener, kind listenerKind, tag int32) {
	s.acceptors.Add(1)
	go func() {
		defer s.acceptors.Done()
		s.acceptLoop(ln.(*net.TCPListener), kind, tag, true)
	}()
}

// acceptLoop accepts until the listener closes. No error stops it: resource
// errors back off and retry, everything else is counted and retried.
func (s *Server) acceptLoop(ln *net.TCPListener, kind listenerKind, tag int32, secure bool) {
	var delay time.Duration
	for {
		if until := s.acceptPause.Load(); until > 0 {
			if d := time.Until(time.Unix(0, until)); d > 0 {
				time.Sleep(d)
			}
		}
		if s.refusalUnanswerable(kind, secure) {
			s.waitForRoom(ln, kind, secure)
			continue
		}
		nc, err := ln.AcceptTCP()
		if err == nil && s.cfg.Proxy.expects(kind) {
			// Admitted once its PROXY header names the client (proxy.go).
			s.acceptProxied(nc, kind, tag, secure)
			delay = 0
			continue
		}
		if err == nil {
			// A socket that could not be handed to its loop for want of
			// descriptors (dup fails with EMFILE) is the same exhaustion as
			// a failed accept: back off the same way.
			err = s.admit(nc, kind, tag, remoteIP(nc), secure)
		}
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			name := errnoName(err)
			s.met.counter(`floodgate_accept_errors_total{listener="` + kind.String() + `",errno="` + name + `"}`).Inc()
			if delay == 0 {
				delay = acceptBackoffMin
			} else if delay *= 2; delay > acceptBackoffMax {
				delay = acceptBackoffMax
			}
			s.warn.Warn("accept:"+kind.String(), "accept failed; pausing accepts",
				"listener", kind.String(), "errno", name, "error", err.Error(), "pause", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
	}
}

// clientGone reports whether nc's client has already closed it or reset
// it: a peek finds the end of the stream (or an error) with nothing before
// it. A client that sent a request before closing its side is not gone:
// its request is answered. It costs one recv(2) per accepted connection.
func clientGone(nc *net.TCPConn) bool {
	raw, err := nc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
	})
	return gone
}

// acceptWaitStep is how often an acceptor that waits for room (waitForRoom)
// looks again: a connection slot that frees is taken within it.
const acceptWaitStep = 5 * time.Millisecond

// refusalUnanswerable reports whether a connection accepted now on a
// listener of kind could only be refused and closed unanswered: the server
// is at its connection limit or its memory budget's high-water mark, and
// the refuser has no room to answer (a TLS listener's refusals are never
// answered). Accepting such a connection costs an accept(2) and a
// close(2) and tells its client nothing; under a connection flood it was
// most of the server's CPU, taken from the connections already served.
func (s *Server) refusalUnanswerable(kind listenerKind, secure bool) bool {
	if !secure && s.refuse.room() {
		return false
	}
	return s.active.Load() >= s.connCap(kind) || s.budget.NearLimit()
}

// waitForRoom holds the acceptor of ln (of kind) while
// refusalUnanswerable: new connections wait in the listen backlog, cut to
// waitBacklog meanwhile, and beyond it the kernel's SYN retries hold the
// clients back, instead of being accepted and closed unanswered. A freed
// connection slot, budget or refusal slot lets accepting go on within
// acceptWaitStep, with the backlog back at its size. Each wait is counted
// in floodgate_accept_waits_total{listener} and logged, rate-limited.
func (s *Server) waitForRoom(ln *net.TCPListener, kind listenerKind, secure bool) {
	s.met.counter(`floodgate_accept_waits_total{listener="` + kind.String() + `"}`).Inc()
	s.warn.Warn("accept-wait:"+kind.String(), "at capacity with no room to answer refusals; new connections wait in the listen backlog",
		"listener", kind.String(), "max_connections", s.connCap(kind), "actual", s.active.Load(),
		"refusals_waiting", s.refuse.used.Load(), "memory_near_limit", s.budget.NearLimit(), "backlog", waitBacklog)
	setBacklog(ln, waitBacklog)
	defer setBacklog(ln, fullBacklog)
	for !s.stopping.Load() && s.refusalUnanswerable(kind, secure) {
		time.Sleep(acceptWaitStep)
	}
}

// The listen backlog while an acceptor waits for room, and its size
// otherwise. Linux lets listen(2) on a listening socket change its
// backlog, and caps it at net.core.somaxconn (Go's own choice for a
// listener); connections queued beyond a cut stay queued. A short backlog
// while at capacity means that when a flood ends, the connections its
// clients already closed are a few to drain, not thousands queued ahead
// of the next real client.
const (
	waitBacklog = 64
	fullBacklog = 1<<16 - 1
)

// setBacklog sets ln's listen backlog to n (see waitBacklog).
func setBacklog(ln *net.TCPListener, n int) {
	raw, err := ln.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { _ = unix.Listen(int(fd), n) })
}

// connCap is how many connections a listener of kind may bring the server
// to: --max-connections, plus the HTTP reserve on HTTP listeners.
func (s *Server) connCap(kind listenerKind) int64 {
	max := int64(s.lim().MaxConnections)
	if kind == kindHTTP {
		max += int64(s.lim().HTTPReserve)
	}
	return max
}

// errnoName names the errno inside an accept error.
func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE:
			return "EMFILE"
		case syscall.ENFILE:
			return "ENFILE"
		case syscall.ENOBUFS:
			return "ENOBUFS"
		case syscall.ENOMEM:
			return "ENOMEM"
		default:
			return fmt.Sprintf("errno_%d", int(errno))
		}
	}
	return "other"
}

// admit applies the global limits to a new socket and hands it to the
// event loop of its client IP ip (the socket's peer, or the client a PROXY
// header named); secure says it came in on a TLS listener. Over a limit
// the socket is answered and closed by the refuser (refuse.go), or closed
// at once when it is full. It returns an error only for resource
// exhaustion worth backing off for.
func (s *Server) admit(nc *net.TCPConn, kind listenerKind, tag int32, ip netip.Addr, secure bool) error {
	if clientGone(nc) {
		// Its client closed while it waited in the listen backlog (after
		// a flood, thousands do): no slot, refusal or registration.
		nc.Close()
		s.met.closed(causeGoneAtAccept)
		return nil
	}
	if !s.takeConnSlot(s.connCap(kind)) {
		s.met.rejected("max_connections")
		if s.warn.Due("limit:max-connections") {
			s.warn.Warn("limit:max-connections", "connection refused", "limit", "max-connections",
				"configured", s.lim().MaxConnections, "actual", s.active.Load(), "client_ip", ip.String(), "listener", kind.String())
		}
		s.refuseConn(nc, kind, secure, "max-connections", int64(s.lim().MaxConnections), s.active.Load())
		return nil
	}
	// New connections are refused once the budget passes its high-water
	// mark: bytes are charged as they arrive, so the budget itself can only
	// be filled by bytes that exist, and the last eighth is kept for the
	// clients already connected.
	if s.budget.NearLimit() {
		s.active.Add(-1)
		s.met.rejected("memory")
		s.warn.Warn("limit:"+limits.RequestMemoryBytes, "connection refused: memory budget exhausted", "limit", limits.RequestMemoryBytes,
			"configured", s.budget.Limit(), "actual", s.budget.Used(), "client_ip", ip.String())
		s.refuseConn(nc, kind, secure, limits.RequestMemoryBytes, s.budget.Limit(), s.budget.Used())
		return nil
	}
	// Over the process memory limit new Kafka connections are refused the
	// same way; HTTP connections are taken, so that probes still answer
	// (the HTTP gate refuses every other request with 503).
	if kind == kindKafka {
		if over, limit, used := s.processMemoryOver(); over {
			s.active.Add(-1)
			s.met.rejected("process_memory")
			s.warn.Warn("limit:"+limits.MaxProcessMemoryBytes, "connection refused: process memory limit reached", "limit", limits.MaxProcessMemoryBytes,
				"configured", limit, "actual", used, "client_ip", ip.String(), "listener", kind.String())
			s.refuseConn(nc, kind, secure, limits.MaxProcessMemoryBytes, limit, used)
			return nil
		}
	}
	if secure {
		s.startHandshake(nc, kind, tag, ip) // enrolled once its handshake is done
		return nil
	}
	s.met.connsAccepted.Inc()
	l := s.pickLoop()
	c := newConn(l, kind, ip)
	c.tag = tag
	// Registration is handed to a few registrar goroutines: the acceptor
	// goes straight back to accept(2) instead of waiting for a busy event
	// loop, so a burst of new connections does not queue in the listen
	// backlog (and meet SYN retransmits); a fixed number of registrars
	// keeps a burst from spawning a goroutine (and a stack) per socket.
	s.registrations <- registration{l: l, c: c, nc: nc, kind: kind}
	return nil
}

// refuseConn hands a refused socket to the refuser, which answers its
// first request; a TLS socket cannot be answered before a handshake the
// server will not spend on it, so it is closed (and counted unanswered).
func (s *Server) refuseConn(nc *net.TCPConn, kind listenerKind, secure bool, limit string, configured, actual int64) {
	if secure {
		s.met.refusedUnanswered.Inc()
		nc.Close()
		return
	}
	s.refuse.holdConn(nc, kind, limit, configured, actual)
}

// registration is one accepted socket on its way to its event loop.
type registration struct {
	l    *loopState
	c    *conn
	nc   net.Conn
	kind listenerKind
}

// registrars is how many sockets are handed to event loops at once.
const registrars = 16

// startRegistrars runs the goroutines that register accepted sockets.
func (s *Server) startRegistrars() {
	for i := 0; i < registrars; i++ {
		s.registrarsWG.Add(1)
		go func() {
			defer s.registrarsWG.Done()
			for r := range s.registrations {
				if err := s.enroll(r.l, r.c, r.nc); err != nil {
					s.registerFailed(r.kind, err)
				}
			}
		}()
	}
}

// registerFailed accounts a connection the event loop could not take. For
// descriptor or memory exhaustion (dup fails with EMFILE) accepting pauses
// briefly, as for a failed accept.
func (s *Server) registerFailed(kind listenerKind, err error) {
	s.active.Add(-1)
	s.met.rejected("register_failed")
	s.warn.Warn("register:"+kind.String(), "could not hand connection to the event loop", "error", err.Error())
	if isResourceErr(err) {
		s.met.counter(`floodgate_accept_errors_total{listener="` + kind.String() + `",errno="` + errnoName(err) + `"}`).Inc()
		s.acceptPause.Store(time.Now().Add(registerBackoff).UnixNano())
	}
}

// registerBackoff is the accept pause after a registration ran out of
// descriptors.
const registerBackoff = 50 * time.Millisecond

// isResourceErr reports errors of descriptor or memory exhaustion.
func isResourceErr(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == syscall.EMFILE || errno == syscall.ENFILE || errno == syscall.ENOBUFS || errno == syscall.ENOMEM
}

// takeConnSlot counts a connection in if the total stays within max.
func (s *Server) takeConnSlot(max int64) bool {
	for {
		n := s.active.Load()
		if n >= max {
			return false
		}
		if s.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// enroll registers nc with loop l, carrying c as its context. gnet dup()s
// the descriptor and closes nc in every case.
func (s *Server) enroll(l *loopState, c *conn, nc net.Conn) error {
	ctx := gnet.NewContext(context.Background(), c)
	ch, err := l.el.Enroll(ctx, nc)
	if err != nil {
		nc.Close()
		return err
	}
	res := <-ch
	if res.Err != nil {
		nc.Close()
		return res.Err
	}
	return nil
}

// pickLoop picks the event loop of a new connection, in turn: the
// connections of one IP are spread over every loop (a client with many
// connections is served by every core, not by the one its address would
// hash to); per-IP counts are the server's ipTable.
func (s *Server) pickLoop() *loopState {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	return s.loops[s.nextLoop.Add(1)%uint64(len(s.loops))]
}

func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

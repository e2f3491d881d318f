package loop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"

	"github.com/floodgate/floodgate/codec/proxyproto"
)

// Behind an L4 load balancer every connection comes from the balancer, so
// per-IP limits would count the balancer. A listener configured for the
// PROXY protocol (HAProxy's proxy-protocol.txt, v1 and v2) expects every
// connection to start with a header naming the real client, and that
// address replaces the connection's remote address everywhere (per-IP
// connections and memory share, rate limits, quotas, logs, /admin/stats).
//
// The header is read before the connection is enrolled: a connection is
// counted under its client IP when enrolled (per-IP counts and memory
// share), and the IP is known only after the header. It is read in a goroutine of
// its own, off the loops, under --proxy-protocol-timeout, with at most
// --proxy-protocol-max-pending connections waiting at once. The header has
// an exact length: it is peeked (MSG_PEEK) until its length is known, then
// exactly that many bytes are consumed, so the client's first request stays
// in the kernel's buffer for the event loop (gnet dup()s the descriptor and
// reads the socket itself).
//
// Trust: only peers in --proxy-protocol-from may send a header. The spec
// says a receiver must not guess whether a header is present, so a
// connection from any other peer on a PROXY listener is refused (closed
// and counted) rather than served as a direct client: a direct client
// could otherwise claim any address, and a balancer's connection would be
// read as a request. A malformed header from a trusted peer is refused the
// same way (logged, rate-limited).

// ProxyConfig says which listeners expect the PROXY protocol and which
// peers are trusted to name the client (in a PROXY header, and in
// X-Forwarded-For on HTTP).
type ProxyConfig struct {
	// Kafka: every Kafka listener (the main one and AddKafkaListener's)
	// expects a PROXY header on each connection.
	Kafka bool
	// HTTP: the HTTP listener expects a PROXY header on each connection.
	HTTP bool
	// From are the peers trusted to send a PROXY header or an
	// X-Forwarded-For header; empty trusts nobody.
	From []netip.Prefix
}

// Trusts reports whether ip is a trusted proxy.
func (p *ProxyConfig) Trusts(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, pre := range p.From {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// expects reports whether the listener of kind expects a PROXY header.
func (p *ProxyConfig) expects(kind listenerKind) bool {
	if kind == kindHTTP {
		return p.HTTP
	}
	return p.Kafka
}

// proxyMaxV2 bounds a version 2 header, TLVs included: balancers send tens
// of bytes (AWS: the VPC endpoint id, GCP and Azure: a link id), HAProxy a
// few hundred with its SSL TLVs.
const proxyMaxV2 = 4096

// Why a connection on a PROXY listener was refused before enrolment, as
// floodgate_connections_rejected_total's reason.
const (
	proxyUntrusted = "proxy_untrusted"
	proxyPending   = "proxy_pending"
	proxyTimeout   = "proxy_timeout"
	proxyMalformed = "proxy_malformed"
	proxyClosed    = "proxy_closed"
)

// proxyMetrics makes the PROXY protocol's series (only when it is on).
func (m *serverMetrics) proxyMetrics(s *Server) {
	m.set.NewGauge("floodgate_proxy_protocol_pending", func() float64 { return float64(s.proxyPending.Load()) })
	m.rejectedBy = map[string]*metrics.Counter{}
	for _, r := range []string{proxyUntrusted, proxyPending, proxyTimeout, proxyMalformed, proxyClosed} {
		m.rejectedBy[r] = m.set.GetOrCreateCounter(`floodgate_connections_rejected_total{reason="` + r + `"}`)
	}
}

// acceptProxied takes a new connection on a PROXY listener: it checks the
// peer and hands the connection to a goroutine that reads its header and
// then admits it under the client's address.
func (s *Server) acceptProxied(nc *net.TCPConn, kind listenerKind, tag int32, secure bool) {
	peer := remoteIP(nc)
	if !s.cfg.Proxy.Trusts(peer) {
		s.met.rejected(proxyUntrusted) // counted before the peer can see the close
		_ = nc.Close()
		key := "proxy:untrusted:kafka" // constant: no string built per refusal in a flood
		if kind == kindHTTP {
			key = "proxy:untrusted:http"
		}
		if s.warn.Due(key) {
			s.warn.Warn(key, "connection refused: peer not in --proxy-protocol-from on a PROXY protocol listener",
				"listener", kind.String(), "peer", peer.String())
		}
		return
	}
	max := int64(s.lim().ProxyProtocolMaxPending)
	for {
		n := s.proxyPending.Load()
		if n >= max {
			s.met.rejected(proxyPending)
			_ = nc.Close()
			if key := "limit:proxy-protocol-max-pending"; s.warn.Due(key) {
				s.warn.Warn(key, "connection refused: too many connections waiting for their PROXY header",
					"limit", "proxy-protocol-max-pending", "configured", max, "actual", n, "peer", peer.String(), "listener", kind.String())
			}
			return
		}
		if s.proxyPending.CompareAndSwap(n, n+1) {
			break
		}
	}
	if !s.trackPending(nc) { // stopping
		s.proxyPending.Add(-1)
		_ = nc.Close()
		return
	}
	// The acceptor holds a count of s.acceptors, so this Add cannot race
	// Stop's Wait; Stop waits for the header readers before it closes the
	// registrations.
	s.acceptors.Add(1)
	go func() {
		defer s.acceptors.Done()
		ip, err := s.readProxyHeader(nc, peer)
		s.untrackPending(nc)
		s.proxyPending.Add(-1)
		if err != nil {
			s.proxyRefused(kind, peer, err)
			_ = nc.Close()
			return
		}
		if s.stopping.Load() {
			_ = nc.Close()
			return
		}
		if err := s.admit(nc, kind, tag, ip, secure); err != nil {
			s.registerFailed(kind, err)
		}
	}()
}

// proxyRefused counts and logs a connection whose header was refused.
func (s *Server) proxyRefused(kind listenerKind, peer netip.Addr, err error) {
	reason := proxyMalformed
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = proxyTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, unix.ECONNRESET), errors.Is(err, net.ErrClosed):
		// The peer left (a balancer's TCP health check connects and
		// closes) or the server is stopping: counted, not logged.
		s.met.rejected(proxyClosed)
		return
	}
	s.met.rejected(reason)
	if key := "proxy:" + reason + ":" + peer.String(); s.warn.Due(key) {
		s.warn.Warn(key, "connection refused: bad PROXY protocol header", "reason", reason, "listener", kind.String(),
			"peer", peer.String(), "error", err.Error(), "timeout", s.lim().ProxyProtocolTimeout.String())
	}
}

// readProxyHeader reads the PROXY header of nc, exactly its bytes, within
// --proxy-protocol-timeout, and returns the client's IP (the peer's own
// for a LOCAL or UNKNOWN header).
//
// Bytes are peeked, and consumed only when they are known to be header:
// all of them while the header's end is not among them (a header prefix
// is all header), exactly up to its end once it is. Consuming the prefix
// keeps the socket's buffer empty between reads, so a peer that leaves
// mid-header is seen at once (recv returns 0) instead of at the deadline.
func (s *Server) readProxyHeader(nc *net.TCPConn, peer netip.Addr) (netip.Addr, error) {
	if err := nc.SetReadDeadline(time.Now().Add(s.lim().ProxyProtocolTimeout)); err != nil {
		return netip.Addr{}, fmt.Errorf("proxy header deadline: %w", err)
	}
	raw, err := nc.SyscallConn()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("proxy header: %w", err)
	}
	// Version 1 is told from at most MaxV1 bytes, version 2 from 16; one
	// more byte shows a v1 line that goes on past its bound.
	var buf [proxyproto.MaxV1 + 1]byte
	have, total := 0, 0
	for {
		var m int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, e := unix.Recvfrom(int(fd), buf[have:], unix.MSG_PEEK)
			for e == unix.EINTR {
				n, _, e = unix.Recvfrom(int(fd), buf[have:], unix.MSG_PEEK)
			}
			switch {
			case e == unix.EAGAIN:
				return false
			case e != nil:
				rerr = e
			case n == 0:
				rerr = io.EOF
			}
			m = n
			return true
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return netip.Addr{}, fmt.Errorf("proxy header after %d bytes: %w", have, err)
		}
		total, err = proxyproto.Len(buf[:have+m], proxyMaxV2)
		if err == nil {
			break
		}
		if !errors.Is(err, proxyproto.ErrIncomplete) {
			return netip.Addr{}, fmt.Errorf("proxy header %q: %w", truncate(buf[:have+m], 32), err)
		}
		// All header: consume them (they are in the socket's buffer).
		if _, err := io.ReadFull(nc, buf[have:have+m]); err != nil {
			return netip.Addr{}, fmt.Errorf("proxy header after %d bytes: %w", have, err)
		}
		have += m
	}
	hb := buf[:]
	if total > len(hb) {
		hb = make([]byte, total)
		copy(hb, buf[:have])
	}
	if _, err := io.ReadFull(nc, hb[have:total]); err != nil {
		return netip.Addr{}, fmt.Errorf("proxy header of %d bytes: %w", total, err)
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return netip.Addr{}, fmt.Errorf("proxy header deadline: %w", err)
	}
	h, err := proxyproto.Parse(hb[:total])
	if err != nil {
		return netip.Addr{}, fmt.Errorf("proxy header %q: %w", truncate(hb[:total], 64), err)
	}
	if h.Local {
		return peer, nil
	}
	return h.Source.Addr().Unmap(), nil
}

// truncate returns at most n bytes of b, for a log line.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// trackPending records a connection waiting for its header, so that Stop
// can close it; false when the server is stopping.
func (s *Server) trackPending(nc *net.TCPConn) bool {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if s.stopping.Load() {
		return false
	}
	if s.pendingConns == nil {
		s.pendingConns = make(map[*net.TCPConn]struct{})
	}
	s.pendingConns[nc] = struct{}{}
	return true
}

func (s *Server) untrackPending(nc *net.TCPConn) {
	s.pendingMu.Lock()
	delete(s.pendingConns, nc)
	s.pendingMu.Unlock()
}

// closePending closes every connection still waiting for its header (at
// Stop): their readers return at once instead of at their deadline.
func (s *Server) closePending() {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for nc := range s.pendingConns {
		_ = nc.Close()
	}
}

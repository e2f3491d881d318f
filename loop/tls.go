package loop

// TLS on the event loop, with Go's crypto/tls and nothing else.
//
// The handshake runs off the loop, in a goroutine per connection (at most
// --max-tls-handshakes at once, each bounded by --tls-handshake-timeout),
// on the socket itself. Once it is done the socket is enrolled into its
// event loop like a plaintext one, and the record layer runs on the loop
// through recordConn, a net.Conn backed by the bytes gnet delivered:
//
//   - reading: OnTraffic hands gnet's ciphertext to recordConn and calls
//     tls.Conn.Read until recordConn has nothing left, when it answers a
//     temporary net.Error. crypto/tls (conn.go readRecordOrCCS) keeps a
//     partial record in its rawInput and does not poison the connection
//     on a temporary error, so the next call resumes where it stopped.
//     The plaintext goes to the connection's carry, which frame peeking,
//     limits, parking and everything else already read first: from there
//     on a TLS connection is a plaintext one.
//   - writing: each response is sealed when it joins the output queue
//     (collect), by tls.Conn.Write into a pooled buffer that recordConn
//     appends to; the queue then holds ciphertext, charged to the budget
//     like the plaintext it replaces, and is written by writev on the loop
//     or by the park goroutine as any other output. recordConn never
//     fails a write: crypto/tls would poison the connection's output for
//     good on a write error (writeRecordLocked, out.setErrorLocked).
//
// A parked TLS connection keeps its tls.Conn (in connExt): the park
// goroutine seals what finishes meanwhile and writes it to the socket.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// connExt is the state of a connection's rarely used features, behind one
// pointer of connBusy (nil on a plaintext connection): an idle plaintext
// connection pays nothing for them (conn is at its size class's limit).
// Put other per-connection features (PROXY protocol, SASL) here rather
// than in conn.
type connExt struct {
	tls *tlsState
}

// tlsState is the TLS session of one connection.
type tlsState struct {
	tc *tls.Conn
	rc *recordConn
	// subject is the verified client certificate's subject (mutual TLS),
	// or "": the client's principal when SASL is off.
	subject string
	// carryScratch: the connection's carry points into its loop's
	// scratch buffer, which the next connection of the loop overwrites.
	carryScratch bool
}

// recordScan follows TLS record boundaries in a byte stream: a record is
// a 5-byte header (type, version, length) and length bytes.
type recordScan struct {
	hdr  [5]byte
	hdrN uint8 // header bytes seen of the current record
	left int   // body bytes still to come of the current record
}

// feed advances over b.
func (r *recordScan) feed(b []byte) {
	for len(b) > 0 {
		if r.hdrN < 5 {
			n := copy(r.hdr[r.hdrN:], b)
			r.hdrN += uint8(n)
			b = b[n:]
			if r.hdrN == 5 {
				r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
			}
		} else {
			n := min(r.left, len(b))
			r.left -= n
			b = b[n:]
		}
		if r.hdrN == 5 && r.left == 0 {
			r.hdrN = 0
		}
	}
}

// held returns the bytes of the incomplete record seen so far.
func (r *recordScan) held() int {
	if r.hdrN < 5 {
		return int(r.hdrN)
	}
	return 5 + (int(r.hdr[3])<<8 | int(r.hdr[4])) - r.left
}

// tlsHeld returns the input bytes tls holds for the connection (an
// incomplete record), 0 on a plaintext connection.
func (c *conn) tlsHeld() int {
	if t := c.tlsOf(); t != nil {
		return t.rc.partial.held()
	}
	return 0
}

// tlsOf returns the connection's TLS state, or nil.
func (c *conn) tlsOf() *tlsState {
	if c.connBusy == nil || c.ext == nil {
		return nil
	}
	return c.ext.tls
}

// errWouldBlock is recordConn's answer when it holds no bytes: a
// temporary error, which crypto/tls passes up without failing the session.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tls record layer: no bytes buffered" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// recordConn is the net.Conn under a tls.Conn. During the handshake it is
// the socket (nc); on the loop it reads the ciphertext gnet delivered (in)
// and appends the records tls writes to out.
type recordConn struct {
	nc     net.Conn
	in     []byte
	out    *[]byte
	stray  *[]byte // records written outside a seal (alerts, key updates)
	bufs   *bufPool
	local  net.Addr
	remote net.Addr
	// partial follows the record boundaries of every byte tls read, from
	// the handshake on, so that the bytes of an incomplete record tls
	// keeps (in its rawInput) are charged to the connection like any
	// input it holds.
	partial recordScan
}

func (r *recordConn) Read(p []byte) (int, error) {
	if r.nc != nil {
		n, err := r.nc.Read(p)
		r.partial.feed(p[:n])
		return n, err
	}
	if len(r.in) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, r.in)
	r.in = r.in[n:]
	r.partial.feed(p[:n])
	return n, nil
}

func (r *recordConn) Write(p []byte) (int, error) {
	if r.nc != nil {
		return r.nc.Write(p)
	}
	out := r.out
	if out == nil {
		if r.stray == nil {
			r.stray = r.bufs.get()
		}
		out = r.stray
	}
	*out = append(*out, p...)
	return len(p), nil
}

func (r *recordConn) Close() error {
	if r.nc != nil {
		return r.nc.Close()
	}
	return nil
}

func (r *recordConn) LocalAddr() net.Addr  { return r.local }
func (r *recordConn) RemoteAddr() net.Addr { return r.remote }

func (r *recordConn) SetDeadline(t time.Time) error {
	if r.nc != nil {
		return r.nc.SetDeadline(t)
	}
	return nil
}

func (r *recordConn) SetReadDeadline(t time.Time) error {
	if r.nc != nil {
		return r.nc.SetReadDeadline(t)
	}
	return nil
}

func (r *recordConn) SetWriteDeadline(t time.Time) error {
	if r.nc != nil {
		return r.nc.SetWriteDeadline(t)
	}
	return nil
}

// startHandshake takes an admitted socket of a TLS listener: its handshake
// runs in a goroutine of its own, unless --max-tls-handshakes are running
// and none is old enough to give its place (tls_slots.go), when it is
// closed at once (nothing can be answered before a handshake).
func (s *Server) startHandshake(nc *net.TCPConn, kind listenerKind, tag int32, ip netip.Addr) {
	p := &pendingHandshake{nc: nc, start: time.Now()}
	if !s.tlsSlots.admit(p, s.lim().MaxTLSHandshakes, evictAge(s.lim().TLSHandshakeTimeout)) {
		s.active.Add(-1)
		s.met.rejected("max_tls_handshakes")
		s.warn.Warn("limit:max-tls-handshakes", "connection refused: too many TLS handshakes running", "limit", "max-tls-handshakes",
			"configured", s.lim().MaxTLSHandshakes, "actual", s.tlsSlots.running(), "client_ip", ip.String(), "listener", kind.String())
		nc.Close()
		return
	}
	s.handshakes.Add(1)
	go func() {
		defer s.handshakes.Done()
		s.handshake(p, kind, tag, ip)
	}()
}

// handshake runs the TLS handshake of nc and enrolls the connection into
// its event loop.
func (s *Server) handshake(p *pendingHandshake, kind listenerKind, tag int32, ip netip.Addr) {
	nc := p.nc
	rc := &recordConn{nc: nc, bufs: &s.bufs, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	tc := tls.Server(rc, s.cfg.TLS)
	// The deadline bounds the handshake; the context ends it at Stop.
	_ = nc.SetDeadline(time.Now().Add(s.lim().TLSHandshakeTimeout))
	err := tc.HandshakeContext(s.stopCtx)
	evicted := s.tlsSlots.done(p)
	if err != nil && evicted {
		err = fmt.Errorf("%w: %w", errEvicted, err)
	}
	if err == nil && s.stopping.Load() {
		err = fmt.Errorf("server stopping: %w", context.Canceled)
	}
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		reason := handshakeFailure(err)
		s.met.counter(`floodgate_tls_handshake_failures_total{reason="` + reason + `"}`).Inc()
		s.warn.Warn("tls:handshake:"+reason, "TLS handshake failed; connection closed", "reason", reason,
			"client_ip", ip.String(), "listener", kind.String(), "error", err.Error())
		nc.Close()
		s.active.Add(-1)
		return
	}
	s.met.tlsHandshakes.Inc()
	// From here tls reads what the loop hands it; the socket goes to gnet
	// (enroll closes nc after duplicating it). Bytes tls read past the
	// handshake stay in its rawInput: open wakes the connection for them.
	rc.nc = nil
	st := &tlsState{tc: tc, rc: rc}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		st.subject = certs[0].Subject.String()
		// Once a second per subject: a client reconnecting in a loop
		// must not flood the log.
		if s.warn.Allow("tls:subject:" + st.subject) {
			s.log.Info("mutual TLS client", "client_ip", ip.String(), "subject", st.subject, "listener", kind.String())
		}
	}
	l := s.pickLoop()
	c := newConn(l, kind, ip)
	c.tag = tag
	c.busy().ext = &connExt{tls: st} // not shared yet: enroll publishes it
	s.met.connsAccepted.Inc()
	s.tlsActive.Add(1)
	if err := s.enroll(l, c, nc); err != nil {
		s.tlsActive.Add(-1)
		s.registerFailed(kind, err)
	}
}

// errEvicted marks a handshake that gave its place to a newer one.
var errEvicted = errors.New("handshake evicted by a newer connection at --max-tls-handshakes")

// handshakeFailure names why a handshake failed, for the metric's label.
func handshakeFailure(err error) string {
	var rh tls.RecordHeaderError
	var verr *tls.CertificateVerificationError
	var alert tls.AlertError
	var uerr x509.UnknownAuthorityError
	msg := err.Error()
	switch {
	case errors.Is(err, errEvicted):
		return "evicted"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "shutdown"
	case errors.As(err, &rh):
		return "not_tls"
	case errors.As(err, &verr), errors.As(err, &uerr):
		return "bad_certificate"
	case strings.Contains(msg, "didn't provide a certificate"):
		return "no_client_certificate"
	case strings.Contains(msg, "protocol version"), strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "no cipher suite"), strings.Contains(msg, "no mutual"):
		return "no_common_version_or_cipher"
	case errors.As(err, &alert):
		return "client_alert"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "client_closed"
	}
	return "other"
}

// tlsRead decrypts what gnet delivered into the connection's carry, where
// the Kafka and HTTP readers find it. It returns Close when the session
// ended (close_notify) or failed.
func (c *conn) tlsRead(gc gnet.Conn, t *tlsState) gnet.Action {
	l := c.loop
	if gc.InboundBuffered() > 0 {
		b, err := gc.Peek(-1)
		if err == nil {
			t.rc.in = b
		}
	}
	dst := l.tlsBuf[:0]
	var rerr error
	for {
		if cap(dst)-len(dst) < tlsReadMin {
			grown := make([]byte, len(dst), 2*cap(dst)+tlsReadMin)
			copy(grown, dst)
			dst = grown
		}
		n, err := t.tc.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err != nil {
			if err != errWouldBlock {
				rerr = err
			}
			break
		}
	}
	l.tlsBuf = dst[:0]
	t.rc.in = nil
	_, _ = gc.Discard(-1)
	if len(dst) > 0 {
		if len(c.carry) == 0 {
			c.carry = dst
			t.carryScratch = true
		} else {
			c.carry = append(c.carry, dst...)
		}
	}
	c.queueStray(t)
	if rerr != nil {
		c.closeReason = causeTLSClosed
		if !errors.Is(rerr, io.EOF) {
			c.closeReason = causeTLSError
			l.s.warn.Warn("tls:record:"+c.addr(), "TLS record error; closing connection", "client_ip", c.addr(), "error", rerr.Error())
		}
		_, _ = c.writeOut(gc.Fd()) // an alert tls queued, best effort
		return gnet.Close
	}
	return gnet.None
}

// tlsReadMin is the room kept for one tls.Conn.Read: a whole record.
const tlsReadMin = 16<<10 + 256

// ownCarry copies the carry out of the loop's scratch buffer before
// another connection of the loop reuses it.
func (c *conn) ownCarry() {
	t := c.tlsOf()
	if t == nil || !t.carryScratch {
		return
	}
	t.carryScratch = false
	if len(c.carry) > 0 {
		c.carry = append([]byte(nil), c.carry...)
	}
}

// queueStray puts what tls wrote outside a seal (an alert, a key update)
// on the output queue.
func (c *conn) queueStray(t *tlsState) {
	b := t.rc.stray
	if b == nil {
		return
	}
	t.rc.stray = nil
	if len(*b) == 0 {
		c.loop.s.bufs.put(b)
		return
	}
	c.forceOut(b)
	c.out = append(c.out, *b)
	c.outBufs = append(c.outBufs, b)
}

// sealFrom encrypts the responses queued from index start on: each
// plaintext buffer is replaced by its records, and the budget charge moves
// from the one to the other. Only the connection's owner (the loop, or the
// park goroutine) calls it.
func (c *conn) sealFrom(start int) {
	t := c.tlsOf()
	if t == nil {
		return
	}
	s := c.loop.s
	for i := start; i < len(c.out); i++ {
		plain := c.outBufs[i]
		sealed := s.bufs.get()
		// Room for the records' overhead (header, tag, padding), so the
		// buffer grows once.
		if need := len(*plain) + (len(*plain)/(16<<10)+1)*tlsRecordOverhead; cap(*sealed) < need {
			*sealed = make([]byte, 0, need)
		}
		t.rc.out = sealed
		_, err := t.tc.Write(*plain)
		t.rc.out = nil
		if err != nil {
			// Nothing the loop does fails a write; an error here means
			// the session is already broken.
			s.bufs.put(sealed)
			c.closeAsync(causeTLSError)
			return
		}
		c.forceOut(sealed)
		s.budget.ReleaseFor(c.share, int64(len(*plain)))
		s.bufs.put(plain)
		c.out[i], c.outBufs[i] = *sealed, sealed
	}
	c.queueStray(t)
}

// tlsRecordOverhead bounds what one record adds to its plaintext: header,
// explicit nonce, MAC or tag, and CBC padding.
const tlsRecordOverhead = 5 + 16 + 48 + 256

// tlsClosed counts a TLS connection out once it is closed for good.
func (c *conn) tlsClosed() {
	if c.tlsOf() != nil {
		c.loop.s.tlsActive.Add(-1)
	}
}

// tlsSubject returns the verified client certificate subject of a
// connection (mutual TLS), or "".
func (c *conn) tlsSubject() string {
	if t := c.tlsOf(); t != nil {
		return t.subject
	}
	return ""
}

package loop

// SASL on the Kafka listener: SaslHandshake v0-v1 and SaslAuthenticate
// v0-v2 (and, with SASL on, ApiVersions, which must list them) are
// answered here, before any handler, so the embedded broker and the
// gateway (whose clients authenticate to floodgate, not to the upstream)
// share one implementation and one per-connection state.
//
// What an unauthenticated client can hold, with --auth-required: its
// connection slot, one frame of at most maxSASLFrame bytes at a time
// (Kafka's sasl.server.max.receive.size), and one SASL exchange, for at
// most --sasl-authentication-timeout from its opening. Any other request
// before authentication closes the connection at its header, before its
// body is buffered, as Kafka does. A failed authentication is answered
// SASL_AUTHENTICATION_FAILED after --sasl-failed-authentication-delay, and
// the connection closed; an address with too many recent failures is
// refused without its credentials being checked (auth.Authenticator).
//
// SaslHandshake v0 is served too, with the bare SASL tokens that follow it
// (a 4-byte length and the token, no Kafka header; readSASLToken):
// librdkafka (kcat) enables SASL only when ApiVersions lists SaslHandshake
// v0, and old clients (sarama before 1.40.2, kafka-python 2.0) send it.
//
// Not served: re-authentication (KIP-368). SaslAuthenticate answers
// session_lifetime_ms = 0, so clients never re-authenticate, and a second
// handshake on an authenticated connection is ILLEGAL_SASL_STATE and
// closes it.

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/auth"
	"github.com/floodgate/floodgate/codec/kafka"
)

// Keys of the APIs the loop serves itself when SASL is on.
const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// errTooManyFailures refuses an authentication from an address that
// failed too often lately, without checking it.
var errTooManyFailures = errors.New("too many failed authentications from this address; retry later")

// maxSASLFrame bounds a frame from a client that is not yet authenticated
// (Kafka's sasl.server.max.receive.size default).
const maxSASLFrame = 512 << 10

// connSASL is a connection's authentication state, allocated at its first
// SaslHandshake; a connection without one is not authenticated. Requests
// of one connection run one after the other, so only the worker running
// the connection's current request touches session and user (user is read
// elsewhere only once authed is set); the event loop reads authed and raw.
type connSASL struct {
	authed  atomic.Bool
	raw     atomic.Bool  // after a SaslHandshake v0: tokens come without a Kafka header
	session auth.Session // between the handshake and the last step
	mech    string
	user    string // set before authed
}

// authenticated reports whether the connection completed SASL.
func (c *conn) authenticated() bool {
	if c.connBusy == nil {
		return false
	}
	st := c.sasl.Load()
	return st != nil && st.authed.Load()
}

// user returns the authenticated user's name, or "" (anonymous).
func (c *conn) user() string {
	if c.connBusy == nil {
		return ""
	}
	if st := c.sasl.Load(); st != nil && st.authed.Load() {
		return st.user
	}
	// Under mutual TLS without SASL the verified certificate's subject
	// is the principal, as in Kafka's SSL listeners.
	return c.tlsSubject()
}

// VersionRange reports the versions served on the Kafka listener: the
// handler's, and the SASL APIs when SASL is on.
func (s *Server) VersionRange(key int16) (min, max int16, ok bool) {
	if s.cfg.SASL != nil {
		switch key {
		case saslHandshakeKey:
			return 0, 1, true
		case saslAuthenticateKey:
			return 0, 2, true
		}
	}
	return s.cfg.Kafka.VersionRange(key)
}

// gateSASL checks a frame's header on a connection that is not
// authenticated, on the event loop, before its body is read: it returns a
// reason to close the connection, or "".
func (c *conn) gateSASL(h *kafka.Header, length int32) closeCause {
	s := c.loop.s
	if s.cfg.SASL == nil || c.authenticated() {
		return causeNone
	}
	saslAPI := h.APIKey == saslHandshakeKey || h.APIKey == saslAuthenticateKey
	if !saslAPI && !s.cfg.AuthRequired {
		return causeNone // anonymous clients are served
	}
	if int64(length) > maxSASLFrame {
		s.met.counter(`floodgate_sasl_refused_total{reason="frame_too_large"}`).Inc()
		s.warn.Warn("sasl:frame", "frame too large before authentication; closing connection", "limit", "sasl-max-receive-size",
			"configured", maxSASLFrame, "actual", length, "client_ip", c.addr(), "api", kmsg.NameForKey(h.APIKey))
		return causeUnauthenticated
	}
	if s.cfg.AuthRequired && c.pending() >= maxUnauthenticatedPending {
		// Clients wait for each step of the exchange; one that pipelines
		// requests before it authenticated is not a client to serve.
		c.refuseUnauthenticated(h.APIKey)
		return causeUnauthenticated
	}
	if saslAPI || h.APIKey == apiVersionsKey {
		return causeNone
	}
	if c.pending() > 0 {
		// An authentication may be running: the worker decides, in order.
		return causeNone
	}
	c.refuseUnauthenticated(h.APIKey)
	return causeUnauthenticated
}

// refuseUnauthenticated counts and logs a request sent before
// authentication with --auth-required.
func (c *conn) refuseUnauthenticated(key int16) {
	s := c.loop.s
	s.met.counter(`floodgate_sasl_refused_total{reason="unauthenticated"}`).Inc()
	s.warn.Warn("sasl:unauthenticated", "request before SASL authentication; closing connection", "limit", "auth-required",
		"client_ip", c.addr(), "api", kmsg.NameForKey(key))
}

// serveSASL answers the APIs the loop serves itself when SASL is on and
// refuses, with --auth-required, any other request of a connection that
// is not authenticated. It reports whether it took the request.
func (r *kafkaRequest) serveSASL() bool {
	c, s, h := r.c, r.c.loop.s, &r.hdr
	switch h.APIKey {
	case saslHandshakeKey, saslAuthenticateKey, apiVersionsKey:
	default:
		if !s.cfg.AuthRequired || c.authenticated() {
			return false
		}
		c.refuseUnauthenticated(h.APIKey)
		r.closeWithoutAnswer(causeUnauthenticated)
		return true
	}
	req, err := kafka.DecodeRequestLimited(h, r.frame[h.Size:], kafka.DecodeLimits{MaxNonProduceSize: maxSASLFrame})
	if err != nil {
		s.met.malformed.Inc()
		s.warn.Warn("malformed:"+c.addr(), "malformed SASL request; closing connection", "api", kmsg.NameForKey(h.APIKey),
			"client_ip", c.addr(), "error", err.Error())
		r.closeWithoutAnswer(causeMalformed)
		return true
	}
	r.req = req
	switch req := req.(type) {
	case *kmsg.ApiVersionsRequest:
		r.respond(kafka.APIVersionsResponse(s, req.GetVersion(), kafka.ErrNone))
	case *kmsg.SASLHandshakeRequest:
		r.saslHandshake(req)
	case *kmsg.SASLAuthenticateRequest:
		r.saslAuthenticate(req)
	}
	return true
}

// closeWithoutAnswer drops the request and closes its connection.
func (r *kafkaRequest) closeWithoutAnswer(reason closeCause) {
	if r.claim() {
		r.charge.Release()
		r.frame = nil
		r.c.complete(r.seq, nil)
	}
	r.c.closeAsync(reason)
}

// saslHandshake chooses the connection's mechanism.
func (r *kafkaRequest) saslHandshake(req *kmsg.SASLHandshakeRequest) {
	c, s := r.c, r.c.loop.s
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = s.cfg.SASL.Mechanisms()
	st := c.sasl.Load()
	if st != nil && (st.authed.Load() || st.session != nil) {
		r.saslRefuse(resp, &resp.ErrorCode, kerr.IllegalSaslState.Code, causeSASLHandshakeRepeated, "SaslHandshake repeated")
		return
	}
	sess, ok := s.cfg.SASL.Start(req.Mechanism)
	if !ok {
		r.saslRefuse(resp, &resp.ErrorCode, kerr.UnsupportedSaslMechanism.Code, causeSASLUnsupportedMechanism, "SASL mechanism not enabled: "+req.Mechanism)
		return
	}
	if st == nil {
		st = new(connSASL)
		c.sasl.Store(st)
	}
	st.session, st.mech = sess, req.Mechanism
	if req.GetVersion() == 0 {
		// The tokens follow without a Kafka header (KIP-43); set before
		// the answer leaves, so the event loop reads them as such.
		st.raw.Store(true)
	}
	r.respond(resp)
}

// saslRefuse answers a SASL request with code and closes the connection
// after the answer, as Kafka does.
func (r *kafkaRequest) saslRefuse(resp kmsg.Response, field *int16, code int16, cause closeCause, msg string) {
	reason := strings.TrimPrefix(cause.String(), "sasl_")
	c, s := r.c, r.c.loop.s
	*field = code
	s.met.counter(`floodgate_sasl_refused_total{reason="` + reason + `"}`).Inc()
	s.warn.Warn("sasl:"+reason, "SASL refused; closing connection", "reason", msg, "client_ip", c.addr())
	r.respond(resp)
	c.closeAsync(cause)
}

// saslAuthenticate takes one step of the connection's SASL exchange.
func (r *kafkaRequest) saslAuthenticate(req *kmsg.SASLAuthenticateRequest) {
	c, s := r.c, r.c.loop.s
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	st := c.sasl.Load()
	if st == nil || st.session == nil || st.authed.Load() {
		msg := "SaslAuthenticate before SaslHandshake"
		resp.ErrorMessage = &msg
		r.saslRefuse(resp, &resp.ErrorCode, kerr.IllegalSaslState.Code, causeSASLIllegalState, msg)
		return
	}
	now := time.Now()
	if s.cfg.SASL.Blocked(c.addr(), now) {
		st.session = nil
		r.saslFailed(resp, st, errTooManyFailures)
		return
	}
	out, done, err := st.session.Step(req.SASLAuthBytes)
	if err != nil {
		st.session = nil
		s.cfg.SASL.Failed(c.addr(), now)
		r.saslFailed(resp, st, err)
		return
	}
	resp.SASLAuthBytes = out
	if done {
		st.user = st.session.Principal()
		st.session = nil
		st.authed.Store(true)
		s.met.counter(`floodgate_sasl_authenticated_total{mechanism="` + st.mech + `"}`).Inc()
		s.log.Debug("SASL authenticated", "user", st.user, "mechanism", st.mech, "client_ip", c.addr())
	}
	r.respond(resp)
}

// saslFailed answers a failed authentication after the configured delay,
// then closes the connection. The frame is let go at once: the delay holds
// only a timer and the small answer.
func (r *kafkaRequest) saslFailed(resp *kmsg.SASLAuthenticateResponse, st *connSASL, err error) {
	c, s := r.c, r.c.loop.s
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	msg := "Authentication failed: invalid credentials"
	if !errors.Is(err, auth.ErrBadCredentials) {
		msg = "Authentication failed: " + err.Error()
	}
	resp.ErrorMessage = &msg
	s.met.counter(`floodgate_sasl_authentication_failed_total`).Inc()
	s.warn.Warn("sasl:failed:"+c.addr(), "SASL authentication failed; closing connection", "limit", "sasl-failed-authentication-delay",
		"configured_ms", s.lim().SASLFailedAuthenticationDelay.Milliseconds(), "mechanism", st.mech, "client_ip", c.addr(), "error", err.Error())
	r.releaseFrame()
	answer := func() {
		r.respond(resp)
		c.closeAsync(causeAuthFailed)
	}
	if d := s.lim().SASLFailedAuthenticationDelay; d > 0 {
		time.AfterFunc(d, answer)
		return
	}
	answer()
}

// watchAuth closes c at its authentication deadline unless it
// authenticated by then.
func (l *loopState) watchAuth(c *conn, deadline int64) {
	l.auths.add(c, deadline)
}

// expireAuths closes connections that did not authenticate in time.
func (l *loopState) expireAuths(now int64) {
	l.auths.expire(l, now, (*loopState).authOver)
}

// authOver closes c if it has not authenticated (and is still open).
func (l *loopState) authOver(c *conn) {
	if c.authenticated() || c.isClosed() {
		return
	}
	l.s.met.counter(`floodgate_sasl_refused_total{reason="timeout"}`).Inc()
	l.s.warn.Warn("limit:sasl-authentication-timeout", "not authenticated in time; closing connection",
		"limit", "sasl-authentication-timeout", "configured_ms", l.s.lim().SASLAuthenticationTimeout.Milliseconds(),
		"client_ip", c.addr())
	if c.gc != nil {
		c.closeReason = causeAuthTimeout
		_ = l.el.Close(c.gc)
	} else if c.connBusy != nil {
		c.closeAsync(causeAuthTimeout) // parked: its park goroutine closes it
	}
}

// maxUnauthenticatedPending bounds the requests a connection may have in
// flight before it authenticated (with --auth-required): ApiVersions,
// SaslHandshake and SaslAuthenticate, if a client sent them together.
const maxUnauthenticatedPending = 3

// maxSASLToken bounds a SASL token sent without a Kafka header after a
// SaslHandshake v0: PLAIN and SCRAM messages are well under 1 KiB.
const maxSASLToken = 8 << 10

// readSASLToken reads one SASL token frame (a 4-byte length and the token,
// no Kafka header: what follows a SaslHandshake v0, KIP-43) and hands it to
// the pool. Only one is read at a time: the client waits for the answer
// before it sends the next message, so bytes beyond one frame while one is
// running are a client that does not speak SASL (closed once they exceed
// a frame).
func (c *conn) readSASLToken(in input) (gnet.Action, bool) {
	avail := in.avail()
	if c.pending() > 0 {
		if avail > kafka.LengthSize+maxSASLToken {
			c.closeReason = causeUnauthenticated
			return gnet.Close, false
		}
		return gnet.None, false
	}
	if avail < kafka.LengthSize {
		return gnet.None, false
	}
	length := kafka.FrameLength(in.peek(kafka.LengthSize))
	if length < 0 || length > maxSASLToken {
		c.loop.s.met.counter(`floodgate_sasl_refused_total{reason="frame_too_large"}`).Inc()
		c.loop.s.warn.Warn("sasl:frame", "SASL token too large; closing connection", "limit", "sasl-max-token-size",
			"configured", maxSASLToken, "actual", length, "client_ip", c.addr())
		c.closeReason = causeUnauthenticated
		return gnet.Close, false
	}
	if avail < kafka.LengthSize+int(length) {
		return gnet.None, false
	}
	tok := make([]byte, length)
	in.discard(kafka.LengthSize)
	in.read(tok)
	c.loop.s.met.bytesIn.Add(len(tok) + kafka.LengthSize)
	j := &saslTokenJob{c: c, token: tok}
	j.seq = c.reserveSeq()
	if !c.submit(j) {
		c.pendingJob = j
		return c.park(in.gc, "max_queued_requests"), false
	}
	return gnet.None, true
}

// inRawSASL reports whether the connection's next frame is a bare SASL
// token (after a SaslHandshake v0).
func (c *conn) inRawSASL() bool {
	if c.connBusy == nil {
		return false
	}
	st := c.sasl.Load()
	return st != nil && st.raw.Load()
}

// saslTokenJob is one bare SASL token on the pool.
type saslTokenJob struct {
	c     *conn
	seq   uint64
	token []byte
	once  atomic.Bool
}

func (j *saslTokenJob) owner() *conn { return j.c }

func (j *saslTokenJob) abandon() {
	if j.once.CompareAndSwap(false, true) {
		j.c.complete(j.seq, nil)
	}
}

// run takes one step of the exchange and answers with a bare token frame,
// as Kafka does (an empty one when the mechanism has nothing to say, e.g.
// after PLAIN). A failure cannot be told to the client in this framing:
// the connection is closed after the failure delay, as Kafka does.
func (j *saslTokenJob) run() {
	c, s := j.c, j.c.loop.s
	st := c.sasl.Load()
	var out []byte
	var done bool
	var err error
	if now := time.Now(); s.cfg.SASL.Blocked(c.addr(), now) {
		err = errTooManyFailures
	} else if out, done, err = st.session.Step(j.token); err != nil {
		s.cfg.SASL.Failed(c.addr(), now)
	}
	j.token = nil
	if err != nil {
		st.session = nil
		st.raw.Store(false)
		s.met.counter(`floodgate_sasl_authentication_failed_total`).Inc()
		s.warn.Warn("sasl:failed:"+c.addr(), "SASL authentication failed; closing connection", "limit", "sasl-failed-authentication-delay",
			"configured_ms", s.lim().SASLFailedAuthenticationDelay.Milliseconds(), "mechanism", st.mech, "client_ip", c.addr(), "error", err.Error())
		fail := func() {
			if j.once.CompareAndSwap(false, true) {
				c.complete(j.seq, nil)
			}
			c.closeAsync(causeAuthFailed)
		}
		if d := s.lim().SASLFailedAuthenticationDelay; d > 0 {
			time.AfterFunc(d, fail)
			return
		}
		fail()
		return
	}
	if done {
		st.user = st.session.Principal()
		st.session = nil
		st.raw.Store(false)
		st.authed.Store(true)
		s.met.counter(`floodgate_sasl_authenticated_total{mechanism="` + st.mech + `"}`).Inc()
	}
	if !j.once.CompareAndSwap(false, true) {
		return
	}
	buf := s.bufs.get()
	*buf = binary.BigEndian.AppendUint32(*buf, uint32(len(out)))
	*buf = append(*buf, out...)
	c.forceOut(buf)
	c.complete(j.seq, buf)
}

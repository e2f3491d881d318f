package gateway

// Authentication to the upstream cluster: when Config.SASL is set, every
// upstream connection (a client's own, a shared one, a long-poll one and
// the short-lived control ones) authenticates with floodgate's own
// credentials right after it is dialled, in its writer goroutine, before
// its reader starts and before any client frame is written on it (see
// dialer.connect). Clients authenticate to floodgate (loop/sasl.go) and
// never to the upstream: the upstream sees floodgate's user for
// everything, and floodgate's ACLs (acl.RawGuard) decide per client.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/floodgate/floodgate/codec/kafka"
)

// maxAuthFrame bounds an answer read during authentication: SASL answers
// are a few hundred bytes, and a broken upstream must not make floodgate
// allocate up to maxUpstreamFrame before it is even logged in.
const maxAuthFrame = 1 << 20

// authRefusedError is the upstream's refusal of floodgate's credentials
// (or of its mechanism): a configuration error that retrying does not fix,
// unlike a connection that breaks during the exchange.
type authRefusedError struct{ err error }

func (e *authRefusedError) Error() string { return e.err.Error() }
func (e *authRefusedError) Unwrap() error { return e.err }

// isAuthRefused reports whether err carries an upstream's refusal of
// floodgate's credentials.
func isAuthRefused(err error) bool {
	var r *authRefusedError
	return errors.As(err, &r)
}

// authenticate runs SaslHandshake v1 and SaslAuthenticate v1 on a freshly
// dialled connection, synchronously: nothing else is on the connection yet,
// so each answer is the next frame read. timeout bounds the whole exchange.
func authenticate(nc net.Conn, addr string, mech sasl.Mechanism, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := nc.SetDeadline(deadline); err != nil {
		return err
	}
	var corr int32
	exchange := func(req kmsg.Request) (kmsg.Response, error) {
		corr++
		return exchange(nc, req, corr)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mech.Name()
	resp, err := exchange(hs)
	if err != nil {
		return err
	}
	hr := resp.(*kmsg.SASLHandshakeResponse)
	if err := kerr.ErrorForCode(hr.ErrorCode); err != nil {
		return &authRefusedError{fmt.Errorf("handshake: %w (the upstream offers %v)", err, hr.SupportedMechanisms)}
	}
	host, _, _ := net.SplitHostPort(addr)
	session, msg, err := mech.Authenticate(ctx, host)
	if err != nil {
		return err
	}
	for i := 0; i < 16; i++ { // PLAIN takes one round, SCRAM two
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(1)
		req.SASLAuthBytes = msg
		resp, err := exchange(req)
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			// Some brokers (kfake among them) close the connection
			// instead of answering SASL_AUTHENTICATION_FAILED.
			return &authRefusedError{fmt.Errorf("the upstream closed the connection in answer to the credentials: %w", err)}
		}
		if err != nil {
			return err
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
			if ar.ErrorMessage != nil {
				err = fmt.Errorf("%w: %s", err, *ar.ErrorMessage)
			}
			return &authRefusedError{err}
		}
		done, next, err := session.Challenge(ar.SASLAuthBytes)
		if err != nil { // e.g. a SCRAM server signature that does not match
			return &authRefusedError{err}
		}
		if done {
			// The reader and writer set their own deadlines.
			return nc.SetDeadline(time.Time{})
		}
		msg = next
	}
	return &authRefusedError{fmt.Errorf("no end to the %s exchange after 16 rounds", mech.Name())}
}

// exchange writes req with correlation id corr on nc and reads its answer.
func exchange(nc net.Conn, req kmsg.Request, corr int32) (kmsg.Response, error) {
	name := kmsg.NameForKey(req.Key())
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("floodgate-gateway")).AppendRequest(nil, req, corr)
	if _, err := nc.Write(frame); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	var head [8]byte // length, correlation id
	if _, err := io.ReadFull(nc, head[:]); err != nil {
		return nil, fmt.Errorf("read %s answer: %w", name, err)
	}
	n := int(binary.BigEndian.Uint32(head[:4]))
	if n < 4 || n > maxAuthFrame {
		return nil, fmt.Errorf("%s answer of %d bytes (at most %d expected)", name, n, maxAuthFrame)
	}
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != corr {
		return nil, fmt.Errorf("%s answer has correlation id %d, want %d", name, got, corr)
	}
	resp := make([]byte, kafka.LengthSize+n)
	copy(resp, head[:])
	if _, err := io.ReadFull(nc, resp[len(head):]); err != nil {
		return nil, fmt.Errorf("read %s answer: %w", name, err)
	}
	h := kafka.Header{APIKey: req.Key(), APIVersion: req.GetVersion(), Flexible: req.IsFlexible()}
	return kafka.DecodeResponse(&h, resp)
}

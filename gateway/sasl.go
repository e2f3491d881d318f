package gateway

// Authentication to the upstream cluster: when Config.SASL is set, every
// upstream connection (the forwarding pool's and the short-lived control
// ones) authenticates with floodgate's own credentials right after it is
// dialled, before any client frame is sent on it. Clients authenticate to
// floodgate (loop/sasl.go) and never to the upstream: the upstream sees
// floodgate's user for everything, and floodgate's ACLs (acl.RawGuard)
// decide per client.

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// dial connects to an upstream broker and authenticates when SASL is set.
func (g *Gateway) dial(node int32, addr string) (*upstreamConn, error) {
	u, err := dialUpstream(node, addr, g.cfg.DialTimeout, g.cfg.RequestTimeout, g.cfg.UpstreamTLS)
	if err != nil || g.cfg.SASL == nil {
		return u, err
	}
	if err := g.authenticate(u, addr); err != nil {
		u.close()
		return nil, fmt.Errorf("authenticate to upstream broker %d at %s with %s: %w", node, addr, g.cfg.SASL.Name(), err)
	}
	return u, nil
}

// authenticate runs SaslHandshake v1 and SaslAuthenticate v1 on u.
func (g *Gateway) authenticate(u *upstreamConn, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	defer cancel()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = g.cfg.SASL.Name()
	resp, err := roundTrip(ctx, u, hs)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return fmt.Errorf("handshake: %w (the upstream offers %v)", err, resp.(*kmsg.SASLHandshakeResponse).SupportedMechanisms)
	}
	host, _, _ := net.SplitHostPort(addr)
	session, msg, err := g.cfg.SASL.Authenticate(ctx, host)
	if err != nil {
		return err
	}
	for i := 0; i < 16; i++ { // PLAIN takes one round, SCRAM two
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(1)
		req.SASLAuthBytes = msg
		resp, err := roundTrip(ctx, u, req)
		if err != nil {
			return err
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
			if ar.ErrorMessage != nil {
				return fmt.Errorf("%w: %s", err, *ar.ErrorMessage)
			}
			return err
		}
		done, next, err := session.Challenge(ar.SASLAuthBytes)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		msg = next
	}
	return fmt.Errorf("no end to the %s exchange after 16 rounds", g.cfg.SASL.Name())
}

// roundTrip sends req on u and waits for its response.
func roundTrip(ctx context.Context, u *upstreamConn, req kmsg.Request) (kmsg.Response, error) {
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("floodgate-gateway")).AppendRequest(nil, req, 0)
	h := kafka.Header{APIKey: req.Key(), APIVersion: req.GetVersion(), Flexible: req.IsFlexible()}
	type result struct {
		frame []byte
		err   error
	}
	ch := make(chan result, 1)
	if err := u.send(frame[kafka.LengthSize:], true, u.timeout, func(f []byte, err error) { ch <- result{f, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return kafka.DecodeResponse(&h, r.frame)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

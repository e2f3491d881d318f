package acl

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/loop"
)

// RawGuard is Guard in front of a handler that forwards frames as bytes
// (the gateway). Frames of authorized requests pass as they are when
// nothing is enforced (or the principal is a super user); with
// enforcement each request is decoded and checked like Guard's, and what
// is forwarded is encoded again with the client's header (the upstream's
// answer is decoded, merged and encoded back). That costs a decode and an
// encode per request in gateway mode with --auth-required only.
type RawGuard struct {
	*Guard
	raw    loop.RawKafkaHandler
	decode func() kafka.DecodeLimits
}

// NewRawGuard wraps a raw handler; decode returns the limits in force
// that bound the requests it decodes (--max-partitions-per-request and
// --max-non-produce-request-size, which a reload may change).
func NewRawGuard(cfg GuardConfig, decode func() kafka.DecodeLimits) *RawGuard {
	return &RawGuard{Guard: NewGuard(cfg), raw: cfg.Inner.(loop.RawKafkaHandler), decode: decode}
}

// ConnClosed tells the inner handler a client connection is gone.
func (g *RawGuard) ConnClosed(id uint64) { g.raw.ConnClosed(id) }

// ServeRaw checks one frame as the connection's principal.
func (g *RawGuard) ServeRaw(cl loop.ClientConn, h *kafka.Header, frame []byte, respond func([]byte)) {
	principal := Principal(cl.User)
	_, own := ownAPIs[kmsg.Key(h.APIKey)]
	if !own && (!g.cfg.Enforce || g.cfg.Authorizer.IsSuper(principal)) && !audited(h.APIKey) {
		g.raw.ServeRaw(cl, h, frame, respond)
		return
	}
	req, err := kafka.DecodeRequestLimited(h, frame[h.Size:], g.decode())
	if err != nil {
		// The loop does not decode a raw handler's frames: a frame that
		// cannot be checked here (over a decode limit, or malformed) is
		// answered here, never forwarded unchecked to the upstream.
		g.undecodable(cl, h, err, respond)
		return
	}
	hdr := *h
	hdr.ClientID = append([]byte(nil), h.ClientID...)
	cl.ClientID = string(hdr.ClientID)
	w := &who{g: g.Guard, principal: principal, host: cl.Addr, cl: cl}
	w.fwd = func(req kmsg.Request, respond func(kmsg.Response)) {
		out := kmsg.NewRequestFormatter(kmsg.FormatterClientID(cl.ClientID)).AppendRequest(nil, req, hdr.CorrelationID)
		body := out[kafka.LengthSize:]
		var fh kafka.Header
		if err := kafka.ParseHeader(body, int32(len(body)), &fh); err != nil {
			respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
			return
		}
		g.raw.ServeRaw(cl, &fh, body, func(resp []byte) {
			if resp == nil {
				respond(nil)
				return
			}
			d, err := kafka.DecodeResponse(&fh, resp)
			if err != nil {
				respond(kafka.ErrorResponse(req, kafka.ErrUnknownServerError))
				return
			}
			respond(d)
		})
	}
	g.serve(w, req, func(resp kmsg.Response) {
		if resp == nil {
			respond(nil)
			return
		}
		respond(kafka.AppendResponse(nil, &hdr, resp))
	})
}

// undecodable answers a frame the guard could not decode: a refusal over
// a decode limit gets its answer (bounded by the limit), as the loop
// answers it for a decoding handler; a malformed frame gets its API's
// error answer with nothing in it, which a client takes as a failure.
func (g *RawGuard) undecodable(cl loop.ClientConn, h *kafka.Header, err error, respond func([]byte)) {
	api := kmsg.NameForKey(h.APIKey)
	var refused *kafka.RefusedError
	if errors.As(err, &refused) {
		g.met.GetOrCreateCounter(`floodgate_requests_refused_total{limit="` + refused.Limit + `"}`).Inc()
		g.warn.Warn("limit:"+refused.Limit, "request refused before the ACL check", "limit", refused.Limit,
			"configured", refused.Max, "actual", refused.Value, "client_ip", cl.Addr, "api", api)
		switch {
		case refused.Response != nil:
			respond(kafka.AppendResponse(nil, h, refused.Response))
			return
		case !refused.Close:
			respond(nil) // Produce with acks=0: no answer is due
			return
		}
	} else {
		g.met.GetOrCreateCounter(`floodgate_acl_undecodable_total`).Inc()
		g.warn.Warn("acl:undecodable:"+api, "request that does not decode refused before the ACL check", "client_ip", cl.Addr,
			"api", api, "error", err.Error())
	}
	req := kmsg.RequestForKey(h.APIKey)
	if req == nil {
		respond(nil)
		return
	}
	req.SetVersion(h.APIVersion)
	respond(kafka.AppendResponse(nil, h, kafka.ErrorResponse(req, kafka.ErrInvalidRequest)))
}

// audited reports the APIs whose requests are logged with the principal.
func audited(key int16) bool {
	switch key {
	case 19, 20, 21, 33, 37, 42, 44: // CreateTopics, DeleteTopics, DeleteRecords, AlterConfigs, CreatePartitions, DeleteGroups, IncrementalAlterConfigs
		return true
	}
	return false
}

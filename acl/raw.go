package acl

import (
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
	decode kafka.DecodeLimits
}

// NewRawGuard wraps a raw handler; decode bounds the requests it decodes.
func NewRawGuard(cfg GuardConfig, decode kafka.DecodeLimits) *RawGuard {
	return &RawGuard{Guard: NewGuard(cfg), raw: cfg.Inner.(loop.RawKafkaHandler), decode: decode}
}

// ConnClosed tells the inner handler a client connection is gone.
func (g *RawGuard) ConnClosed(id uint64) { g.raw.ConnClosed(id) }

// ServeRaw checks one frame as the connection's principal.
func (g *RawGuard) ServeRaw(cl loop.ClientConn, h *kafka.Header, frame []byte, respond func([]byte)) {
	principal := Principal(cl.User)
	own := false
	switch h.APIKey {
	case describeACLsKey, createACLsKey, deleteACLsKey, describeSCRAMKey, alterSCRAMKey:
		own = true
	}
	if !own && (!g.cfg.Enforce || g.cfg.Authorizer.IsSuper(principal)) && !audited(h.APIKey) {
		g.raw.ServeRaw(cl, h, frame, respond)
		return
	}
	req, err := kafka.DecodeRequestLimited(h, frame[h.Size:], g.decode)
	if err != nil {
		// The loop decoded it already to apply its limits; a frame that
		// does not decode here is passed on for the upstream to refuse.
		g.raw.ServeRaw(cl, h, frame, respond)
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

// audited reports the APIs whose requests are logged with the principal.
func audited(key int16) bool {
	switch key {
	case 19, 20, 21, 33, 37, 42, 44: // CreateTopics, DeleteTopics, DeleteRecords, AlterConfigs, CreatePartitions, DeleteGroups, IncrementalAlterConfigs
		return true
	}
	return false
}

package broker

// FindCoordinator: versions 0-6. This broker coordinates every group and
// every transactional id, so the answer is always itself. Key type 0 (group)
// and 1 (transaction) are served; other key types (share groups) get
// INVALID_REQUEST. v4+ batch several keys with an answer per key.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 6, (*Broker).handleFindCoordinator) }

func (b *Broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest, resp *kmsg.FindCoordinatorResponse, _ *Client, respond Responder) {
	code := kafka.ErrNone
	var msg *string
	if req.CoordinatorType != 0 && req.CoordinatorType != 1 {
		code = kafka.ErrInvalidRequest
		msg = kmsg.StringPtr("floodgate coordinates only group (0) and transaction (1) keys")
	}
	if req.Version < 4 {
		resp.ErrorCode, resp.ErrorMessage = code, msg
		resp.NodeID, resp.Host, resp.Port = b.cfg.NodeID, b.cfg.Host, b.cfg.Port
		if code != kafka.ErrNone {
			resp.NodeID, resp.Host, resp.Port = -1, "", -1
		}
		respond(resp)
		return
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.ErrorCode, c.ErrorMessage = code, msg
		c.NodeID, c.Host, c.Port = b.cfg.NodeID, b.cfg.Host, b.cfg.Port
		if code != kafka.ErrNone {
			c.NodeID, c.Host, c.Port = -1, "", -1
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	respond(resp)
}

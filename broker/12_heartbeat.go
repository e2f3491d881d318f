package broker

// Heartbeat: versions 0-4. Resets the member's session timer. Errors follow
// Kafka's order: FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// then REBALANCE_IN_PROGRESS while the group is preparing a rebalance (the
// signal for members to rejoin).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 4, (*Broker).handleHeartbeat) }

func (b *Broker) handleHeartbeat(req *kmsg.HeartbeatRequest, resp *kmsg.HeartbeatResponse, _ *Client, respond Responder) {
	if req.Group == "" {
		resp.ErrorCode = kafka.ErrInvalidGroupID
		respond(resp)
		return
	}
	gs := b.groups
	gs.do(func(out *outbox) {
		defer out.send(respond, resp)
		g := gs.find(req.Group)
		if g == nil || gs.closed {
			resp.ErrorCode = kafka.ErrUnknownMemberID
			return
		}
		m, code := g.checkMember(req.MemberID, req.InstanceID)
		switch {
		case code != kafka.ErrNone:
			resp.ErrorCode = code
			return
		case req.Generation != g.generation:
			resp.ErrorCode = kafka.ErrIllegalGeneration
			return
		}
		switch g.state {
		case groupEmpty:
			resp.ErrorCode = kafka.ErrUnknownMemberID
		case groupPreparingRebalance:
			g.touch(m)
			resp.ErrorCode = kafka.ErrRebalanceInProgress
		default:
			g.touch(m)
		}
	})
}

package broker

// LeaveGroup: versions 0-5. v0-v2 name one member by id; v3+ name several,
// each by member id and/or group.instance.id (KIP-345 batch leave), with an
// error per member. Leaving members' waiting JoinGroup/SyncGroup requests get
// UNKNOWN_MEMBER_ID and the rest of the group rebalances; the last member
// leaving makes the group Empty (its offsets stay).

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 5, (*Broker).handleLeaveGroup) }

func (b *Broker) handleLeaveGroup(req *kmsg.LeaveGroupRequest, resp *kmsg.LeaveGroupResponse, _ *Client, respond Responder) {
	if req.Group == "" {
		resp.ErrorCode = kafka.ErrInvalidGroupID
		respond(resp)
		return
	}
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	gs := b.groups
	gs.do(func(out *outbox) {
		defer out.send(respond, resp)
		g := gs.find(req.Group)
		removed := false
		for _, lm := range leaving {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = lm.MemberID, lm.InstanceID
			rm.ErrorCode = g.leave(lm.MemberID, lm.InstanceID, out)
			if rm.ErrorCode == kafka.ErrNone {
				removed = true
			}
			resp.Members = append(resp.Members, rm)
		}
		if req.Version < 3 {
			resp.ErrorCode = resp.Members[0].ErrorCode
			resp.Members = nil
		}
		if !removed {
			return
		}
		switch g.state {
		case groupStable, groupCompletingRebalance:
			g.prepareRebalance(out)
		case groupPreparingRebalance:
			g.maybeCompleteJoin(out)
		}
		g.forgetIfUnused()
	})
}

// leave removes one member without rebalancing (the caller does that once
// for the whole request). g may be nil. The caller holds gs.mu.
func (g *group) leave(memberID string, instanceID *string, out *outbox) int16 {
	if g == nil {
		return kafka.ErrUnknownMemberID
	}
	if t, ok := g.pending[memberID]; ok && instanceID == nil {
		t.Stop()
		delete(g.pending, memberID)
		return kafka.ErrNone
	}
	var m *member
	if instanceID != nil {
		id, ok := g.static[*instanceID]
		switch {
		case !ok:
			return kafka.ErrUnknownMemberID
		case memberID != "" && id != memberID:
			return kafka.ErrFencedInstanceID
		}
		m = g.members[id]
	} else {
		m = g.members[memberID]
	}
	if m == nil {
		return kafka.ErrUnknownMemberID
	}
	g.gs.b.log.Info("group member left", "group", g.name, "member", m.id)
	g.dropMember(m, out, kafka.ErrUnknownMemberID)
	return kafka.ErrNone
}

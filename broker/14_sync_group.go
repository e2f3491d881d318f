package broker

// SyncGroup: versions 0-5. Followers that sync before the leader keep their
// Responder and are answered when the leader's assignment arrives; if it
// never does within the rebalance timeout, members that did not sync are
// removed and the group rebalances again (their waiting syncs get
// REBALANCE_IN_PROGRESS). Assignments for unknown member ids are ignored;
// members the leader did not assign get an empty assignment. From v5 the
// protocol type and name, when sent, must match the group's.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { registerReq(0, 5, (*Broker).handleSyncGroup) }

func (b *Broker) handleSyncGroup(req *kmsg.SyncGroupRequest, _ *Client, respond Responder) {
	if req.Group == "" {
		respond(syncError(req.Version, kafka.ErrInvalidGroupID))
		return
	}
	gs := b.groups
	gs.do(func(out *outbox) {
		fail := func(code int16) { out.send(respond, syncError(req.Version, code)) }
		g := gs.find(req.Group)
		if g == nil || gs.closed {
			fail(kafka.ErrUnknownMemberID)
			return
		}
		m, code := g.checkMember(req.MemberID, req.InstanceID)
		switch {
		case code != kafka.ErrNone:
			fail(code)
			return
		case req.Generation != g.generation:
			fail(kafka.ErrIllegalGeneration)
			return
		case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
			req.Protocol != nil && *req.Protocol != g.protocol:
			fail(kafka.ErrInconsistentGroupProtocol)
			return
		}
		switch g.state {
		case groupPreparingRebalance:
			g.touch(m)
			fail(kafka.ErrRebalanceInProgress)
		case groupStable:
			g.touch(m)
			out.send(respond, g.syncResponse(req.Version, m))
		case groupCompletingRebalance:
			g.touch(m)
			if m.id == g.leader {
				if code := g.checkAssignments(req.GroupAssignment); code != kafka.ErrNone {
					// The followers keep waiting: the sync timeout
					// rebalances the group if the leader never sends a
					// smaller assignment.
					fail(code)
					return
				}
			}
			if m.sync != nil {
				out.send(m.sync, syncError(m.syncVer, kafka.ErrRebalanceInProgress))
			}
			m.sync, m.syncVer = respond, req.Version
			if m.id != g.leader {
				return
			}
			for _, a := range req.GroupAssignment {
				if am := g.members[a.MemberID]; am != nil {
					g.setAssignment(am, a.MemberAssignment)
				}
			}
			g.stopTimers()
			g.state = groupStable
			for _, am := range g.members {
				if am.sync != nil {
					out.send(am.sync, g.syncResponse(am.syncVer, am))
					am.sync = nil
				}
			}
		default:
			fail(kafka.ErrUnknownMemberID)
		}
	})
}

// syncResponse is m's SyncGroup answer: its assignment.
func (g *group) syncResponse(version int16, m *member) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.SetVersion(version)
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// checkAssignments checks the leader's assignments against the metadata
// limits before any is stored: one member's over the per-member limit, or
// all of them with the members' protocols over the group's or the broker's,
// refuse the SyncGroup. The caller holds gs.mu.
func (g *group) checkAssignments(as []kmsg.SyncGroupRequestGroupAssignment) int16 {
	lim := &g.gs.lim
	var total int64 // the group's bytes once these assignments replace the old
	for _, m := range g.members {
		total += protocolsBytes(m.protocols)
	}
	seen := make(map[string]bool, len(as))
	for _, a := range as {
		n := int64(len(a.MemberAssignment))
		if n > lim.MaxMemberMetadataBytes {
			g.gs.refuse(limMemberMetadata, "SyncGroup refused: a member assignment is over the limit",
				"group", g.name, "bytes", n, "max", lim.MaxMemberMetadataBytes)
			return kafka.ErrInvalidRequest
		}
		if g.members[a.MemberID] != nil && !seen[a.MemberID] {
			seen[a.MemberID] = true
			total += n
		}
	}
	switch {
	case total > lim.MaxGroupMetadataBytes:
		g.gs.refuse(limGroupMetadata, "SyncGroup refused: the group's assignments and metadata are over the limit",
			"group", g.name, "bytes", total, "max", lim.MaxGroupMetadataBytes)
		return kafka.ErrInvalidRequest
	case g.gs.metaBytes-g.metaBytes+total > lim.MaxTotalMetadataBytes:
		g.gs.refuse(limTotalMetadata, "SyncGroup refused: the member metadata of all groups is over the limit",
			"group", g.name, "bytes", g.gs.metaBytes-g.metaBytes+total, "max", lim.MaxTotalMetadataBytes)
		return kafka.ErrCoordinatorNotAvailable
	}
	return kafka.ErrNone
}

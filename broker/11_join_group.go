package broker

// JoinGroup: versions 0-9 (classic protocol). A join that must wait for the
// rest of the group keeps its Responder and is answered when every member
// has rejoined or the rebalance timeout expires (members that did not rejoin
// are then removed). v4+ dynamic members first get MEMBER_ID_REQUIRED with
// their id (KIP-394); static members (group.instance.id, KIP-345) rejoining
// under a new member id take over the old member, whose waiting requests get
// FENCED_INSTANCE_ID; a static member rejoining a Stable group with
// unchanged protocols gets the current generation without a rebalance (the
// leader, from v9, with skip_assignment). There is no initial rebalance
// delay (group.initial.rebalance.delay.ms is 0). The protocol is the first
// of the leader's protocols that every member supports.

import (
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { registerReq(0, 9, (*Broker).handleJoinGroup) }

func (b *Broker) handleJoinGroup(req *kmsg.JoinGroupRequest, cl *Client, respond Responder) {
	fail := func(code int16) { respond(joinError(req.Version, req.MemberID, code)) }
	if req.Group == "" {
		fail(kafka.ErrInvalidGroupID)
		return
	}
	gs := b.groups
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < gs.lim.MinSessionTimeout || session > gs.lim.MaxSessionTimeout {
		lim := limMaxSession
		if session < gs.lim.MinSessionTimeout {
			lim = limMinSession
		}
		gs.refuse(lim, "JoinGroup refused: session timeout out of bounds", "group", req.Group,
			"session_ms", req.SessionTimeoutMillis, "min", gs.lim.MinSessionTimeout, "max", gs.lim.MaxSessionTimeout)
		fail(kafka.ErrInvalidSessionTimeout)
		return
	}
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		fail(kafka.ErrInconsistentGroupProtocol)
		return
	}
	if n := requestProtocolsBytes(req.Protocols); n > gs.lim.MaxMemberMetadataBytes {
		// Refused before the lock and before anything is copied.
		gs.refuse(limMemberMetadata, "JoinGroup refused: member protocol metadata over the limit",
			"group", req.Group, "bytes", n, "max", gs.lim.MaxMemberMetadataBytes)
		fail(kafka.ErrInvalidRequest)
		return
	}
	gs.do(func(out *outbox) {
		if gs.closed {
			out.send(respond, joinError(req.Version, req.MemberID, kafka.ErrCoordinatorNotAvailable))
			return
		}
		g, full := gs.get(req.Group, req.MemberID == "")
		if full {
			gs.refuseGroupsFull(req.Group)
			out.send(respond, joinError(req.Version, req.MemberID, kafka.ErrCoordinatorNotAvailable))
			return
		}
		if g == nil {
			out.send(respond, joinError(req.Version, req.MemberID, kafka.ErrUnknownMemberID))
			return
		}
		g.join(req, cl, session, rebalance, respond, out)
		g.forgetIfUnused()
	})
}

// join is JoinGroup under the coordinator lock.
func (g *group) join(req *kmsg.JoinGroupRequest, cl *Client, session, rebalance time.Duration, respond Responder, out *outbox) {
	fail := func(code int16) { out.send(respond, joinError(req.Version, req.MemberID, code)) }
	fill := func(m *member) {
		m.clientID, m.clientHost = cl.ID, cl.Addr
		m.session, m.rebalance = session, rebalance
		g.setProtocols(m, req.Protocols)
	}
	size := requestProtocolsBytes(req.Protocols)
	// admit checks the member limits for a new member (m nil) or a member
	// changing its protocols, and answers the refusal.
	admit := func(m *member) bool {
		if m == nil && g.full() {
			g.gs.refuse(limMaxMembers, "JoinGroup refused: the group has --group-max-members members",
				"group", g.name, "max", g.gs.lim.MaxMembers)
			fail(errGroupMaxSizeReached)
			return false
		}
		if code := g.checkMetadata(m, size); code != kafka.ErrNone {
			fail(code)
			return false
		}
		return true
	}
	// wait parks the join of m and starts or advances the rebalance.
	wait := func(m *member) {
		if m.join != nil {
			out.send(m.join, joinError(m.joinVer, m.id, kafka.ErrRebalanceInProgress))
		}
		m.join, m.joinVer = respond, req.Version
		g.touch(m)
		g.prepareRebalance(out)
	}
	add := func(id string) {
		m := &member{id: id}
		if req.InstanceID != nil {
			iid := strings.Clone(*req.InstanceID)
			m.instanceID = &iid
		}
		if len(g.members) == 0 {
			g.protocolType = strings.Clone(req.ProtocolType)
		}
		g.members[id] = m
		g.gs.nMembers++
		fill(m)
		if m.instanceID != nil {
			g.static[*m.instanceID] = id
		}
		wait(m)
	}

	if req.MemberID == "" {
		var old *member
		if req.InstanceID != nil {
			old = g.members[g.static[*req.InstanceID]]
		}
		if !g.compatible(req.ProtocolType, req.Protocols, old) {
			fail(kafka.ErrInconsistentGroupProtocol)
			return
		}
		if old != nil {
			if !admit(old) {
				return
			}
			g.replaceStatic(old, req, cl, session, rebalance, respond, out)
			return
		}
		if !admit(nil) {
			return
		}
		if req.InstanceID != nil {
			add(newMemberID(*req.InstanceID))
			return
		}
		prefix := cl.ID
		if prefix == "" {
			prefix = "member"
		}
		id := newMemberID(prefix)
		if req.Version >= 4 {
			// KIP-394: the member must come back with this id; until it
			// does (or its session expires) the rebalance waits for it.
			g.pending[id] = g.gs.after(session, func(out *outbox) {
				if !g.live() || g.pending[id] == nil {
					return
				}
				delete(g.pending, id)
				g.maybeCompleteJoin(out)
				g.forgetIfUnused()
			})
			out.send(respond, joinError(req.Version, id, kafka.ErrMemberIDRequired))
			return
		}
		add(id)
		return
	}

	if t, ok := g.pending[req.MemberID]; ok {
		if !g.compatible(req.ProtocolType, req.Protocols, nil) {
			fail(kafka.ErrInconsistentGroupProtocol)
			return
		}
		if code := g.checkMetadata(nil, size); code != kafka.ErrNone {
			fail(code)
			return
		}
		t.Stop()
		delete(g.pending, req.MemberID)
		add(strings.Clone(req.MemberID))
		return
	}
	m, code := g.checkMember(req.MemberID, req.InstanceID)
	if code != kafka.ErrNone {
		fail(code)
		return
	}
	if !g.compatible(req.ProtocolType, req.Protocols, m) {
		fail(kafka.ErrInconsistentGroupProtocol)
		return
	}
	same := sameProtocols(m.protocols, req.Protocols)
	if !same && !admit(m) {
		return
	}
	fill(m)
	switch g.state {
	case groupPreparingRebalance:
		wait(m)
	case groupCompletingRebalance:
		if same {
			// A repeated join (lost response): answer with what we have.
			g.touch(m)
			out.send(respond, g.joinResponse(m, req.Version, false))
			return
		}
		wait(m)
	case groupStable:
		if same && m.id != g.leader {
			g.touch(m)
			out.send(respond, g.joinResponse(m, req.Version, false))
			return
		}
		wait(m)
	default:
		wait(m)
	}
}

// replaceStatic gives the static member old a new member id (a restarted
// static consumer), fencing the requests the old instance left waiting.
func (g *group) replaceStatic(old *member, req *kmsg.JoinGroupRequest, cl *Client, session, rebalance time.Duration, respond Responder, out *outbox) {
	oldID := old.id
	if old.join != nil {
		out.send(old.join, joinError(old.joinVer, oldID, kafka.ErrFencedInstanceID))
		old.join = nil
	}
	if old.sync != nil {
		out.send(old.sync, syncError(old.syncVer, kafka.ErrFencedInstanceID))
		old.sync = nil
	}
	newID := newMemberID(*req.InstanceID)
	delete(g.members, oldID)
	old.id = newID
	g.members[newID] = old
	g.static[*old.instanceID] = newID
	if g.leader == oldID {
		g.leader = newID
	}
	same := sameProtocols(old.protocols, req.Protocols)
	old.clientID, old.clientHost = cl.ID, cl.Addr
	old.session, old.rebalance = session, rebalance
	g.setProtocols(old, req.Protocols)
	g.gs.b.log.Info("static group member replaced", "group", g.name, "instance", *req.InstanceID, "old", oldID, "new", newID)
	if g.state == groupStable && same {
		g.touch(old)
		out.send(respond, g.joinResponse(old, req.Version, true))
		return
	}
	old.join, old.joinVer = respond, req.Version
	g.touch(old)
	g.prepareRebalance(out)
}

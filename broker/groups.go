package broker

// The consumer group coordinator (the classic protocol, KIP-62/KIP-345
// semantics): one state machine per group, Empty -> PreparingRebalance ->
// CompletingRebalance -> Stable, driven by JoinGroup, SyncGroup, Heartbeat
// and LeaveGroup, and by timers (session, rebalance, sync). No handler ever
// blocks: a JoinGroup or SyncGroup that must wait keeps its Responder in the
// member and is answered by whichever request or timer completes the phase.
//
// Every group shares one mutex (groups.mu), and everything done under it
// costs O(1) in the number of groups: counts (members, metadata and offset
// bytes) are kept as they change instead of being summed, timers are per
// member and per group, and the only walks over all groups (ListGroups, the
// offset expiry sweep, offsets.log compaction) take the lock per group or
// only to copy pointers. Responses are never sent under the lock: state
// changes queue them in an outbox that is flushed after unlock, also when
// a handler panics (the lock is released by defer).
//
// Committed offsets live in the group and outlive its members: a group whose
// last member left is Empty and keeps its offsets until they expire as in
// Kafka (offsets.retention.minutes, see expireOffsets); with a data dir
// every commit and deletion is also appended to offsets.log (persist.go)
// before the answer. An Empty group without offsets is forgotten at once.
//
// Nothing a request decoded is retained as it is: kmsg's strings and byte
// slices alias the request frame, so keeping one would keep the whole frame.
// Names, protocols, assignments and metadata are cloned when stored.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// groupState is the classic group state machine's state.
type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
)

// String returns the state name Kafka uses in ListGroups and DescribeGroups.
func (s groupState) String() string {
	switch s {
	case groupEmpty:
		return "Empty"
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	}
	return "Dead"
}

// groups is the consumer group coordinator. The group APIs register
// themselves in their broker/NN_*.go files.
type groups struct {
	b    *Broker
	lim  GroupLimits
	met  *groupMetrics
	warn *limits.WarnLog

	mu     sync.Mutex
	all    map[string]*group
	closed bool

	// Totals kept as they change, so that no operation sums them.
	nMembers    int   // members of all groups
	metaBytes   int64 // protocols and assignments of all members
	nOffsets    int   // committed offsets of all groups
	offsetBytes int64 // their cost (offsetCost, offsetTopicCost, metadata)
}

// group is one consumer group.
type group struct {
	gs           *groups
	name         string
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]*time.Timer // ids handed out with MEMBER_ID_REQUIRED
	static       map[string]string      // group.instance.id -> member id
	offsets      map[string]map[int32]committedOffset
	metaBytes    int64     // protocols and assignments of the members
	nOffsets     int       // committed offsets
	offsetBytes  int64     // their cost
	emptySince   time.Time // when the group last became Empty

	// epoch counts rebalances and join completions, so that a stale
	// rebalance or sync timer recognises it has nothing left to do.
	epoch          uint64
	rebalanceTimer *time.Timer
	syncTimer      *time.Timer
}

// member is one member of a group.
type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string
	session    time.Duration
	rebalance  time.Duration
	protocols  []protocol // cloned from the JoinGroup
	assignment []byte     // cloned from the leader's SyncGroup
	metaBytes  int64      // protocolsBytes(protocols) + len(assignment)

	join     Responder // pending JoinGroup, answered when the join phase ends
	joinVer  int16
	sync     Responder // pending SyncGroup, answered with the assignment
	syncVer  int16
	timer    *time.Timer
	timerSeq uint64
}

// protocol is one of a member's protocols, owned by the coordinator.
type protocol struct {
	name     string
	metadata []byte
}

// cloneProtocols copies a JoinGroup's protocols out of the request frame.
func cloneProtocols(ps []kmsg.JoinGroupRequestProtocol) []protocol {
	out := make([]protocol, len(ps))
	for i, p := range ps {
		out[i] = protocol{name: strings.Clone(p.Name), metadata: bytes.Clone(p.Metadata)}
	}
	return out
}

// requestProtocolsBytes is what ps would cost once stored.
func requestProtocolsBytes(ps []kmsg.JoinGroupRequestProtocol) int64 {
	var n int64
	for _, p := range ps {
		n += int64(protocolCost + len(p.Name) + len(p.Metadata))
	}
	return n
}

// committedOffset is one committed offset of a group.
type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	at          time.Time
}

// outbox collects responses to send once groups.mu is released.
type outbox []func()

func (o *outbox) send(respond Responder, resp kmsg.Response) {
	if respond == nil {
		return
	}
	*o = append(*o, func() { respond(resp) })
}

func newGroups(b *Broker, lim GroupLimits) *groups {
	return &groups{b: b, lim: lim.withDefaults(), met: newGroupMetrics(b.metrics.set), warn: limits.NewWarnLog(b.log, 10*time.Second), all: map[string]*group{}}
}

// do runs fn under the coordinator lock, then sends what fn queued and
// refreshes the group metrics. A panic in fn, or in one of the responders,
// still releases the lock and sends every queued answer (other members
// wait for theirs), then goes on up to the caller: the request's worker,
// which closes that connection, or the timer wrapper after.
func (gs *groups) do(fn func(out *outbox)) {
	var out outbox
	defer func() {
		p := recover()
		for _, f := range out {
			if q := sendRecovering(f); q != nil && p == nil {
				p = q
			}
		}
		if p != nil {
			panic(p)
		}
	}()
	gs.mu.Lock()
	defer gs.mu.Unlock()
	fn(&out)
	gs.b.metrics.groups.Set(float64(len(gs.all)))
	gs.b.metrics.members.Set(float64(gs.nMembers))
	gs.met.metadataBytes.Set(float64(gs.metaBytes))
	gs.met.offsets.Set(float64(gs.nOffsets))
	gs.met.offsetsBytes.Set(float64(gs.offsetBytes))
}

// sendRecovering runs one queued send and returns its panic, if any.
func sendRecovering(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// after runs fn under the coordinator lock once d has passed. Timer
// goroutines have no worker above them: a panic is logged and recovered
// here instead of ending the process.
func (gs *groups) after(d time.Duration, fn func(out *outbox)) *time.Timer {
	return time.AfterFunc(d, func() {
		defer func() {
			if p := recover(); p != nil {
				gs.b.log.Error("group timer panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
		}()
		gs.do(fn)
	})
}

// close stops every timer, answers waiting JoinGroup and SyncGroup requests
// with COORDINATOR_NOT_AVAILABLE. Broker.Close calls it.
func (gs *groups) close() {
	gs.do(func(out *outbox) {
		if gs.closed {
			return
		}
		gs.closed = true
		for _, g := range gs.all {
			g.stopTimers()
			for _, t := range g.pending {
				t.Stop()
			}
			for _, m := range g.members {
				if m.timer != nil {
					m.timer.Stop()
				}
				if m.join != nil {
					out.send(m.join, g.joinError(m.joinVer, m.id, kafka.ErrCoordinatorNotAvailable))
					m.join = nil
				}
				if m.sync != nil {
					out.send(m.sync, syncError(m.syncVer, kafka.ErrCoordinatorNotAvailable))
					m.sync = nil
				}
			}
		}
	})
}

// get returns the group named name, creating it (Empty) when create is set
// and --max-groups allows; full reports that it did not. The caller holds
// gs.mu.
func (gs *groups) get(name string, create bool) (g *group, full bool) {
	g = gs.all[name]
	if g == nil && create {
		if len(gs.all) >= gs.lim.MaxGroups {
			return nil, true
		}
		name = strings.Clone(name)
		g = &group{
			gs:         gs,
			name:       name,
			members:    map[string]*member{},
			pending:    map[string]*time.Timer{},
			static:     map[string]string{},
			offsets:    map[string]map[int32]committedOffset{},
			emptySince: gs.b.now(),
		}
		gs.all[name] = g
	}
	return g, false
}

// find returns the group named name, or nil. The caller holds gs.mu.
func (gs *groups) find(name string) *group { return gs.all[name] }

// refuseGroupsFull counts and logs a group --max-groups did not allow. The
// caller holds gs.mu (refuse takes only its own lock).
func (gs *groups) refuseGroupsFull(name string) {
	gs.refuse(limMaxGroups, "group refused: the broker has --max-groups groups", "group", name, "max_groups", gs.lim.MaxGroups)
}

// full reports whether one more member (or pending member id) would cross
// --group-max-members. The caller holds gs.mu.
func (g *group) full() bool { return len(g.members)+len(g.pending) >= g.gs.lim.MaxMembers }

// setProtocols replaces m's protocols, keeping the metadata counts. The
// caller holds gs.mu.
func (g *group) setProtocols(m *member, ps []kmsg.JoinGroupRequestProtocol) {
	m.protocols = cloneProtocols(ps)
	g.recount(m)
}

// setAssignment replaces m's assignment, keeping the metadata counts. The
// caller holds gs.mu.
func (g *group) setAssignment(m *member, a []byte) {
	m.assignment = bytes.Clone(a)
	g.recount(m)
}

// recount brings the group and broker metadata counts up to m's current
// protocols and assignment. The caller holds gs.mu.
func (g *group) recount(m *member) {
	n := protocolsBytes(m.protocols) + int64(len(m.assignment))
	g.metaBytes += n - m.metaBytes
	g.gs.metaBytes += n - m.metaBytes
	m.metaBytes = n
}

// checkMetadata returns the error that refuses protocols of size n from
// member m (nil: a new member) under the metadata limits, or ErrNone. The
// caller holds gs.mu.
func (g *group) checkMetadata(m *member, n int64) int16 {
	var held int64
	if m != nil {
		held = m.metaBytes
	}
	lim := &g.gs.lim
	switch {
	case n > lim.MaxMemberMetadataBytes:
		g.gs.refuse(limMemberMetadata, "group member refused: its protocol metadata is over the limit",
			"group", g.name, "bytes", n, "max", lim.MaxMemberMetadataBytes)
		return kafka.ErrInvalidRequest
	case g.metaBytes-held+n > lim.MaxGroupMetadataBytes:
		g.gs.refuse(limGroupMetadata, "group member refused: the group's member metadata is over the limit",
			"group", g.name, "bytes", g.metaBytes-held+n, "max", lim.MaxGroupMetadataBytes)
		return errGroupMaxSizeReached
	case g.gs.metaBytes-held+n > lim.MaxTotalMetadataBytes:
		g.gs.refuse(limTotalMetadata, "group member refused: the member metadata of all groups is over the limit",
			"group", g.name, "bytes", g.gs.metaBytes-held+n, "max", lim.MaxTotalMetadataBytes)
		return kafka.ErrCoordinatorNotAvailable
	}
	return kafka.ErrNone
}

// live reports whether g is still the group of its name (timers of a
// deleted group must do nothing). The caller holds gs.mu.
func (g *group) live() bool { return !g.gs.closed && g.gs.all[g.name] == g }

// forgetIfUnused drops an Empty group without offsets. The caller holds gs.mu.
func (g *group) forgetIfUnused() {
	if g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 && g.live() {
		g.stopTimers()
		delete(g.gs.all, g.name)
	}
}

// becomeEmpty makes g Empty after its last member went. The caller holds
// gs.mu.
func (g *group) becomeEmpty() {
	g.state = groupEmpty
	g.protocol, g.leader = "", ""
	g.emptySince = g.gs.b.now()
	g.forgetIfUnused()
}

// drop forgets g with its offsets (DeleteGroups, expiry). The caller holds
// gs.mu.
func (g *group) drop() {
	g.stopTimers()
	g.gs.nOffsets -= g.nOffsets
	g.gs.offsetBytes -= g.offsetBytes
	g.nOffsets, g.offsetBytes = 0, 0
	g.offsets = map[string]map[int32]committedOffset{}
	delete(g.gs.all, g.name)
}

func (g *group) stopTimers() {
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
		g.rebalanceTimer = nil
	}
	if g.syncTimer != nil {
		g.syncTimer.Stop()
		g.syncTimer = nil
	}
}

// newMemberID returns a fresh member id, prefixed as Kafka does with the
// group.instance.id or the client id.
func newMemberID(prefix string) string {
	id := newUUID()
	return prefix + "-" + hex.EncodeToString(id[:])
}

// touch (re)starts m's session timer. The caller holds gs.mu.
func (g *group) touch(m *member) {
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timerSeq++
	seq := m.timerSeq
	m.timer = g.gs.after(m.session, func(out *outbox) {
		if !g.live() || g.members[m.id] != m || m.timerSeq != seq {
			return
		}
		if m.join != nil {
			// Waiting in a rebalance: the rebalance timeout decides.
			return
		}
		g.gs.b.log.Info("group member session expired", "group", g.name, "member", m.id)
		g.removeMember(m, out)
	})
}

// removeMember drops m, answers its waiting requests with UNKNOWN_MEMBER_ID
// and rebalances the others. The caller holds gs.mu.
func (g *group) removeMember(m *member, out *outbox) {
	g.dropMember(m, out, kafka.ErrUnknownMemberID)
	switch g.state {
	case groupStable, groupCompletingRebalance:
		g.prepareRebalance(out)
	case groupPreparingRebalance:
		g.maybeCompleteJoin(out)
	}
}

// dropMember removes m without touching the group state. The caller holds
// gs.mu.
func (g *group) dropMember(m *member, out *outbox, code int16) {
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timerSeq++
	if g.members[m.id] == m {
		delete(g.members, m.id)
		g.gs.nMembers--
		g.metaBytes -= m.metaBytes
		g.gs.metaBytes -= m.metaBytes
		m.metaBytes = 0
	}
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if m.join != nil {
		out.send(m.join, g.joinError(m.joinVer, m.id, code))
		m.join = nil
	}
	if m.sync != nil {
		out.send(m.sync, syncError(m.syncVer, code))
		m.sync = nil
	}
}

// prepareRebalance starts a rebalance: members have until the largest
// rebalance timeout to rejoin. The caller holds gs.mu.
func (g *group) prepareRebalance(out *outbox) {
	if g.state == groupPreparingRebalance {
		g.maybeCompleteJoin(out)
		return
	}
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			if m.sync != nil {
				out.send(m.sync, syncError(m.syncVer, kafka.ErrRebalanceInProgress))
				m.sync = nil
			}
		}
	}
	g.stopTimers()
	g.state = groupPreparingRebalance
	g.epoch++
	g.gs.b.metrics.rebalances.Inc()
	wait := g.longestRebalanceTimeout()
	epoch := g.epoch
	g.rebalanceTimer = g.gs.after(wait, func(out *outbox) {
		if g.live() && g.epoch == epoch && g.state == groupPreparingRebalance {
			g.completeJoin(out, true)
		}
	})
	g.maybeCompleteJoin(out)
}

// maybeCompleteJoin ends the join phase once every member has rejoined and
// no MEMBER_ID_REQUIRED member is outstanding. The caller holds gs.mu.
func (g *group) maybeCompleteJoin(out *outbox) {
	if g.state != groupPreparingRebalance || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	g.completeJoin(out, false)
}

// completeJoin ends the join phase: members that did not rejoin are removed
// (when the rebalance timed out), a new generation starts, and every waiting
// JoinGroup is answered, the leader's with the member list. The caller holds
// gs.mu.
func (g *group) completeJoin(out *outbox, expired bool) {
	g.stopTimers()
	if expired {
		for _, m := range g.members {
			if m.join == nil {
				g.gs.b.log.Info("group member did not rejoin in time", "group", g.name, "member", m.id)
				g.dropMember(m, out, kafka.ErrUnknownMemberID)
			}
		}
		for id, t := range g.pending {
			t.Stop()
			delete(g.pending, id)
		}
	}
	g.generation++
	g.epoch++
	if len(g.members) == 0 {
		g.becomeEmpty()
		return
	}
	if lm := g.members[g.leader]; lm == nil || lm.join == nil {
		g.leader = ""
		for _, id := range g.sortedMemberIDs() {
			if g.members[id].join != nil {
				g.leader = id
				break
			}
		}
	}
	g.protocol = g.selectProtocol()
	g.state = groupCompletingRebalance
	for _, m := range g.members {
		g.setAssignment(m, nil)
		if m.join != nil {
			out.send(m.join, g.joinResponse(m, m.joinVer, false))
			m.join = nil
		}
		g.touch(m)
	}
	wait := g.longestRebalanceTimeout()
	epoch := g.epoch
	g.syncTimer = g.gs.after(wait, func(out *outbox) {
		if !g.live() || g.epoch != epoch || g.state != groupCompletingRebalance {
			return
		}
		// The leader never sent its assignment: drop whoever did not
		// sync and start over.
		for _, m := range g.members {
			if m.sync == nil {
				g.dropMember(m, out, kafka.ErrUnknownMemberID)
			}
		}
		if len(g.members) == 0 {
			g.generation++
			g.becomeEmpty()
			return
		}
		g.prepareRebalance(out)
	})
}

func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// selectProtocol returns the first protocol, in the leader's preference
// order, that every member supports. The caller holds gs.mu.
func (g *group) selectProtocol() string {
	lm := g.members[g.leader]
	if lm == nil {
		return ""
	}
	for _, p := range lm.protocols {
		if g.allSupport(p.name, nil) {
			return p.name
		}
	}
	return ""
}

// allSupport reports whether every member but except supports protocol name.
func (g *group) allSupport(name string, except *member) bool {
	for _, m := range g.members {
		if m == except {
			continue
		}
		found := false
		for _, p := range m.protocols {
			if p.name == name {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// compatible reports whether a member (except, when rejoining) announcing
// protocols of protocolType may join g.
func (g *group) compatible(protocolType string, protocols []kmsg.JoinGroupRequestProtocol, except *member) bool {
	others := len(g.members)
	if except != nil && g.members[except.id] == except {
		others--
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.allSupport(p.Name, except) {
			return true
		}
	}
	return false
}

// metadataFor returns m's metadata for the group's protocol.
func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.name == protocol {
			return p.metadata
		}
	}
	return nil
}

func sameProtocols(a []protocol, b []kmsg.JoinGroupRequestProtocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].Name || !bytes.Equal(a[i].metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

// joinResponse is m's JoinGroup answer for the current generation. The
// leader gets the member list; skip (v9+) tells a rejoining static leader
// not to assign again.
func (g *group) joinResponse(m *member, version int16, skip bool) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(version)
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader && (!skip || version >= 9) {
		resp.SkipAssignment = skip
		for _, id := range g.sortedMemberIDs() {
			o := g.members[id]
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = o.id
			rm.InstanceID = o.instanceID
			rm.ProtocolMetadata = o.metadataFor(g.protocol)
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

func (g *group) joinError(version int16, memberID string, code int16) *kmsg.JoinGroupResponse {
	return joinError(version, memberID, code)
}

func joinError(version int16, memberID string, code int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(version)
	resp.ErrorCode = code
	resp.MemberID = memberID
	resp.Protocol = kmsg.StringPtr("")
	return resp
}

func syncError(version int16, code int16) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.SetVersion(version)
	resp.ErrorCode = code
	return resp
}

// checkMember finds the member a SyncGroup, Heartbeat or OffsetCommit names,
// with Kafka's error for an unknown or fenced member. The caller holds
// gs.mu.
func (g *group) checkMember(memberID string, instanceID *string) (*member, int16) {
	if instanceID != nil {
		if id, ok := g.static[*instanceID]; ok && id != memberID {
			return nil, kafka.ErrFencedInstanceID
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kafka.ErrUnknownMemberID
	}
	return m, kafka.ErrNone
}

// commitOffset stores one offset unless a limit refuses it, and returns
// the partition's error code. The caller holds gs.mu.
func (g *group) commitOffset(topic string, partition int32, c committedOffset) int16 {
	lim := &g.gs.lim
	if len(c.metadata) > lim.OffsetMetadataMaxBytes {
		g.gs.refuse(limOffsetMetadata, "offset commit refused: its metadata is over offset.metadata.max.bytes",
			"group", g.name, "bytes", len(c.metadata), "max", lim.OffsetMetadataMaxBytes)
		return kafka.ErrOffsetMetadataTooLarge
	}
	ps := g.offsets[topic]
	old, had := ps[partition]
	cost := int64(offsetCost + len(c.metadata))
	if had {
		cost -= int64(offsetCost + len(old.metadata))
	}
	if ps == nil {
		cost += int64(offsetTopicCost + len(topic))
	}
	switch {
	case !had && g.nOffsets >= lim.MaxGroupOffsets:
		g.gs.refuse(limGroupOffsets, "offset commit refused: the group has --group-max-offsets committed offsets",
			"group", g.name, "max", lim.MaxGroupOffsets)
		return kafka.ErrInvalidCommitOffsetSize
	case cost > 0 && g.gs.offsetBytes+cost > lim.MaxOffsetsBytes:
		g.gs.refuse(limTotalOffsetsBytes, "offset commit refused: committed offsets hold --offsets-max-bytes",
			"group", g.name, "bytes", g.gs.offsetBytes, "max", lim.MaxOffsetsBytes)
		return kafka.ErrInvalidCommitOffsetSize
	}
	if ps == nil {
		ps = map[int32]committedOffset{}
		g.offsets[strings.Clone(topic)] = ps
	}
	c.metadata = strings.Clone(c.metadata)
	ps[partition] = c
	if !had {
		g.nOffsets++
		g.gs.nOffsets++
	}
	g.offsetBytes += cost
	g.gs.offsetBytes += cost
	g.gs.b.persistOffset(g.name, topic, partition, &c)
	return kafka.ErrNone
}

// deleteOffset forgets one committed offset (not persisted: the caller
// records the deletion) and reports whether there was one. The caller holds
// gs.mu.
func (g *group) deleteOffset(topic string, partition int32) bool {
	ps := g.offsets[topic]
	c, ok := ps[partition]
	if !ok {
		return false
	}
	delete(ps, partition)
	cost := int64(offsetCost + len(c.metadata))
	if len(ps) == 0 {
		delete(g.offsets, topic)
		cost += int64(offsetTopicCost + len(topic))
	}
	g.nOffsets--
	g.gs.nOffsets--
	g.offsetBytes -= cost
	g.gs.offsetBytes -= cost
	return true
}

// subscribedTopics returns the topics the members of a "consumer" group
// subscribe to, or ok false when they cannot be known.
func (g *group) subscribedTopics() (map[string]bool, bool) {
	if g.protocolType != "consumer" {
		return nil, false
	}
	out := map[string]bool{}
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil, false
		}
		for _, t := range meta.Topics {
			out[t] = true
		}
		var asg kmsg.ConsumerMemberAssignment
		if len(m.assignment) > 0 && asg.ReadFrom(m.assignment) == nil {
			for _, t := range asg.Topics {
				out[t.Topic] = true
			}
		}
	}
	return out, true
}

// longestRebalanceTimeout is how long the group waits for its members to
// join or sync: the longest rebalance timeout any member asked for, as in
// Kafka's GroupMetadata.rebalanceTimeoutMs.
func (g *group) longestRebalanceTimeout() time.Duration {
	var wait time.Duration
	for _, m := range g.members {
		wait = max(wait, m.rebalance)
	}
	return wait
}

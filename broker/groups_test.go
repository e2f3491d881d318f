package broker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// newTestBroker returns a broker closed at the end of the test.
func newTestBroker(t *testing.T) *Broker {
	t.Helper()
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), Groups: shortSessions})
	t.Cleanup(b.Close)
	return b
}

// shortSessions lowers the session minimum (Kafka's is 6 s) so that tests
// can let sessions expire.
var shortSessions = GroupLimits{MinSessionTimeout: 100 * time.Millisecond}

// send hands req to the broker and returns the channel its response comes
// on.
func send(b *Broker, req kmsg.Request) <-chan kmsg.Response {
	ch := make(chan kmsg.Response, 1)
	b.Handle(req, &Client{ID: "c", Addr: "127.0.0.1"}, func(r kmsg.Response) { ch <- r })
	return ch
}

// recv waits for a response.
func recv[T kmsg.Response](t *testing.T, ch <-chan kmsg.Response) T {
	t.Helper()
	select {
	case r := <-ch:
		return r.(T)
	case <-time.After(10 * time.Second):
		t.Fatal("no response in 10s")
	}
	panic("unreachable")
}

// call sends req and waits for its response.
func call[T kmsg.Response](t *testing.T, b *Broker, req kmsg.Request) T {
	t.Helper()
	return recv[T](t, send(b, req))
}

// pending asserts that no response arrives within d.
func pending(t *testing.T, ch <-chan kmsg.Response, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected response %#v", r)
	case <-time.After(d):
	}
}

func wantCode(t *testing.T, what string, got, want int16) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: error code %d, want %d", what, got, want)
	}
}

type joinOpt struct {
	version   int16
	member    string
	instance  string
	session   int32
	rebalance int32
	protos    []string
	ptype     string
}

func joinReq(group string, o joinOpt) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = o.version
	if req.Version == 0 && o.version == 0 {
		req.Version = 9
	}
	req.Group = group
	req.MemberID = o.member
	if o.instance != "" {
		req.InstanceID = kmsg.StringPtr(o.instance)
	}
	req.SessionTimeoutMillis = o.session
	if req.SessionTimeoutMillis == 0 {
		req.SessionTimeoutMillis = 10000
	}
	req.RebalanceTimeoutMillis = o.rebalance
	if req.RebalanceTimeoutMillis == 0 {
		req.RebalanceTimeoutMillis = 10000
	}
	req.ProtocolType = o.ptype
	if req.ProtocolType == "" {
		req.ProtocolType = "consumer"
	}
	protos := o.protos
	if protos == nil {
		protos = []string{"range"}
	}
	for _, p := range protos {
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: p, Metadata: consumerMeta("t")})
	}
	return req
}

// consumerMeta is consumer protocol metadata subscribing to topics.
func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

// memberID does the KIP-394 first join and returns the id handed out.
func memberID(t *testing.T, b *Broker, group string, o joinOpt) string {
	t.Helper()
	o.member = ""
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq(group, o))
	wantCode(t, "first join", r.ErrorCode, kafka.ErrMemberIDRequired)
	if r.MemberID == "" {
		t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	return r.MemberID
}

func syncReq(group, member string, gen int32, assign map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group, req.MemberID, req.Generation = group, member, gen
	for id, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return req
}

func heartbeat(t *testing.T, b *Broker, group, member string, gen int32) int16 {
	t.Helper()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group, req.MemberID, req.Generation = group, member, gen
	return call[*kmsg.HeartbeatResponse](t, b, req).ErrorCode
}

// stableGroup brings n dynamic members into a Stable group and returns
// their ids (the leader first) and the generation.
func stableGroup(t *testing.T, b *Broker, group string, n int, o joinOpt) ([]string, int32) {
	t.Helper()
	var chans []<-chan kmsg.Response
	var ids []string
	for i := 0; i < n; i++ {
		id := memberID(t, b, group, o)
		ids = append(ids, id)
	}
	for _, id := range ids {
		oo := o
		oo.member = id
		chans = append(chans, send(b, joinReq(group, oo)))
	}
	var leader string
	var gen int32
	for _, ch := range chans {
		r := recv[*kmsg.JoinGroupResponse](t, ch)
		wantCode(t, "join", r.ErrorCode, kafka.ErrNone)
		leader, gen = r.LeaderID, r.Generation
	}
	assign := map[string][]byte{}
	for _, id := range ids {
		assign[id] = []byte("a-" + id)
	}
	var syncs []<-chan kmsg.Response
	out := []string{leader}
	for _, id := range ids {
		if id != leader {
			out = append(out, id)
			syncs = append(syncs, send(b, syncReq(group, id, gen, nil)))
		}
	}
	syncs = append(syncs, send(b, syncReq(group, leader, gen, assign)))
	for _, ch := range syncs {
		r := recv[*kmsg.SyncGroupResponse](t, ch)
		wantCode(t, "sync", r.ErrorCode, kafka.ErrNone)
	}
	return out, gen
}

func TestFindCoordinator(t *testing.T) {
	b := newTestBroker(t)
	for _, v := range []int16{0, 1, 3} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorKey = v, "g"
		if v > 0 {
			req.CoordinatorType = 1
		}
		r := call[*kmsg.FindCoordinatorResponse](t, b, req)
		if r.ErrorCode != 0 || r.NodeID != 1 || r.Host != "127.0.0.1" || r.Port != 9092 {
			t.Fatalf("v%d: %+v", v, r)
		}
	}
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorKeys = 4, []string{"a", "b"}
	r := call[*kmsg.FindCoordinatorResponse](t, b, req)
	if len(r.Coordinators) != 2 || r.Coordinators[1].Key != "b" || r.Coordinators[1].NodeID != 1 {
		t.Fatalf("v4: %+v", r.Coordinators)
	}
	req.CoordinatorType = 2
	r = call[*kmsg.FindCoordinatorResponse](t, b, req)
	wantCode(t, "share key type", r.Coordinators[0].ErrorCode, kafka.ErrInvalidRequest)
}

func TestJoinGroupErrors(t *testing.T) {
	b := newTestBroker(t)
	tests := []struct {
		name  string
		group string
		o     joinOpt
		want  int16
	}{
		{"empty group id", "", joinOpt{}, kafka.ErrInvalidGroupID},
		{"session too short", "g", joinOpt{session: 10}, kafka.ErrInvalidSessionTimeout},
		{"session too long", "g", joinOpt{session: 1 << 30}, kafka.ErrInvalidSessionTimeout},
		{"no protocol type", "g", joinOpt{ptype: "", protos: []string{}}, kafka.ErrInconsistentGroupProtocol},
		{"unknown member, unknown group", "nope", joinOpt{member: "m-1"}, kafka.ErrUnknownMemberID},
		{"v4 needs a member id", "g", joinOpt{version: 4}, kafka.ErrMemberIDRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call[*kmsg.JoinGroupResponse](t, b, joinReq(tc.group, tc.o))
			wantCode(t, tc.name, r.ErrorCode, tc.want)
		})
	}
	// v3 joins at once without MEMBER_ID_REQUIRED.
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq("old", joinOpt{version: 3}))
	if r.ErrorCode != 0 || r.MemberID == "" || r.LeaderID != r.MemberID || r.Generation != 1 || len(r.Members) != 1 {
		t.Fatalf("v3 join: %+v", r)
	}
}

func TestGroupRebalanceLifecycle(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	ids, gen := stableGroup(t, b, g, 1, joinOpt{})
	a := ids[0]
	wantCode(t, "heartbeat", heartbeat(t, b, g, a, gen), kafka.ErrNone)

	// B joins: A learns of the rebalance through its heartbeat.
	bid := memberID(t, b, g, joinOpt{})
	bJoin := send(b, joinReq(g, joinOpt{member: bid}))
	pending(t, bJoin, 100*time.Millisecond)
	wantCode(t, "heartbeat during rebalance", heartbeat(t, b, g, a, gen), kafka.ErrRebalanceInProgress)
	wantCode(t, "sync during rebalance", call[*kmsg.SyncGroupResponse](t, b, syncReq(g, a, gen, nil)).ErrorCode, kafka.ErrRebalanceInProgress)
	aJoin := send(b, joinReq(g, joinOpt{member: a}))
	ra := recv[*kmsg.JoinGroupResponse](t, aJoin)
	rb := recv[*kmsg.JoinGroupResponse](t, bJoin)
	if ra.Generation != gen+1 || rb.Generation != gen+1 || ra.LeaderID != a || rb.LeaderID != a {
		t.Fatalf("join responses: %+v / %+v", ra, rb)
	}
	if len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(ra.Members), len(rb.Members))
	}
	gen = ra.Generation

	// Error paths while CompletingRebalance.
	wantCode(t, "old generation sync", call[*kmsg.SyncGroupResponse](t, b, syncReq(g, bid, gen-1, nil)).ErrorCode, kafka.ErrIllegalGeneration)
	wantCode(t, "unknown member sync", call[*kmsg.SyncGroupResponse](t, b, syncReq(g, "x", gen, nil)).ErrorCode, kafka.ErrUnknownMemberID)
	wantCode(t, "unknown group sync", call[*kmsg.SyncGroupResponse](t, b, syncReq("nope", bid, gen, nil)).ErrorCode, kafka.ErrUnknownMemberID)
	bad := syncReq(g, bid, gen, nil)
	bad.Protocol = kmsg.StringPtr("roundrobin")
	wantCode(t, "wrong protocol sync", call[*kmsg.SyncGroupResponse](t, b, bad).ErrorCode, kafka.ErrInconsistentGroupProtocol)

	// The follower's sync waits for the leader's assignment.
	bSync := send(b, syncReq(g, bid, gen, nil))
	pending(t, bSync, 100*time.Millisecond)
	ca := kmsg.NewPtrOffsetCommitRequest()
	ca.Version, ca.Group, ca.MemberID, ca.Generation = 8, g, a, gen
	if r := call[*kmsg.OffsetCommitResponse](t, b, ca); len(r.Topics) != 0 {
		t.Fatalf("empty commit: %+v", r)
	}
	aSync := send(b, syncReq(g, a, gen, map[string][]byte{a: []byte("A"), bid: []byte("B"), "ghost": []byte("G")}))
	if r := recv[*kmsg.SyncGroupResponse](t, bSync); r.ErrorCode != 0 || string(r.MemberAssignment) != "B" || *r.Protocol != "range" {
		t.Fatalf("follower sync: %+v", r)
	}
	if r := recv[*kmsg.SyncGroupResponse](t, aSync); string(r.MemberAssignment) != "A" {
		t.Fatalf("leader sync: %+v", r)
	}
	// Stable: syncs answer at once, heartbeats check generation and member.
	if r := call[*kmsg.SyncGroupResponse](t, b, syncReq(g, bid, gen, nil)); string(r.MemberAssignment) != "B" {
		t.Fatalf("repeated sync: %+v", r)
	}
	for _, tc := range []struct {
		name   string
		group  string
		member string
		gen    int32
		want   int16
	}{
		{"ok", g, bid, gen, kafka.ErrNone},
		{"old generation", g, bid, gen - 1, kafka.ErrIllegalGeneration},
		{"unknown member", g, "x", gen, kafka.ErrUnknownMemberID},
		{"unknown group", "nope", bid, gen, kafka.ErrUnknownMemberID},
		{"empty group id", "", bid, gen, kafka.ErrInvalidGroupID},
	} {
		wantCode(t, "heartbeat "+tc.name, heartbeat(t, b, tc.group, tc.member, tc.gen), tc.want)
	}

	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Version, d.Groups = 5, []string{g}
	dr := call[*kmsg.DescribeGroupsResponse](t, b, d)
	if grp := dr.Groups[0]; grp.State != "Stable" || grp.Protocol != "range" || len(grp.Members) != 2 || grp.ProtocolType != "consumer" {
		t.Fatalf("describe: %+v", grp)
	}

	// B leaves (v0): A must rejoin and is alone in the next generation.
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Version, l.Group, l.MemberID = 0, g, bid
	wantCode(t, "leave", call[*kmsg.LeaveGroupResponse](t, b, l).ErrorCode, kafka.ErrNone)
	wantCode(t, "leave again", call[*kmsg.LeaveGroupResponse](t, b, l).ErrorCode, kafka.ErrUnknownMemberID)
	wantCode(t, "heartbeat after leave", heartbeat(t, b, g, a, gen), kafka.ErrRebalanceInProgress)
	ra = call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{member: a}))
	if ra.Generation != gen+1 || len(ra.Members) != 1 {
		t.Fatalf("rejoin after leave: %+v", ra)
	}
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	// 1 s: the live member heartbeats every 50 ms, and in a CI run under
	// load a 300 ms session expired it too (UNKNOWN_MEMBER_ID).
	o := joinOpt{session: 1000, rebalance: 5000}
	ids, gen := stableGroup(t, b, g, 2, o)
	a, dead := ids[0], ids[1]
	// A heartbeats, the other member goes silent.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code := heartbeat(t, b, g, a, gen)
		if code == kafka.ErrRebalanceInProgress {
			break
		}
		wantCode(t, "heartbeat", code, kafka.ErrNone)
		if time.Now().After(deadline) {
			t.Fatal("silent member never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	o.member = a
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, o))
	if r.ErrorCode != 0 || len(r.Members) != 1 || r.Members[0].MemberID != a || r.Generation != gen+1 {
		t.Fatalf("rejoin: %+v", r)
	}
	wantCode(t, "expired member heartbeat", heartbeat(t, b, g, dead, gen+1), kafka.ErrUnknownMemberID)
}

func TestRebalanceTimeoutAnswersPendingJoins(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	ids, gen := stableGroup(t, b, g, 2, joinOpt{session: 30000, rebalance: 300})
	leader, follower := ids[0], ids[1]
	// The leader rejoins (that starts a rebalance); the follower never does.
	start := time.Now()
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{member: leader, session: 30000, rebalance: 300}))
	if r.ErrorCode != 0 || r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("join after rebalance timeout: %+v", r)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatalf("join answered before the rebalance timeout")
	}
	wantCode(t, "removed follower", heartbeat(t, b, g, follower, gen), kafka.ErrUnknownMemberID)
}

func TestSyncTimeoutWithoutLeader(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	o := joinOpt{session: 30000, rebalance: 300}
	a := memberID(t, b, g, o)
	c := memberID(t, b, g, o)
	o.member = a
	ja := send(b, joinReq(g, o))
	o.member = c
	jc := send(b, joinReq(g, o))
	ra, rc := recv[*kmsg.JoinGroupResponse](t, ja), recv[*kmsg.JoinGroupResponse](t, jc)
	follower := c
	if ra.LeaderID == c {
		follower = a
	}
	// Only the follower syncs: after the rebalance timeout the group starts
	// over without the leader, and the follower is told to rejoin.
	s := send(b, syncReq(g, follower, rc.Generation, nil))
	r := recv[*kmsg.SyncGroupResponse](t, s)
	wantCode(t, "follower sync without leader", r.ErrorCode, kafka.ErrRebalanceInProgress)
	o.member = follower
	j := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, o))
	if j.ErrorCode != 0 || j.LeaderID != follower || len(j.Members) != 1 {
		t.Fatalf("rejoin: %+v", j)
	}
}

func TestProtocolSelection(t *testing.T) {
	b := newTestBroker(t)
	const g = "g"
	a := memberID(t, b, g, joinOpt{})
	ja := send(b, joinReq(g, joinOpt{member: a, protos: []string{"range", "roundrobin", "sticky"}}))
	ra := recv[*kmsg.JoinGroupResponse](t, ja)
	wantCode(t, "first join", ra.ErrorCode, 0)
	c := memberID(t, b, g, joinOpt{})
	// A member with nothing in common is refused.
	bad := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{member: c, protos: []string{"cooperative"}}))
	wantCode(t, "no common protocol", bad.ErrorCode, kafka.ErrInconsistentGroupProtocol)
	bad = call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{member: c, ptype: "connect"}))
	wantCode(t, "other protocol type", bad.ErrorCode, kafka.ErrInconsistentGroupProtocol)
	jc := send(b, joinReq(g, joinOpt{member: c, protos: []string{"sticky", "roundrobin"}}))
	ja = send(b, joinReq(g, joinOpt{member: a, protos: []string{"range", "roundrobin", "sticky"}}))
	ra = recv[*kmsg.JoinGroupResponse](t, ja)
	rc := recv[*kmsg.JoinGroupResponse](t, jc)
	// The leader (a) prefers range, which c lacks; then roundrobin.
	if *ra.Protocol != "roundrobin" || *rc.Protocol != "roundrobin" || ra.LeaderID != a {
		t.Fatalf("protocol %q/%q leader %s", *ra.Protocol, *rc.Protocol, ra.LeaderID)
	}
}

func TestStaticMembership(t *testing.T) {
	b := newTestBroker(t)
	const g = "g"
	o := joinOpt{instance: "i1"}
	// Static members join without MEMBER_ID_REQUIRED.
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, o))
	wantCode(t, "static join", r.ErrorCode, 0)
	old, gen := r.MemberID, r.Generation
	s := syncReq(g, old, gen, map[string][]byte{old: []byte("mine")})
	s.InstanceID = kmsg.StringPtr("i1")
	wantCode(t, "sync", call[*kmsg.SyncGroupResponse](t, b, s).ErrorCode, 0)

	// The instance restarts: new member id, same generation, no rebalance,
	// and (v9) the leader is told to skip the assignment.
	r = call[*kmsg.JoinGroupResponse](t, b, joinReq(g, o))
	if r.ErrorCode != 0 || r.MemberID == old || r.Generation != gen || !r.SkipAssignment || len(r.Members) != 1 {
		t.Fatalf("static rejoin: %+v", r)
	}
	cur := r.MemberID
	s = syncReq(g, cur, gen, nil)
	s.InstanceID = kmsg.StringPtr("i1")
	if sr := call[*kmsg.SyncGroupResponse](t, b, s); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("sync after static rejoin: %+v", sr)
	}

	// The old incarnation is fenced everywhere.
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, g, old, gen, kmsg.StringPtr("i1")
	wantCode(t, "old heartbeat", call[*kmsg.HeartbeatResponse](t, b, hb).ErrorCode, kafka.ErrFencedInstanceID)
	o.member = old
	wantCode(t, "old join", call[*kmsg.JoinGroupResponse](t, b, joinReq(g, o)).ErrorCode, kafka.ErrFencedInstanceID)
	s = syncReq(g, old, gen, nil)
	s.InstanceID = kmsg.StringPtr("i1")
	wantCode(t, "old sync", call[*kmsg.SyncGroupResponse](t, b, s).ErrorCode, kafka.ErrFencedInstanceID)
	c := kmsg.NewPtrOffsetCommitRequest()
	c.Version, c.Group, c.MemberID, c.Generation, c.InstanceID = 8, g, old, gen, kmsg.StringPtr("i1")
	if cr := call[*kmsg.OffsetCommitResponse](t, b, c); cr.Topics != nil {
		t.Fatalf("commit with no topics: %+v", cr)
	}
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Version, l.Group = 5, g
	l.Members = []kmsg.LeaveGroupRequestMember{{MemberID: old, InstanceID: kmsg.StringPtr("i1")}, {InstanceID: kmsg.StringPtr("i9")}}
	lr := call[*kmsg.LeaveGroupResponse](t, b, l)
	wantCode(t, "leave old", lr.Members[0].ErrorCode, kafka.ErrFencedInstanceID)
	wantCode(t, "leave unknown instance", lr.Members[1].ErrorCode, kafka.ErrUnknownMemberID)

	// Leaving by instance id alone works.
	l.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: kmsg.StringPtr("i1")}}
	lr = call[*kmsg.LeaveGroupResponse](t, b, l)
	wantCode(t, "leave by instance", lr.Members[0].ErrorCode, 0)
	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Version, d.Groups = 5, []string{g}
	if dr := call[*kmsg.DescribeGroupsResponse](t, b, d); len(dr.Groups[0].Members) != 0 {
		t.Fatalf("members after leave: %+v", dr.Groups[0])
	}
}

func TestStaticRejoinFencesWaitingJoin(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	r1 := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{instance: "i1"}))
	wantCode(t, "i1", r1.ErrorCode, 0)
	// i2 joins and waits for i1 to rejoin.
	old2 := send(b, joinReq(g, joinOpt{instance: "i2"}))
	pending(t, old2, 50*time.Millisecond)
	// i2 restarts: its waiting join is fenced, the new incarnation waits.
	new2 := send(b, joinReq(g, joinOpt{instance: "i2"}))
	wantCode(t, "old i2 join", recv[*kmsg.JoinGroupResponse](t, old2).ErrorCode, kafka.ErrFencedInstanceID)
	pending(t, new2, 50*time.Millisecond)
	j1 := send(b, joinReq(g, joinOpt{instance: "i1", member: r1.MemberID}))
	r := recv[*kmsg.JoinGroupResponse](t, j1)
	n := recv[*kmsg.JoinGroupResponse](t, new2)
	if r.ErrorCode != 0 || n.ErrorCode != 0 || r.Generation != n.Generation || r.Generation != r1.Generation+1 {
		t.Fatalf("joins: %+v / %+v", r, n)
	}
	leader := r
	if n.LeaderID == n.MemberID {
		leader = n
	}
	if len(leader.Members) != 2 {
		t.Fatalf("leader got %d members", len(leader.Members))
	}
	for _, m := range leader.Members {
		if m.InstanceID == nil {
			t.Fatalf("member %s without instance id", m.MemberID)
		}
	}
}

func TestPendingMemberBlocksJoinUntilExpiry(t *testing.T) {
	t.Parallel()
	b := newTestBroker(t)
	const g = "g"
	a := memberID(t, b, g, joinOpt{session: 300})
	// A second member got its id but never comes back: the join completes
	// once that id expires.
	memberID(t, b, g, joinOpt{session: 300})
	start := time.Now()
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq(g, joinOpt{member: a, session: 300}))
	if r.ErrorCode != 0 || len(r.Members) != 1 {
		t.Fatalf("join: %+v", r)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("join did not wait for the pending member")
	}
}

func createTopic(t *testing.T, b *Broker, name string, partitions int32, configs map[string]string) {
	t.Helper()
	if _, code := b.createTopic(name, partitions, configs); code != 0 {
		t.Fatalf("create %s: %d", name, code)
	}
}

func commitReq(group, member string, gen int32, topic string, partition int32, offset int64, meta string) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.MemberID, req.Generation = 8, group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.Metadata, rp.LeaderEpoch = partition, offset, kmsg.StringPtr(meta), 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func commitCode(t *testing.T, b *Broker, req *kmsg.OffsetCommitRequest) int16 {
	t.Helper()
	r := call[*kmsg.OffsetCommitResponse](t, b, req)
	return r.Topics[0].Partitions[0].ErrorCode
}

// fetchOffset returns the committed offset of group for t/p (v5).
func fetchOffset(t *testing.T, b *Broker, group, topic string, p int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = 5, group
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{p}}}
	r := call[*kmsg.OffsetFetchResponse](t, b, req)
	wantCode(t, "offset fetch", r.ErrorCode, 0)
	return r.Topics[0].Partitions[0].Offset
}

func TestOffsetCommitErrors(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 2, nil)
	ids, gen := stableGroup(t, b, "g", 1, joinOpt{})
	m := ids[0]
	long := string(make([]byte, DefaultGroupLimits().OffsetMetadataMaxBytes+1))
	tests := []struct {
		name string
		req  *kmsg.OffsetCommitRequest
		want int16
	}{
		{"member commit", commitReq("g", m, gen, "t", 0, 5, "x"), kafka.ErrNone},
		{"empty group id", commitReq("", m, gen, "t", 0, 5, ""), kafka.ErrInvalidGroupID},
		{"unknown topic", commitReq("g", m, gen, "nope", 0, 5, ""), kafka.ErrUnknownTopicOrPartition},
		{"unknown partition", commitReq("g", m, gen, "t", 9, 5, ""), kafka.ErrUnknownTopicOrPartition},
		{"metadata too large", commitReq("g", m, gen, "t", 0, 5, long), kafka.ErrOffsetMetadataTooLarge},
		{"old generation", commitReq("g", m, gen-1, "t", 0, 5, ""), kafka.ErrIllegalGeneration},
		{"unknown member", commitReq("g", "x", gen, "t", 0, 5, ""), kafka.ErrUnknownMemberID},
		{"simple commit to a group with members", commitReq("g", "", -1, "t", 0, 5, ""), kafka.ErrUnknownMemberID},
		{"generation on unknown group", commitReq("other", "x", 3, "t", 0, 5, ""), kafka.ErrIllegalGeneration},
		{"simple commit creates group", commitReq("simple", "", -1, "t", 1, 7, ""), kafka.ErrNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.name, commitCode(t, b, tc.req), tc.want)
		})
	}
	if off := fetchOffset(t, b, "simple", "t", 1); off != 7 {
		t.Fatalf("simple group offset %d", off)
	}
	// While completing a rebalance, commits are refused.
	id := memberID(t, b, "g", joinOpt{})
	j := send(b, joinReq("g", joinOpt{member: id}))
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{member: m}))
	recv[*kmsg.JoinGroupResponse](t, j)
	wantCode(t, "commit while completing", commitCode(t, b, commitReq("g", m, r.Generation, "t", 0, 6, "")), kafka.ErrRebalanceInProgress)
}

func TestOffsetsSurviveMembers(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 3, nil)
	ids, gen := stableGroup(t, b, "g", 2, joinOpt{})
	wantCode(t, "commit", commitCode(t, b, commitReq("g", ids[0], gen, "t", 0, 10, "m0")), 0)
	wantCode(t, "commit", commitCode(t, b, commitReq("g", ids[1], gen, "t", 2, 20, "m2")), 0)
	l := kmsg.NewPtrLeaveGroupRequest()
	l.Version, l.Group = 3, "g"
	l.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}, {MemberID: ids[1]}}
	lr := call[*kmsg.LeaveGroupResponse](t, b, l)
	for _, m := range lr.Members {
		wantCode(t, "leave", m.ErrorCode, 0)
	}
	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version = 4
	lgr := call[*kmsg.ListGroupsResponse](t, b, lg)
	if len(lgr.Groups) != 1 || lgr.Groups[0].GroupState != "Empty" || lgr.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("list groups: %+v", lgr.Groups)
	}
	lg.StatesFilter = []string{"stable"}
	if lgr = call[*kmsg.ListGroupsResponse](t, b, lg); len(lgr.Groups) != 0 {
		t.Fatalf("stable filter: %+v", lgr.Groups)
	}

	// v1: one group, named partitions.
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Version, f.Group = 1, "g"
	f.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1, 2}}}
	fr := call[*kmsg.OffsetFetchResponse](t, b, f)
	got := []int64{}
	for _, p := range fr.Topics[0].Partitions {
		got = append(got, p.Offset)
	}
	if len(got) != 3 || got[0] != 10 || got[1] != -1 || got[2] != 20 || *fr.Topics[0].Partitions[0].Metadata != "m0" {
		t.Fatalf("v1 fetch: %v %+v", got, fr.Topics)
	}
	// v5: all topics (null list).
	f.Version, f.Topics = 5, nil
	fr = call[*kmsg.OffsetFetchResponse](t, b, f)
	if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 2 || fr.Topics[0].Partitions[1].Offset != 20 || fr.Topics[0].Partitions[0].LeaderEpoch != 0 {
		t.Fatalf("v5 all: %+v", fr.Topics)
	}
	// v8: several groups, one unknown.
	f8 := kmsg.NewPtrOffsetFetchRequest()
	f8.Version = 8
	f8.Groups = []kmsg.OffsetFetchRequestGroup{
		{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{2}}}},
		{Group: "unknown", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}},
		{Group: "g"},
	}
	fr = call[*kmsg.OffsetFetchResponse](t, b, f8)
	if len(fr.Groups) != 3 || fr.Groups[0].Topics[0].Partitions[0].Offset != 20 ||
		fr.Groups[1].ErrorCode != 0 || fr.Groups[1].Topics[0].Partitions[0].Offset != -1 ||
		len(fr.Groups[2].Topics[0].Partitions) != 2 {
		t.Fatalf("v8: %+v", fr.Groups)
	}
	// The Empty group accepts simple commits again.
	wantCode(t, "simple commit", commitCode(t, b, commitReq("g", "", -1, "t", 1, 15, "")), 0)
	if off := fetchOffset(t, b, "g", "t", 1); off != 15 {
		t.Fatalf("offset %d", off)
	}
}

func TestDescribeDeleteGroups(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, nil)
	stableGroup(t, b, "busy", 1, joinOpt{})
	wantCode(t, "commit", commitCode(t, b, commitReq("idle", "", -1, "t", 0, 1, "")), 0)

	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Version, d.Groups = 5, []string{"busy", "idle", "missing"}
	dr := call[*kmsg.DescribeGroupsResponse](t, b, d)
	if dr.Groups[0].State != "Stable" || string(dr.Groups[0].Members[0].MemberAssignment) == "" ||
		dr.Groups[1].State != "Empty" || dr.Groups[2].State != "Dead" || dr.Groups[2].ErrorCode != 0 {
		t.Fatalf("describe: %+v", dr.Groups)
	}
	d.Version = 6
	dr = call[*kmsg.DescribeGroupsResponse](t, b, d)
	wantCode(t, "describe v6 missing", dr.Groups[2].ErrorCode, kafka.ErrGroupIDNotFound)

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{"busy", "idle", "missing"}
	delr := call[*kmsg.DeleteGroupsResponse](t, b, del)
	for i, want := range []int16{kafka.ErrNonEmptyGroup, kafka.ErrNone, kafka.ErrGroupIDNotFound} {
		wantCode(t, "delete "+del.Groups[i], delr.Groups[i].ErrorCode, want)
	}
	if off := fetchOffset(t, b, "idle", "t", 0); off != -1 {
		t.Fatalf("offset of deleted group: %d", off)
	}
}

func TestOffsetDelete(t *testing.T) {
	b := newTestBroker(t)
	createTopic(t, b, "t", 1, nil)
	createTopic(t, b, "u", 1, nil)
	ids, gen := stableGroup(t, b, "g", 1, joinOpt{}) // subscribes to "t"
	wantCode(t, "commit t", commitCode(t, b, commitReq("g", ids[0], gen, "t", 0, 1, "")), 0)
	wantCode(t, "commit u", commitCode(t, b, commitReq("g", ids[0], gen, "u", 0, 2, "")), 0)
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = "g"
	req.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "nope", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}
	r := call[*kmsg.OffsetDeleteResponse](t, b, req)
	wantCode(t, "top", r.ErrorCode, 0)
	wantCode(t, "subscribed", r.Topics[0].Partitions[0].ErrorCode, kafka.ErrGroupSubscribedToTopic)
	wantCode(t, "unsubscribed", r.Topics[1].Partitions[0].ErrorCode, 0)
	wantCode(t, "unknown topic", r.Topics[2].Partitions[0].ErrorCode, kafka.ErrUnknownTopicOrPartition)
	if fetchOffset(t, b, "g", "u", 0) != -1 || fetchOffset(t, b, "g", "t", 0) != 1 {
		t.Fatal("offset delete removed the wrong offsets")
	}
	req.Group = "missing"
	wantCode(t, "unknown group", call[*kmsg.OffsetDeleteResponse](t, b, req).ErrorCode, kafka.ErrGroupIDNotFound)
}

func TestGroupMetrics(t *testing.T) {
	b := newTestBroker(t)
	before := b.metrics.rebalances.Get()
	stableGroup(t, b, "g1", 2, joinOpt{})
	stableGroup(t, b, "g2", 1, joinOpt{})
	if got := b.metrics.groups.Get(); got != 2 {
		t.Fatalf("groups gauge %v", got)
	}
	if got := b.metrics.members.Get(); got != 3 {
		t.Fatalf("members gauge %v", got)
	}
	if got := b.metrics.rebalances.Get() - before; got < 2 {
		t.Fatalf("rebalances %v", got)
	}
}

func TestCloseAnswersWaitingJoins(t *testing.T) {
	b := New(Config{NodeID: 1, Logger: slog.New(slog.DiscardHandler)})
	r := call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{instance: "a"}))
	wantCode(t, "join", r.ErrorCode, 0)
	j := send(b, joinReq("g", joinOpt{instance: "b"}))
	pending(t, j, 50*time.Millisecond)
	b.Close()
	wantCode(t, "join after close", recv[*kmsg.JoinGroupResponse](t, j).ErrorCode, kafka.ErrCoordinatorNotAvailable)
}

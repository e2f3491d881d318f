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
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(b.Close)
	return b
}

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

package broker

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// newLimitedBroker returns a broker with the given group limits (short
// sessions allowed), closed at the end of the test.
func newLimitedBroker(t *testing.T, lim GroupLimits, now func() time.Time) *Broker {
	t.Helper()
	if lim.MinSessionTimeout == 0 {
		lim.MinSessionTimeout = 100 * time.Millisecond
	}
	b := New(Config{NodeID: 1, Host: "127.0.0.1", Port: 9092, Logger: slog.New(slog.DiscardHandler), Groups: lim, Now: now})
	t.Cleanup(b.Close)
	return b
}

// joinWith is a v3 JoinGroup (no MEMBER_ID_REQUIRED round) of one protocol
// with the given metadata.
func joinWith(group string, meta []byte) *kmsg.JoinGroupRequest {
	req := joinReq(group, joinOpt{version: 3})
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
	return req
}

// refusals returns the refusal count of one limit.
func refusals(b *Broker, limit string) uint64 {
	return b.groups.met.set.GetOrCreateCounter(`floodgate_group_limit_refusals_total{limit="` + limit + `"}`).Get()
}

// TestGroupLimitsRefuseWithKafkaErrors drives each group limit over its
// bound and checks the answer a Kafka client gets and the counter.
func TestGroupLimitsRefuseWithKafkaErrors(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte{1}, n) }
	tests := []struct {
		name  string
		lim   GroupLimits
		limit string
		// run does what the limit allows, then one request more, and
		// returns the error code of that last request.
		run  func(t *testing.T, b *Broker) int16
		want int16
	}{
		{"member metadata over the per-member limit", GroupLimits{MaxMemberMetadataBytes: 1000}, limMemberMetadata,
			func(t *testing.T, b *Broker) int16 {
				wantCode(t, "small join", call[*kmsg.JoinGroupResponse](t, b, joinWith("g", big(900))).ErrorCode, 0)
				return call[*kmsg.JoinGroupResponse](t, b, joinWith("g2", big(1001))).ErrorCode
			}, kafka.ErrInvalidRequest},
		{"many empty protocols count against the per-member limit", GroupLimits{MaxMemberMetadataBytes: 1000}, limMemberMetadata,
			func(t *testing.T, b *Broker) int16 {
				req := joinWith("g", nil)
				req.Protocols = make([]kmsg.JoinGroupRequestProtocol, 30)
				return call[*kmsg.JoinGroupResponse](t, b, req).ErrorCode
			}, kafka.ErrInvalidRequest},
		{"member metadata of a group over the per-group limit", GroupLimits{MaxGroupMetadataBytes: 2500}, limGroupMetadata,
			func(t *testing.T, b *Broker) int16 {
				wantCode(t, "first", call[*kmsg.JoinGroupResponse](t, b, joinWith("g", big(1000))).ErrorCode, 0)
				send(b, joinWith("g", big(1000))) // waits in the rebalance
				return call[*kmsg.JoinGroupResponse](t, b, joinWith("g", big(1000))).ErrorCode
			}, errGroupMaxSizeReached},
		{"member metadata of all groups over the broker limit", GroupLimits{MaxTotalMetadataBytes: 2500}, limTotalMetadata,
			func(t *testing.T, b *Broker) int16 {
				wantCode(t, "g1", call[*kmsg.JoinGroupResponse](t, b, joinWith("g1", big(1000))).ErrorCode, 0)
				wantCode(t, "g2", call[*kmsg.JoinGroupResponse](t, b, joinWith("g2", big(1000))).ErrorCode, 0)
				return call[*kmsg.JoinGroupResponse](t, b, joinWith("g3", big(1000))).ErrorCode
			}, kafka.ErrCoordinatorNotAvailable},
		{"members of a group over group.max.size, pending ids counted", GroupLimits{MaxMembers: 2}, limMaxMembers,
			func(t *testing.T, b *Broker) int16 {
				memberID(t, b, "g", joinOpt{})
				memberID(t, b, "g", joinOpt{})
				return call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{})).ErrorCode
			}, errGroupMaxSizeReached},
		{"groups over --max-groups by JoinGroup", GroupLimits{MaxGroups: 2}, limMaxGroups,
			func(t *testing.T, b *Broker) int16 {
				stableGroup(t, b, "g1", 1, joinOpt{})
				stableGroup(t, b, "g2", 1, joinOpt{})
				return call[*kmsg.JoinGroupResponse](t, b, joinReq("g3", joinOpt{})).ErrorCode
			}, kafka.ErrCoordinatorNotAvailable},
		{"groups over --max-groups by OffsetCommit at generation -1", GroupLimits{MaxGroups: 2}, limMaxGroups,
			func(t *testing.T, b *Broker) int16 {
				createTopic(t, b, "t", 1, nil)
				wantCode(t, "g1", commitCode(t, b, commitReq("g1", "", -1, "t", 0, 1, "")), 0)
				wantCode(t, "g2", commitCode(t, b, commitReq("g2", "", -1, "t", 0, 1, "")), 0)
				return call[*kmsg.OffsetCommitResponse](t, b, commitReq("g3", "", -1, "t", 0, 1, "")).Topics[0].Partitions[0].ErrorCode
			}, kafka.ErrCoordinatorNotAvailable},
		{"session timeout over the maximum", GroupLimits{MaxSessionTimeout: time.Minute}, limMaxSession,
			func(t *testing.T, b *Broker) int16 {
				return call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{session: 60001})).ErrorCode
			}, kafka.ErrInvalidSessionTimeout},
		{"session timeout under the minimum", GroupLimits{MinSessionTimeout: 6 * time.Second}, limMinSession,
			func(t *testing.T, b *Broker) int16 {
				return call[*kmsg.JoinGroupResponse](t, b, joinReq("g", joinOpt{session: 5999})).ErrorCode
			}, kafka.ErrInvalidSessionTimeout},
		{"an assignment over the per-member limit", GroupLimits{MaxMemberMetadataBytes: 1000}, limMemberMetadata,
			func(t *testing.T, b *Broker) int16 {
				r := call[*kmsg.JoinGroupResponse](t, b, joinWith("g", big(10)))
				wantCode(t, "join", r.ErrorCode, 0)
				return call[*kmsg.SyncGroupResponse](t, b, syncReq("g", r.MemberID, r.Generation, map[string][]byte{r.MemberID: big(1001)})).ErrorCode
			}, kafka.ErrInvalidRequest},
		{"commit metadata over offset.metadata.max.bytes", GroupLimits{OffsetMetadataMaxBytes: 10}, limOffsetMetadata,
			func(t *testing.T, b *Broker) int16 {
				createTopic(t, b, "t", 1, nil)
				wantCode(t, "small", commitCode(t, b, commitReq("g", "", -1, "t", 0, 1, strings.Repeat("m", 10))), 0)
				return commitCode(t, b, commitReq("g", "", -1, "t", 0, 1, strings.Repeat("m", 11)))
			}, kafka.ErrOffsetMetadataTooLarge},
		{"committed offsets of a group over the per-group count", GroupLimits{MaxGroupOffsets: 2}, limGroupOffsets,
			func(t *testing.T, b *Broker) int16 {
				createTopic(t, b, "t", 3, nil)
				wantCode(t, "p0", commitCode(t, b, commitReq("g", "", -1, "t", 0, 1, "")), 0)
				wantCode(t, "p1", commitCode(t, b, commitReq("g", "", -1, "t", 1, 1, "")), 0)
				wantCode(t, "p1 again", commitCode(t, b, commitReq("g", "", -1, "t", 1, 2, "")), 0)
				return commitCode(t, b, commitReq("g", "", -1, "t", 2, 1, ""))
			}, kafka.ErrInvalidCommitOffsetSize},
		{"committed offsets of all groups over the broker bytes", GroupLimits{MaxOffsetsBytes: 3000}, limTotalOffsetsBytes,
			func(t *testing.T, b *Broker) int16 {
				createTopic(t, b, "t", 1, nil)
				wantCode(t, "g1", commitCode(t, b, commitReq("g1", "", -1, "t", 0, 1, strings.Repeat("m", 1000))), 0)
				wantCode(t, "g2", commitCode(t, b, commitReq("g2", "", -1, "t", 0, 1, strings.Repeat("m", 1000))), 0)
				return commitCode(t, b, commitReq("g3", "", -1, "t", 0, 1, strings.Repeat("m", 1000)))
			}, kafka.ErrInvalidCommitOffsetSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newLimitedBroker(t, tc.lim, nil)
			before := refusals(b, tc.limit)
			wantCode(t, "over the limit", tc.run(t, b), tc.want)
			if got := refusals(b, tc.limit) - before; got != 1 {
				t.Fatalf("refusals of %s: %d, want 1", tc.limit, got)
			}
		})
	}
}

// TestGroupCountsFollowMembersAndOffsets checks that the totals kept in
// place of the old per-operation walk come back to zero when members leave
// and offsets are deleted, so limits do not leak capacity.
func TestGroupCountsFollowMembersAndOffsets(t *testing.T) {
	b := newLimitedBroker(t, GroupLimits{}, nil)
	createTopic(t, b, "t", 2, nil)
	ids, gen := stableGroup(t, b, "g", 3, joinOpt{})
	wantCode(t, "commit", commitCode(t, b, commitReq("g", ids[0], gen, "t", 0, 5, "meta")), 0)
	gs := b.groups
	gs.mu.Lock()
	members, meta, offs := gs.nMembers, gs.metaBytes, gs.nOffsets
	gs.mu.Unlock()
	if members != 3 || meta == 0 || offs != 1 {
		t.Fatalf("with 3 members and 1 offset: members %d, metadata %d bytes, offsets %d", members, meta, offs)
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version, req.Group = 5, "g"
	for _, id := range ids {
		req.Members = append(req.Members, kmsg.LeaveGroupRequestMember{MemberID: id})
	}
	call[*kmsg.LeaveGroupResponse](t, b, req)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g"}
	wantCode(t, "delete", call[*kmsg.DeleteGroupsResponse](t, b, del).Groups[0].ErrorCode, 0)
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.nMembers != 0 || gs.metaBytes != 0 || gs.nOffsets != 0 || gs.offsetBytes != 0 || len(gs.all) != 0 {
		t.Fatalf("after leave and delete: members %d, metadata %d, offsets %d (%d bytes), groups %d",
			gs.nMembers, gs.metaBytes, gs.nOffsets, gs.offsetBytes, len(gs.all))
	}
}

// clock is a settable time source for retention tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func listGroupNames(t *testing.T, b *Broker) []string {
	t.Helper()
	var out []string
	for _, g := range call[*kmsg.ListGroupsResponse](t, b, kmsg.NewPtrListGroupsRequest()).Groups {
		out = append(out, g.Group)
	}
	return out
}

// TestCommittedOffsetsExpire checks offsets.retention.minutes as Kafka
// applies it: a group created by OffsetCommit at generation -1 loses each
// offset once it was committed longer ago than the retention, and goes
// with its last; a consumer group keeps its offsets while it has members
// and loses them the retention after it became Empty.
func TestCommittedOffsetsExpire(t *testing.T) {
	const ret = time.Hour
	clk := newClock()
	b := newLimitedBroker(t, GroupLimits{OffsetsRetention: ret, OffsetsRetentionCheck: time.Hour}, clk.now)
	createTopic(t, b, "t", 2, nil)

	wantCode(t, "commit p0", commitCode(t, b, commitReq("adhoc", "", -1, "t", 0, 10, "m")), 0)
	ids, gen := stableGroup(t, b, "consumers", 1, joinOpt{session: 60000})
	wantCode(t, "member commit", commitCode(t, b, commitReq("consumers", ids[0], gen, "t", 0, 20, "")), 0)
	clk.advance(ret / 2)
	wantCode(t, "commit p1", commitCode(t, b, commitReq("adhoc", "", -1, "t", 1, 11, "")), 0)
	clk.advance(ret / 2)

	b.groups.expireOffsets(clk.now())
	if got := fetchOffset(t, b, "adhoc", "t", 0); got != -1 {
		t.Fatalf("adhoc p0 committed %v ago: offset %d, want -1 (expired)", ret, got)
	}
	if got := fetchOffset(t, b, "adhoc", "t", 1); got != 11 {
		t.Fatalf("adhoc p1 committed %v ago: offset %d, want 11", ret/2, got)
	}
	if got := fetchOffset(t, b, "consumers", "t", 0); got != 20 {
		t.Fatalf("group with a member: offset %d, want 20 (kept)", got)
	}

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, "consumers"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}}
	call[*kmsg.LeaveGroupResponse](t, b, leave)
	clk.advance(ret / 2)
	b.groups.expireOffsets(clk.now())
	if got := fetchOffset(t, b, "consumers", "t", 0); got != 20 {
		t.Fatalf("Empty for %v: offset %d, want 20", ret/2, got)
	}
	clk.advance(ret / 2)
	b.groups.expireOffsets(clk.now())
	if got := fetchOffset(t, b, "consumers", "t", 0); got != -1 {
		t.Fatalf("Empty for %v: offset %d, want -1", ret, got)
	}
	if got := fetchOffset(t, b, "adhoc", "t", 1); got != -1 {
		t.Fatalf("adhoc p1 committed %v ago: offset %d, want -1", ret, got)
	}
	if names := listGroupNames(t, b); len(names) != 0 {
		t.Fatalf("groups left after every offset expired: %v", names)
	}
	if got := b.groups.met.offsetsExpired.Get(); got != 3 {
		t.Fatalf("expired counter %d, want 3", got)
	}
}

// TestOffsetExpirySweeperRuns checks that the sweeper applies the retention
// by itself every OffsetsRetentionCheck.
func TestOffsetExpirySweeperRuns(t *testing.T) {
	clk := newClock()
	b := newLimitedBroker(t, GroupLimits{OffsetsRetention: time.Minute, OffsetsRetentionCheck: 20 * time.Millisecond}, clk.now)
	createTopic(t, b, "t", 1, nil)
	wantCode(t, "commit", commitCode(t, b, commitReq("adhoc", "", -1, "t", 0, 10, "")), 0)
	clk.advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for len(listGroupNames(t, b)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the group of an expired offset is still listed after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupTimerPanicIsRecovered makes a rebalance timer answer a JoinGroup
// whose responder panics: the timer goroutine must not take the process
// down, the other waiting joins must still be answered, and the
// coordinator lock must be free for the next request.
func TestGroupTimerPanicIsRecovered(t *testing.T) {
	b := newLimitedBroker(t, GroupLimits{}, nil)
	o := joinOpt{session: 30000, rebalance: 200}
	ids, gen := stableGroup(t, b, "g", 1, o)
	// A second member joins: the rebalance waits for the first, which never
	// rejoins, so the rebalance timer answers the second from its goroutine.
	// Other members wait too: the panic of one answer must not cost them
	// theirs.
	var others []<-chan kmsg.Response
	for range 5 {
		oo := o
		oo.member = memberID(t, b, "g", o)
		others = append(others, send(b, joinReq("g", oo)))
	}
	o.member = memberID(t, b, "g", o)
	panicked := make(chan struct{})
	b.Handle(joinReq("g", o), &Client{ID: "c"}, func(kmsg.Response) {
		close(panicked)
		panic("responder failed")
	})
	select {
	case <-panicked:
	case <-time.After(5 * time.Second):
		t.Fatal("the rebalance timer did not answer the waiting join")
	}
	for i, ch := range others {
		select {
		case r := <-ch:
			wantCode(t, fmt.Sprint("waiting join ", i), r.(*kmsg.JoinGroupResponse).ErrorCode, 0)
		case <-time.After(5 * time.Second):
			t.Fatalf("waiting join %d never answered after another answer panicked", i)
		}
	}
	done := make(chan int16, 1)
	go func() { done <- heartbeat(t, b, "g", ids[0], gen) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator lock is still held after a timer panicked")
	}
}

// BenchmarkHeartbeatAmongGroups measures a Heartbeat of one member while
// n other groups (one member each) exist: every group operation used to
// walk all groups to count members, so its cost grew with n.
func BenchmarkHeartbeatAmongGroups(b *testing.B) {
	for _, n := range []int{0, 40000} {
		b.Run(fmt.Sprintf("groups=%d", n), func(b *testing.B) {
			br := New(Config{NodeID: 1, Logger: slog.New(slog.DiscardHandler), Groups: GroupLimits{MaxGroups: 1 << 20}})
			defer br.Close()
			join := func(group string) *kmsg.JoinGroupResponse {
				req := joinReq(group, joinOpt{version: 3, session: 1800000, rebalance: 1000})
				ch := make(chan kmsg.Response, 1)
				br.Handle(req, &Client{ID: "c"}, func(r kmsg.Response) { ch <- r })
				return (<-ch).(*kmsg.JoinGroupResponse)
			}
			for i := 0; i < n; i++ {
				join(fmt.Sprintf("attacker-%d", i))
			}
			r := join("victim")
			sync := syncReq("victim", r.MemberID, r.Generation, map[string][]byte{r.MemberID: []byte("a")})
			ch := make(chan kmsg.Response, 1)
			br.Handle(sync, &Client{ID: "c"}, func(r kmsg.Response) { ch <- r })
			<-ch
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, "victim", r.MemberID, r.Generation
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				br.Handle(hb, &Client{ID: "c"}, func(r kmsg.Response) { ch <- r })
				if code := (<-ch).(*kmsg.HeartbeatResponse).ErrorCode; code != 0 {
					b.Fatalf("heartbeat: %d", code)
				}
			}
		})
	}
}

// TestGroupAnswersAreBounded names one group or partition many times in
// DescribeGroups and OffsetFetch: the answer holds it once (or up to
// --group-max-response-bytes) and the rest get a retriable error, so a
// small request cannot make a large answer.
func TestGroupAnswersAreBounded(t *testing.T) {
	const capBytes = 64 << 10
	b := newLimitedBroker(t, GroupLimits{MaxResponseBytes: capBytes}, nil)
	createTopic(t, b, "t", 1, nil)
	r := call[*kmsg.JoinGroupResponse](t, b, joinWith("big", bytes.Repeat([]byte{1}, 40<<10)))
	wantCode(t, "join", r.ErrorCode, 0)
	wantCode(t, "sync", call[*kmsg.SyncGroupResponse](t, b, syncReq("big", r.MemberID, r.Generation, map[string][]byte{r.MemberID: []byte("a")})).ErrorCode, 0)
	wantCode(t, "commit", commitCode(t, b, commitReq("big", r.MemberID, r.Generation, "t", 0, 7, strings.Repeat("m", 4000))), 0)
	const names = 1000

	t.Run("DescribeGroups naming a group 1000 times", func(t *testing.T) {
		before := refusals(b, limResponseBytes)
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = 5
		for range names {
			req.Groups = append(req.Groups, "big")
		}
		resp := call[*kmsg.DescribeGroupsResponse](t, b, req)
		described := 0
		for _, g := range resp.Groups {
			switch g.ErrorCode {
			case 0:
				described++
			case kafka.ErrCoordinatorLoadInProgress:
			default:
				t.Fatalf("group error %d", g.ErrorCode)
			}
		}
		if size := len(resp.AppendTo(nil)); described != 1 || size > 2*capBytes {
			t.Fatalf("%d of %d described, answer %d bytes; want 1 and at most %d", described, names, size, 2*capBytes)
		}
		if refusals(b, limResponseBytes) == before {
			t.Fatal("refusal not counted")
		}
	})
	t.Run("OffsetFetch v8 naming a group 1000 times", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = 8
		for range names {
			req.Groups = append(req.Groups, kmsg.OffsetFetchRequestGroup{Group: "big"})
		}
		resp := call[*kmsg.OffsetFetchResponse](t, b, req)
		answered := 0
		for _, g := range resp.Groups {
			if g.ErrorCode == 0 {
				answered++
			} else if g.ErrorCode != kafka.ErrCoordinatorLoadInProgress {
				t.Fatalf("group error %d", g.ErrorCode)
			}
		}
		if size := len(resp.AppendTo(nil)); answered > capBytes/4000+1 || size > 2*capBytes {
			t.Fatalf("%d of %d groups answered, %d bytes; want at most %d groups and %d bytes", answered, names, size, capBytes/4000+1, 2*capBytes)
		}
		if resp.Groups[0].ErrorCode != 0 || resp.Groups[0].Topics[0].Partitions[0].Offset != 7 {
			t.Fatalf("first group: %+v", resp.Groups[0])
		}
	})
	t.Run("OffsetFetch v5 repeating a partition", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group = 5, "big"
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: make([]int32, 100000)}}
		resp := call[*kmsg.OffsetFetchResponse](t, b, req)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].Offset != 7 {
			t.Fatalf("answer: error %d, %d topics, %+v", resp.ErrorCode, len(resp.Topics), resp.Topics)
		}
	})
	t.Run("OffsetFetch v5 of many partitions without offsets", func(t *testing.T) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.Group = 5, "big"
		ps := make([]int32, 100000)
		for i := range ps {
			ps[i] = int32(i)
		}
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: ps}}
		resp := call[*kmsg.OffsetFetchResponse](t, b, req)
		if resp.ErrorCode != kafka.ErrCoordinatorLoadInProgress || len(resp.Topics) != 0 {
			t.Fatalf("answer: error %d with %d topics; want COORDINATOR_LOAD_IN_PROGRESS and none", resp.ErrorCode, len(resp.Topics))
		}
	})
}

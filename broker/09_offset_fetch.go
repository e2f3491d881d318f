package broker

// OffsetFetch: versions 0-9 (v10 names topics by id and is not served).
// v0-v7 ask for one group, v8+ for several (an answer per group). A null
// topic list (v2+) asks for every offset the group has. Partitions without
// a committed offset, and groups that do not exist, get offset -1 and no
// error, as in Kafka. require_stable (v7+) needs no waiting: there are no
// transactional offset commits. The v9 member id and epoch (KIP-848) are
// ignored for these classic groups.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// fetchedOffset is one partition of an OffsetFetch answer.
type fetchedOffset struct {
	topic     string
	partition int32
	c         committedOffset
	ok        bool
}

func (b *Broker) handleOffsetFetch(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	resp.SetVersion(req.Version)
	if req.Version < 8 {
		var want map[string][]int32
		if req.Topics != nil || req.Version < 2 {
			want = map[string][]int32{}
			for _, t := range req.Topics {
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		offs, code := b.groups.fetchOffsets(req.Group, want, topicOrder(req.Topics))
		resp.ErrorCode = code
		var cur *kmsg.OffsetFetchResponseTopic
		for _, o := range offs {
			if cur == nil || cur.Topic != o.topic {
				resp.Topics = append(resp.Topics, kmsg.NewOffsetFetchResponseTopic())
				cur = &resp.Topics[len(resp.Topics)-1]
				cur.Topic = o.topic
			}
			p := kmsg.NewOffsetFetchResponseTopicPartition()
			p.Partition = o.partition
			p.Offset, p.LeaderEpoch, p.Metadata = -1, -1, kmsg.StringPtr("")
			if o.ok {
				p.Offset, p.LeaderEpoch, p.Metadata = o.c.offset, o.c.leaderEpoch, kmsg.StringPtr(o.c.metadata)
			}
			cur.Partitions = append(cur.Partitions, p)
		}
		if req.Version < 2 && code != kafka.ErrNone {
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					resp.Topics[i].Partitions[j].ErrorCode = code
				}
			}
		}
		respond(resp)
		return
	}
	for _, rg := range req.Groups {
		var want map[string][]int32
		var order []string
		if rg.Topics != nil {
			want = map[string][]int32{}
			for _, t := range rg.Topics {
				if _, ok := want[t.Topic]; !ok {
					order = append(order, t.Topic)
				}
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		offs, code := b.groups.fetchOffsets(rg.Group, want, order)
		sg := kmsg.NewOffsetFetchResponseGroup()
		sg.Group, sg.ErrorCode = rg.Group, code
		var cur *kmsg.OffsetFetchResponseGroupTopic
		for _, o := range offs {
			if cur == nil || cur.Topic != o.topic {
				sg.Topics = append(sg.Topics, kmsg.NewOffsetFetchResponseGroupTopic())
				cur = &sg.Topics[len(sg.Topics)-1]
				cur.Topic = o.topic
			}
			p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			p.Partition = o.partition
			p.Offset, p.LeaderEpoch, p.Metadata = -1, -1, kmsg.StringPtr("")
			if o.ok {
				p.Offset, p.LeaderEpoch, p.Metadata = o.c.offset, o.c.leaderEpoch, kmsg.StringPtr(o.c.metadata)
			}
			cur.Partitions = append(cur.Partitions, p)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	respond(resp)
}

func topicOrder(ts []kmsg.OffsetFetchRequestTopic) []string {
	var order []string
	seen := map[string]bool{}
	for _, t := range ts {
		if !seen[t.Topic] {
			seen[t.Topic] = true
			order = append(order, t.Topic)
		}
	}
	return order
}

// fetchOffsets returns the offsets of group for the partitions in want (in
// the topic order given), or every committed offset when want is nil.
func (gs *groups) fetchOffsets(name string, want map[string][]int32, order []string) ([]fetchedOffset, int16) {
	if name == "" {
		return nil, kafka.ErrInvalidGroupID
	}
	var out []fetchedOffset
	gs.do(func(*outbox) {
		g := gs.all[name]
		if want == nil {
			if g == nil {
				return
			}
			topics := make([]string, 0, len(g.offsets))
			for t := range g.offsets {
				topics = append(topics, t)
			}
			sort.Strings(topics)
			for _, t := range topics {
				ps := make([]int32, 0, len(g.offsets[t]))
				for p := range g.offsets[t] {
					ps = append(ps, p)
				}
				sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
				for _, p := range ps {
					out = append(out, fetchedOffset{topic: t, partition: p, c: g.offsets[t][p], ok: true})
				}
			}
			return
		}
		for _, t := range order {
			for _, p := range want[t] {
				o := fetchedOffset{topic: t, partition: p}
				if g != nil {
					o.c, o.ok = g.offsets[t][p]
				}
				out = append(out, o)
			}
		}
	})
	return out, kafka.ErrNone
}

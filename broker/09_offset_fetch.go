package broker

// OffsetFetch: versions 0-9 (v10 names topics by id and is not served).
// v0-v7 ask for one group, v8+ for several (an answer per group). A null
// topic list (v2+) asks for every offset the group has. Partitions without
// a committed offset, and groups that do not exist, get offset -1 and no
// error, as in Kafka. require_stable (v7+) needs no waiting: there are no
// transactional offset commits. The v9 member id and epoch (KIP-848) are
// ignored for these classic groups.
//
// Repeated partitions are answered once. An answer is bounded by
// --group-max-response-bytes (32 bytes per partition plus its metadata),
// except for the committed offsets of its first group, which the group
// limits bound: a group past it gets COORDINATOR_LOAD_IN_PROGRESS
// (retriable; v0-v1, which have no group error, get it on one partition).

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

// Served up to v9: v10 names topics by id.
func init() { register(0, 9, (*Broker).handleOffsetFetch) }

func (b *Broker) handleOffsetFetch(req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse, _ *Client, respond Responder) {
	if req.Version < 8 {
		var want map[string][]int32
		if req.Topics != nil || req.Version < 2 {
			want = map[string][]int32{}
			for _, t := range req.Topics {
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
			}
		}
		offs, code, _ := b.groups.fetchOffsets(req.Group, want, topicOrder(req.Topics), 0, true)
		if code == kafka.ErrCoordinatorLoadInProgress && req.Version < 2 && len(req.Topics) > 0 && len(req.Topics[0].Partitions) > 0 {
			// No group error before v2: one partition carries it.
			offs = []fetchedOffset{{topic: req.Topics[0].Topic, partition: req.Topics[0].Partitions[0]}}
		}
		resp.ErrorCode = code
		resp.Topics = offsetFetchTopics(offs)
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
	var used int64
	for i, rg := range req.Groups {
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
		offs, code, n := b.groups.fetchOffsets(rg.Group, want, order, used, i == 0)
		used += n
		sg := kmsg.NewOffsetFetchResponseGroup()
		sg.Group, sg.ErrorCode = rg.Group, code
		for _, t := range offsetFetchTopics(offs) {
			gt := kmsg.NewOffsetFetchResponseGroupTopic()
			gt.Topic = t.Topic
			for _, p := range t.Partitions {
				// The v8+ partition is the same struct under another name.
				gt.Partitions = append(gt.Partitions, kmsg.OffsetFetchResponseGroupTopicPartition(p))
			}
			sg.Topics = append(sg.Topics, gt)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	respond(resp)
}

// offsetFetchTopics groups offs (in topic order) into the topics of an
// OffsetFetch answer; a partition with no committed offset answers offset
// and leader epoch -1 with empty metadata, as Kafka does.
func offsetFetchTopics(offs []fetchedOffset) []kmsg.OffsetFetchResponseTopic {
	var topics []kmsg.OffsetFetchResponseTopic
	var cur *kmsg.OffsetFetchResponseTopic
	for _, o := range offs {
		if cur == nil || cur.Topic != o.topic {
			topics = append(topics, kmsg.NewOffsetFetchResponseTopic())
			cur = &topics[len(topics)-1]
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
	return topics
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
// the topic order given, each partition once), or every committed offset
// when want is nil, and what they add to the answer. used is what the
// answer holds already; past --group-max-response-bytes the group gets
// COORDINATOR_LOAD_IN_PROGRESS, unless first is set and the partition has
// a committed offset (those are bounded by the group limits).
func (gs *groups) fetchOffsets(name string, want map[string][]int32, order []string, used int64, first bool) ([]fetchedOffset, int16, int64) {
	if name == "" {
		return nil, kafka.ErrInvalidGroupID, 0
	}
	var out []fetchedOffset
	var added int64
	over := false
	// fits charges one entry and reports whether it fits the answer.
	fits := func(o *fetchedOffset) bool {
		cost := int64(32 + len(o.c.metadata))
		if used+added+cost > gs.lim.MaxResponseBytes && !(first && o.ok) {
			over = true
			return false
		}
		added += cost
		return true
	}
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
					o := fetchedOffset{topic: t, partition: p, c: g.offsets[t][p], ok: true}
					if !fits(&o) {
						return
					}
					out = append(out, o)
				}
			}
			return
		}
		for _, t := range order {
			seen := make(map[int32]bool, len(want[t]))
			for _, p := range want[t] {
				if seen[p] {
					continue
				}
				seen[p] = true
				o := fetchedOffset{topic: t, partition: p}
				if g != nil {
					o.c, o.ok = g.offsets[t][p]
				}
				if !fits(&o) {
					return
				}
				out = append(out, o)
			}
		}
	})
	if over {
		gs.refuse(limResponseBytes, "OffsetFetch answer over the limit: group answered COORDINATOR_LOAD_IN_PROGRESS",
			"group", name, "max", gs.lim.MaxResponseBytes)
		return nil, kafka.ErrCoordinatorLoadInProgress, 0
	}
	return out, kafka.ErrNone, added
}

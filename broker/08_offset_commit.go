package broker

// OffsetCommit: versions 0-9 (v10 names topics by id and is not served).
// A commit with generation -1 (v0, admin tools, consumers without a group)
// is accepted only while the group has no members, and creates the group if
// needed; otherwise the member id, group.instance.id and generation must be
// current (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION), and a
// group completing a rebalance answers REBALANCE_IN_PROGRESS. Commits during
// PreparingRebalance are allowed, as in Kafka, so members can commit in
// their revoke callback. A commit counts as a heartbeat. The v2-v4
// retention time is ignored: offsets expire after the broker's
// offsets.retention.minutes (group_limits.go, expireOffsets). Metadata over
// offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE and offsets over
// the per-group count or the broker-wide bytes INVALID_COMMIT_OFFSET_SIZE,
// per partition; a new group beyond --max-groups COORDINATOR_NOT_AVAILABLE.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// Served up to v9: v10 names topics by id.
func init() { register(0, 9, (*Broker).handleOffsetCommit) }

func (b *Broker) handleOffsetCommit(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, _ *Client, respond Responder) {
	if req.Group == "" {
		respond(errResponse(req, kafka.ErrInvalidGroupID))
		return
	}
	gs := b.groups
	gs.do(func(out *outbox) {
		if gs.closed {
			out.send(respond, errResponse(req, kafka.ErrCoordinatorNotAvailable))
			return
		}
		g := gs.find(req.Group)
		var code int16
		switch {
		case g == nil && req.Generation < 0:
			var full bool
			if g, full = gs.get(req.Group, true); full {
				gs.refuseGroupsFull(req.Group)
				code = kafka.ErrCoordinatorNotAvailable
			}
		case g == nil:
			code = kafka.ErrIllegalGeneration
		default:
			code = g.validateCommit(req.Generation, req.MemberID, req.InstanceID)
		}
		if code != kafka.ErrNone {
			out.send(respond, errResponse(req, code))
			return
		}
		b.offsetBatch(func() { b.commitOffsets(req, g, resp) })
		g.forgetIfUnused()
		out.send(respond, resp)
	})
}

// commitOffsets commits the offsets of req into g and fills resp. The
// caller holds gs.mu.
func (b *Broker) commitOffsets(req *kmsg.OffsetCommitRequest, g *group, resp *kmsg.OffsetCommitResponse) {
	now := b.now()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			meta := ""
			if rp.Metadata != nil {
				meta = *rp.Metadata
			}
			if t.partitionOf(rp.Partition) == nil {
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
			} else {
				sp.ErrorCode = g.commitOffset(rt.Topic, rp.Partition, committedOffset{
					offset: rp.Offset, leaderEpoch: rp.LeaderEpoch, metadata: meta, at: now,
				})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}

// validateCommit checks who commits, as Kafka's classic group does. The
// caller holds gs.mu.
func (g *group) validateCommit(generation int32, memberID string, instanceID *string) int16 {
	if generation < 0 && g.state == groupEmpty {
		return kafka.ErrNone
	}
	m, code := g.checkMember(memberID, instanceID)
	switch {
	case code != kafka.ErrNone:
		return code
	case generation != g.generation:
		return kafka.ErrIllegalGeneration
	case g.state == groupCompletingRebalance:
		return kafka.ErrRebalanceInProgress
	}
	g.touch(m)
	return kafka.ErrNone
}

package broker

// What one client can make the group coordinator hold, and for how long.
// Every group, member, member protocol, assignment and committed offset is
// counted against a limit before it is stored; a request that would cross
// one is refused with the Kafka error a client reports, counted in
// floodgate_group_limit_refusals_total{limit} and logged at most once per
// limit per interval.
//
// The answers, and why:
//   - a member's protocols (JoinGroup) or assignment (SyncGroup) over
//     GroupLimits.MaxMemberMetadataBytes: INVALID_REQUEST (42). Apache Kafka
//     stores a group as one record of __consumer_offsets and answers a group
//     whose record exceeds that topic's max.message.bytes (1 MiB) with
//     UNKNOWN_SERVER_ERROR at SyncGroup; INVALID_REQUEST refuses the same
//     thing earlier and is not retried by clients, so the user sees it.
//   - a group full by members (Kafka's group.max.size) or by the bytes of its
//     members' metadata: GROUP_MAX_SIZE_REACHED (81), what Kafka answers a
//     member joining a full group.
//   - the broker-wide limits (number of groups, member metadata of all
//     groups): COORDINATOR_NOT_AVAILABLE (15). It is retriable: the client
//     retries while expired sessions and offsets free room, as with the
//     memory budget's REQUEST_TIMED_OUT.
//   - committed offsets over the per-group count or the broker-wide bytes:
//     INVALID_COMMIT_OFFSET_SIZE (28) per partition, Kafka's answer when an
//     offset commit does not fit into __consumer_offsets.
//   - commit metadata over offset.metadata.max.bytes: OFFSET_METADATA_TOO_LARGE
//     (12), as in Kafka.
//   - a DescribeGroups or OffsetFetch answer over MaxResponseBytes: the
//     groups beyond get COORDINATOR_LOAD_IN_PROGRESS (14), retriable, so a
//     client asks for them again in a smaller request; the first group is
//     always answered, and a group is bounded by the limits above.
//   - a session timeout outside [min, max]: INVALID_SESSION_TIMEOUT (26), as
//     with Kafka's group.min/max.session.timeout.ms.

import (
	"cmp"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/limits"
)

// errGroupMaxSizeReached is Kafka's GROUP_MAX_SIZE_REACHED.
const errGroupMaxSizeReached int16 = 81

// GroupLimits bounds the consumer group coordinator. Zero fields take the
// defaults of DefaultGroupLimits.
type GroupLimits struct {
	// MaxGroups bounds the groups of any state, Empty groups that only
	// hold offsets included.
	MaxGroups int
	// MaxMembers bounds the members of one group, members that were handed
	// an id with MEMBER_ID_REQUIRED included (Kafka's group.max.size).
	MaxMembers int
	// MaxMemberMetadataBytes bounds one member's protocols (names and
	// metadata) in JoinGroup and its assignment in SyncGroup.
	MaxMemberMetadataBytes int64
	// MaxGroupMetadataBytes bounds the protocols and assignments of all
	// members of one group.
	MaxGroupMetadataBytes int64
	// MaxTotalMetadataBytes bounds the protocols and assignments of all
	// members of all groups.
	MaxTotalMetadataBytes int64
	// MinSessionTimeout and MaxSessionTimeout bound a member's session
	// timeout (group.min/max.session.timeout.ms).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// OffsetsRetention is how long the offsets of an Empty group are kept
	// (offsets.retention.minutes); negative keeps them for ever.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheck is how often expired offsets are looked for
	// (offsets.retention.check.interval.ms).
	OffsetsRetentionCheck time.Duration
	// OffsetMetadataMaxBytes bounds the metadata of one committed offset
	// (offset.metadata.max.bytes).
	OffsetMetadataMaxBytes int
	// MaxGroupOffsets bounds the committed offsets of one group.
	MaxGroupOffsets int
	// MaxOffsetsBytes bounds the memory of all committed offsets, each
	// charged offsetCost plus its metadata.
	MaxOffsetsBytes int64
	// MaxResponseBytes bounds the member metadata of one DescribeGroups
	// answer and the committed offsets of one OffsetFetch answer, beyond
	// the first group.
	MaxResponseBytes int64
}

// DefaultGroupLimits are the limits of a zero GroupLimits. Session timeouts,
// retention and the metadata bound are Kafka's defaults.
func DefaultGroupLimits() GroupLimits {
	return GroupLimits{
		MaxGroups:              100000,
		MaxMembers:             1000,
		MaxMemberMetadataBytes: 1 << 20,
		MaxGroupMetadataBytes:  16 << 20,
		MaxTotalMetadataBytes:  256 << 20,
		MinSessionTimeout:      6 * time.Second,
		MaxSessionTimeout:      30 * time.Minute,
		OffsetsRetention:       7 * 24 * time.Hour,
		OffsetsRetentionCheck:  10 * time.Minute,
		OffsetMetadataMaxBytes: 4096,
		MaxGroupOffsets:        100000,
		MaxOffsetsBytes:        256 << 20,
		MaxResponseBytes:       16 << 20,
	}
}

// GroupLimitsFrom takes the group limits of the limits table.
func GroupLimitsFrom(c *limits.Config) GroupLimits {
	ret := c.OffsetsRetention
	if ret < 0 {
		ret = -1
	}
	return GroupLimits{
		MaxGroups:              c.MaxGroups,
		MaxMembers:             c.GroupMaxMembers,
		MaxMemberMetadataBytes: c.GroupMaxMemberMetadataBytes,
		MaxGroupMetadataBytes:  c.GroupMaxMetadataBytes,
		MaxTotalMetadataBytes:  c.GroupsMaxMetadataBytes,
		MinSessionTimeout:      c.GroupMinSessionTimeout,
		MaxSessionTimeout:      c.GroupMaxSessionTimeout,
		OffsetsRetention:       ret,
		OffsetMetadataMaxBytes: c.OffsetMetadataMaxBytes,
		MaxGroupOffsets:        c.GroupMaxOffsets,
		MaxOffsetsBytes:        c.OffsetsMaxBytes,
		MaxResponseBytes:       c.GroupMaxResponseBytes,
	}
}

// withDefaults fills zero fields from DefaultGroupLimits: counts and sizes
// that are not positive, durations that are zero (a negative
// OffsetsRetention means "never expire").
func (l GroupLimits) withDefaults() GroupLimits {
	d := DefaultGroupLimits()
	l.MaxGroups = positiveOr(l.MaxGroups, d.MaxGroups)
	l.MaxMembers = positiveOr(l.MaxMembers, d.MaxMembers)
	l.MaxMemberMetadataBytes = positiveOr(l.MaxMemberMetadataBytes, d.MaxMemberMetadataBytes)
	l.MaxGroupMetadataBytes = positiveOr(l.MaxGroupMetadataBytes, d.MaxGroupMetadataBytes)
	l.MaxTotalMetadataBytes = positiveOr(l.MaxTotalMetadataBytes, d.MaxTotalMetadataBytes)
	l.MinSessionTimeout = cmp.Or(l.MinSessionTimeout, d.MinSessionTimeout)
	l.MaxSessionTimeout = cmp.Or(l.MaxSessionTimeout, d.MaxSessionTimeout)
	l.OffsetsRetention = cmp.Or(l.OffsetsRetention, d.OffsetsRetention)
	l.OffsetsRetentionCheck = cmp.Or(l.OffsetsRetentionCheck, d.OffsetsRetentionCheck)
	l.OffsetMetadataMaxBytes = positiveOr(l.OffsetMetadataMaxBytes, d.OffsetMetadataMaxBytes)
	l.MaxGroupOffsets = positiveOr(l.MaxGroupOffsets, d.MaxGroupOffsets)
	l.MaxOffsetsBytes = positiveOr(l.MaxOffsetsBytes, d.MaxOffsetsBytes)
	l.MaxResponseBytes = positiveOr(l.MaxResponseBytes, d.MaxResponseBytes)
	return l
}

// Costs charged against MaxOffsetsBytes: a committed offset is a map entry
// of a partition and a committedOffset (56 bytes, plus map overhead), a
// group's topic a map of its own.
const (
	offsetCost      = 80
	offsetTopicCost = 96
)

// Names of the group limits, as their flags (and the metric's label).
const (
	limMaxGroups         = "max-groups"
	limMaxMembers        = "group-max-members"
	limMemberMetadata    = "group-max-member-metadata-bytes"
	limGroupMetadata     = "group-max-metadata-bytes"
	limTotalMetadata     = "groups-max-metadata-bytes"
	limMinSession        = "group-min-session-timeout-ms"
	limMaxSession        = "group-max-session-timeout-ms"
	limOffsetMetadata    = "offset-metadata-max-bytes"
	limGroupOffsets      = "group-max-offsets"
	limTotalOffsetsBytes = "offsets-max-bytes"
	limResponseBytes     = "group-max-response-bytes"
)

// groupMetrics are the coordinator's gauges and limit counters.
type groupMetrics struct {
	set            *metrics.Set
	metadataBytes  *metrics.Gauge
	offsets        *metrics.Gauge
	offsetsBytes   *metrics.Gauge
	offsetsExpired *metrics.Counter
	offsetsLogSize *metrics.Gauge
}

func newGroupMetrics(set *metrics.Set) *groupMetrics {
	return &groupMetrics{
		set:            set,
		metadataBytes:  set.NewGauge("floodgate_group_metadata_bytes", nil),
		offsets:        set.NewGauge("floodgate_committed_offsets", nil),
		offsetsBytes:   set.NewGauge("floodgate_committed_offsets_bytes", nil),
		offsetsExpired: set.NewCounter("floodgate_committed_offsets_expired_total"),
		offsetsLogSize: set.NewGauge("floodgate_offsets_log_bytes", nil),
	}
}

// refused counts one refusal by limit.
func (m *groupMetrics) refused(limit string) {
	m.set.GetOrCreateCounter(`floodgate_group_limit_refusals_total{limit="` + limit + `"}`).Inc()
}

// refuse counts and logs one refusal by limit. It does not take gs.mu.
func (gs *groups) refuse(limit, msg string, args ...any) {
	gs.met.refused(limit)
	gs.warn.Warn(limit, msg, append(args, "limit", limit)...)
}

// protocolCost is what one protocol costs beyond its name and metadata
// (its string and slice headers), so that many empty protocols are not
// free.
const protocolCost = 40

// protocolsBytes is what a member's protocols cost.
func protocolsBytes(ps []protocol) int64 {
	var n int64
	for _, p := range ps {
		n += int64(protocolCost + len(p.name) + len(p.metadata))
	}
	return n
}

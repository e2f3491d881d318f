package broker

// DescribeGroups: versions 0-6. A group that does not exist is described as
// Dead with no error before v6 and gets GROUP_ID_NOT_FOUND from v6, as in
// Kafka. Members carry their metadata for the selected protocol and, once
// the group is Stable, their assignment. Authorized operations are not
// computed (there are no ACLs): the field keeps its "not requested" value.
// The member metadata of one answer is bounded by --group-max-response-bytes
// beyond its first group: the groups past it get COORDINATOR_LOAD_IN_PROGRESS
// (retriable), so naming a large group many times cannot multiply it.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 6, (*Broker).handleDescribeGroups) }

func (b *Broker) handleDescribeGroups(req *kmsg.DescribeGroupsRequest, resp *kmsg.DescribeGroupsResponse, _ *Client, respond Responder) {
	gs := b.groups
	refused := 0
	gs.do(func(*outbox) {
		var used int64
		for _, name := range req.Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group = name
			g := gs.all[name]
			var cost int64
			if g != nil {
				cost = g.describeCost()
			}
			switch {
			case name == "":
				dg.ErrorCode = kafka.ErrInvalidGroupID
			case used > 0 && used+cost > gs.lim.MaxResponseBytes:
				dg.ErrorCode = kafka.ErrCoordinatorLoadInProgress
				if req.Version >= 6 {
					dg.ErrorMessage = kmsg.StringPtr("answer over --group-max-response-bytes: ask for this group again")
				}
				refused++
			case g == nil:
				dg.State = "Dead"
				if req.Version >= 6 {
					dg.ErrorCode = kafka.ErrGroupIDNotFound
					dg.ErrorMessage = kmsg.StringPtr("group " + name + " not found")
				}
			default:
				used += cost
				dg.State, dg.ProtocolType, dg.Protocol = g.state.String(), g.protocolType, g.protocol
				ids := make([]string, 0, len(g.members))
				for id := range g.members {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				for _, id := range ids {
					m := g.members[id]
					dm := kmsg.NewDescribeGroupsResponseGroupMember()
					dm.MemberID, dm.InstanceID = m.id, m.instanceID
					dm.ClientID, dm.ClientHost = m.clientID, m.clientHost
					dm.ProtocolMetadata = m.metadataFor(g.protocol)
					if g.state == groupStable {
						dm.MemberAssignment = m.assignment
					}
					dg.Members = append(dg.Members, dm)
				}
			}
			resp.Groups = append(resp.Groups, dg)
		}
	})
	if refused > 0 {
		gs.refuse(limResponseBytes, "DescribeGroups answer over the limit: groups beyond it answered COORDINATOR_LOAD_IN_PROGRESS",
			"groups", refused, "max", gs.lim.MaxResponseBytes)
	}
	respond(resp)
}

// describeCost bounds what g adds to a DescribeGroups answer: its members'
// protocols and assignments (all protocols, not only the selected one) and
// their ids. The caller holds gs.mu.
func (g *group) describeCost() int64 {
	n := g.metaBytes
	for _, m := range g.members {
		n += int64(32 + len(m.id) + len(m.clientID) + len(m.clientHost))
		if m.instanceID != nil {
			n += int64(len(*m.instanceID))
		}
	}
	return n
}

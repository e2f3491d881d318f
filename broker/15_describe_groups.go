package broker

// DescribeGroups: versions 0-6. A group that does not exist is described as
// Dead with no error before v6 and gets GROUP_ID_NOT_FOUND from v6, as in
// Kafka. Members carry their metadata for the selected protocol and, once
// the group is Stable, their assignment. Authorized operations are not
// computed (there are no ACLs): the field keeps its "not requested" value.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func (b *Broker) handleDescribeGroups(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	resp.SetVersion(req.Version)
	gs := b.groups
	gs.do(func(*outbox) {
		for _, name := range req.Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group = name
			g := gs.all[name]
			switch {
			case name == "":
				dg.ErrorCode = kafka.ErrInvalidGroupID
			case g == nil:
				dg.State = "Dead"
				if req.Version >= 6 {
					dg.ErrorCode = kafka.ErrGroupIDNotFound
					dg.ErrorMessage = kmsg.StringPtr("group " + name + " not found")
				}
			default:
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
	respond(resp)
}

package broker

// DeleteGroups: versions 0-2. Only groups without members can be deleted
// (NON_EMPTY_GROUP otherwise); their committed offsets go with them.
// Unknown groups get GROUP_ID_NOT_FOUND.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { register(0, 2, (*Broker).handleDeleteGroups) }

func (b *Broker) handleDeleteGroups(req *kmsg.DeleteGroupsRequest, resp *kmsg.DeleteGroupsResponse, _ *Client, respond Responder) {
	gs := b.groups
	gs.do(func(*outbox) {
		for _, name := range req.Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group = name
			g := gs.all[name]
			switch {
			case name == "":
				dg.ErrorCode = kafka.ErrInvalidGroupID
			case g == nil:
				dg.ErrorCode = kafka.ErrGroupIDNotFound
			case len(g.members) > 0 || len(g.pending) > 0 || g.state != groupEmpty:
				dg.ErrorCode = kafka.ErrNonEmptyGroup
			default:
				g.drop()
				b.persistGroupDelete(name)
				b.log.Info("group deleted", "group", name)
			}
			resp.Groups = append(resp.Groups, dg)
		}
	})
	respond(resp)
}

package broker

// DeleteGroups: versions 0-2. Only groups without members can be deleted
// (NON_EMPTY_GROUP otherwise); their committed offsets go with them.
// Unknown groups get GROUP_ID_NOT_FOUND.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

func init() { regKey(42, 0, 2, (*Broker).handleDeleteGroups) }

func (b *Broker) handleDeleteGroups(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	resp.SetVersion(req.Version)
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

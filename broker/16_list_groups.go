package broker

// ListGroups: versions 0-5. Every group this coordinator knows, including
// Empty groups that only hold offsets. The v4 states filter matches state
// names case-insensitively; the v5 types filter knows only "classic" (every
// group here is a classic group).

import (
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 5, (*Broker).handleListGroups) }

func (b *Broker) handleListGroups(req *kmsg.ListGroupsRequest, resp *kmsg.ListGroupsResponse, _ *Client, respond Responder) {
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	// The lock is taken per chunk of groups, not for all of them at once,
	// so listing many groups does not stall the other groups' requests.
	gs := b.groups
	var list []*group
	gs.do(func(*outbox) {
		list = make([]*group, 0, len(gs.all))
		for _, g := range gs.all {
			list = append(list, g)
		}
	})
	const chunk = 1024
	for i := 0; i < len(list); i += chunk {
		gs.do(func(*outbox) {
			for _, g := range list[i:min(i+chunk, len(list))] {
				if gs.all[g.name] != g {
					continue // deleted meanwhile
				}
				state := g.state.String()
				if !match(req.StatesFilter, state) || !match(req.TypesFilter, "classic") {
					continue
				}
				lg := kmsg.NewListGroupsResponseGroup()
				lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.name, g.protocolType, state, "classic"
				resp.Groups = append(resp.Groups, lg)
			}
		})
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	respond(resp)
}

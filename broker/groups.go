package broker

// groups is the consumer group coordinator (the classic protocol). The
// group APIs are registered by registerGroups.
type groups struct {
	b *Broker
}

func newGroups(b *Broker) *groups { return &groups{b: b} }

func (g *groups) close() {}

// registerGroups adds the group APIs to the handler table.
func (b *Broker) registerGroups() {}

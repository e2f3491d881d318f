package broker

// registerAdmin adds the admin APIs beyond topic create/delete to the
// handler table.
func (b *Broker) registerAdmin() {}

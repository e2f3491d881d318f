package broker

// register fills the handler table. One line per API: key, min and max
// version served. ApiVersions is derived from this table.
func (b *Broker) register() {
	b.reg(0, 0, 12, b.handleProduce)
	b.reg(1, 4, 12, b.handleFetch)
	b.reg(2, 0, 8, b.handleListOffsets)
	b.reg(3, 0, 12, b.handleMetadata)
	b.reg(18, 0, 3, b.handleAPIVersions)
	b.reg(19, 0, 7, b.handleCreateTopics)
	b.reg(20, 0, 6, b.handleDeleteTopics)
	b.reg(22, 0, 5, b.handleInitProducerID)
	b.reg(32, 0, 4, b.handleDescribeConfigs)
	b.registerGroups()
	b.registerAdmin()
	b.buildAPIVersions()
}

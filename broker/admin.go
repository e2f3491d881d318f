package broker

import "time"

// retentionInterval is how often the retention sweeper looks at every
// partition.
const retentionInterval = 3 * time.Second

// registerAdmin adds the admin APIs beyond topic create/delete to the
// handler table and starts the retention sweeper, which Broker.Close stops
// (through the group coordinator's close hooks).
func (b *Broker) registerAdmin() {
	b.reg(21, 0, 2, b.handleDeleteRecords)
	b.reg(23, 0, 4, b.handleOffsetForLeaderEpoch)
	b.reg(33, 0, 2, b.handleAlterConfigs)
	b.reg(37, 0, 3, b.handleCreatePartitions)
	b.reg(44, 0, 1, b.handleIncrementalAlterConfigs)
	b.reg(60, 0, 2, b.handleDescribeCluster)
	b.startRetention(retentionInterval)
}

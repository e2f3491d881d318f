package broker

import "github.com/VictoriaMetrics/metrics"

// brokerMetrics are the broker's own gauges and counters.
type brokerMetrics struct {
	set             *metrics.Set
	topics          *metrics.Gauge
	recordsIn       *metrics.Counter
	batchesIn       *metrics.Counter
	duplicates      *metrics.Counter
	fetchWaiting    *metrics.Gauge
	groups          *metrics.Gauge
	members         *metrics.Gauge
	rebalances      *metrics.Counter
	retentionDelete *metrics.Counter
	partitions      *metrics.Gauge
	topicsWrites    *metrics.Counter
	segmentsFenced  *metrics.Counter
}

func newBrokerMetrics(set *metrics.Set) brokerMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	return brokerMetrics{
		set:             set,
		topics:          set.NewGauge("floodgate_topics", nil),
		recordsIn:       set.NewCounter("floodgate_records_in_total"),
		batchesIn:       set.NewCounter("floodgate_batches_in_total"),
		duplicates:      set.NewCounter("floodgate_produce_duplicate_batches_total"),
		fetchWaiting:    set.NewGauge("floodgate_fetch_waiting", nil),
		groups:          set.NewGauge("floodgate_groups", nil),
		members:         set.NewGauge("floodgate_group_members", nil),
		rebalances:      set.NewCounter("floodgate_group_rebalances_total"),
		retentionDelete: set.NewCounter("floodgate_retention_deleted_batches_total"),
		partitions:      set.NewGauge("floodgate_partitions", nil),
		topicsWrites:    set.NewCounter("floodgate_topics_file_writes_total"),
		segmentsFenced:  set.NewCounter("floodgate_segments_fenced_total"),
	}
}

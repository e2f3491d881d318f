package broker

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// brokerMetrics are the broker's own gauges and counters.
type brokerMetrics struct {
	set             *metrics.Set
	topics          *metrics.Gauge
	recordsIn       *metrics.Counter
	batchesIn       *metrics.Counter
	duplicates      *metrics.Counter
	groups          *metrics.Gauge
	members         *metrics.Gauge
	rebalances      *metrics.Counter
	retentionDelete *metrics.Counter
	partitions      *metrics.Gauge
	topicsWrites    *metrics.Counter
	segmentsFenced  *metrics.Counter
	invalid         *invalidBatches
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
		groups:          set.NewGauge("floodgate_groups", nil),
		members:         set.NewGauge("floodgate_group_members", nil),
		rebalances:      set.NewCounter("floodgate_group_rebalances_total"),
		retentionDelete: set.NewCounter("floodgate_retention_deleted_batches_total"),
		partitions:      set.NewGauge("floodgate_partitions", nil),
		topicsWrites:    set.NewCounter("floodgate_topics_file_writes_total"),
		segmentsFenced:  set.NewCounter("floodgate_segments_fenced_total"),
		invalid:         newInvalidBatches(set),
	}
}

// invalidBatches counts produced batches refused by validation, by reason,
// and rate-limits the WARN that reports them: a flood of bad batches
// costs one log line per reason and interval.
type invalidBatches struct {
	counters [numInvalidReasons]*metrics.Counter
	lastWarn [numInvalidReasons]atomic.Int64 // unix nanos
}

// invalidReason classifies a refused batch.
type invalidReason uint8

const (
	invalidCorrupt invalidReason = iota
	invalidRecord
	invalidTimestamp
	invalidInflate
	invalidFormat
	numInvalidReasons
)

var invalidReasonNames = [numInvalidReasons]string{"corrupt", "invalid_record", "invalid_timestamp", "inflated_too_large", "unsupported_format"}

// warnInterval is how often each kind of refusal is logged at most.
const warnInterval = 10 * time.Second

func newInvalidBatches(set *metrics.Set) *invalidBatches {
	ib := &invalidBatches{}
	for i, name := range invalidReasonNames {
		ib.counters[i] = set.NewCounter(`floodgate_produce_invalid_batches_total{reason="` + name + `"}`)
	}
	return ib
}

// count records a refusal and reports whether it is due to be logged.
func (ib *invalidBatches) count(r invalidReason, now time.Time) bool {
	ib.counters[r].Inc()
	last := ib.lastWarn[r].Load()
	return now.UnixNano()-last >= int64(warnInterval) && ib.lastWarn[r].CompareAndSwap(last, now.UnixNano())
}

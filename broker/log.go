package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// storedBatch is one record batch in a partition's log, kept exactly as the
// producer sent it except for the base offset (and append time) the broker
// assigned.
type storedBatch struct {
	base, last   int64
	maxTimestamp int64
	appended     time.Time
	raw          []byte
}

// partitionLog holds a partition's batches: in memory (memLog) or in
// segment files (diskLog). Appends and deletions are serialised by the
// partition's lock; reads may run at any time.
type partitionLog interface {
	// append stores a stamped batch, rolling segments at segmentBytes.
	append(sb storedBatch, segmentBytes int64) error
	// read returns whole batches from the one holding offset, up to limit
	// bytes, but the first batch whole when first is set.
	read(offset, limit int64, first bool) ([]byte, error)
	// offsetForTime finds the first batch whose max timestamp is >= ts.
	offsetForTime(ts int64) (base, maxTS int64, ok bool, err error)
	// maxTimestamp finds the first batch with the largest max timestamp.
	maxTimestamp() (last, ts int64, ok bool, err error)
	// deleteBefore drops what lies entirely below offset.
	deleteBefore(offset int64) error
	// retain applies retention.ms and retention.bytes (-1: off) and returns
	// the units (batches or segments) deleted and the first offset left.
	retain(now time.Time, ms, bytes int64) (deleted int, start int64, err error)
	// close releases files; remove also deletes them (topic deletion).
	close() error
	remove() error
}

// partition is one partition's log and the state that goes with it.
type partition struct {
	topic *topic
	index int32

	mu        sync.Mutex
	log       partitionLog
	logStart  int64
	next      int64 // high watermark: offset of the next record
	producers map[int64]*producerState
	waiters   map[*fetchWaiter]struct{}
}

// topic is a named set of partitions with its configs.
type topic struct {
	name    string
	id      [16]byte
	parts   atomic.Pointer[[]*partition] // replaced whole by CreatePartitions
	configs map[string]string
	store   *diskStore // nil: in memory
	log     *slog.Logger
	growing bool            // CreatePartitions is opening new partitions; under the broker's mu
	states  *producerStates // the broker's, bounding its partitions' producer states
}

// newTopic returns a topic with its partitions' logs opened (recovered
// from disk when the broker has a data dir).
func (b *Broker) newTopic(name string, id [16]byte, partitions int32, configs map[string]string) *topic {
	t := &topic{name: name, id: id, configs: configs, store: b.store, log: b.log, states: b.states}
	if t.configs == nil {
		t.configs = map[string]string{}
	}
	t.addPartitions(partitions)
	return t
}

// addPartitions opens n more partitions and publishes them.
func (t *topic) addPartitions(n int32) {
	t.publishPartitions(t.newPartitions(int32(len(t.partitionList())), n))
}

// newPartitions opens (recovering) partitions from..from+n-1.
func (t *topic) newPartitions(from, n int32) []*partition {
	parts := make([]*partition, 0, n)
	for i := int32(0); i < n; i++ {
		p := &partition{
			topic:     t,
			index:     from + i,
			producers: map[int64]*producerState{},
			waiters:   map[*fetchWaiter]struct{}{},
		}
		if t.store == nil {
			p.log = &memLog{}
		} else {
			t.store.openPartition(p)
		}
		parts = append(parts, p)
	}
	return parts
}

// publishPartitions appends parts to the topic's partition list, which is
// replaced whole.
func (t *topic) publishPartitions(add []*partition) {
	old := t.partitionList()
	parts := make([]*partition, len(old), len(old)+len(add))
	copy(parts, old)
	parts = append(parts, add...)
	t.parts.Store(&parts)
}

// partitionList returns the topic's partitions; the slice is never mutated.
func (t *topic) partitionList() []*partition {
	if p := t.parts.Load(); p != nil {
		return *p
	}
	return nil
}

// appendLocked appends a stamped batch. The caller holds p.mu.
func (p *partition) appendLocked(sb storedBatch, segmentBytes int64) error {
	if err := p.log.append(sb, segmentBytes); err != nil {
		return err
	}
	p.next = sb.last + 1
	return nil
}

// wakeLocked wakes every fetch waiting on this partition. The caller holds p.mu.
func (p *partition) wakeLocked() {
	for w := range p.waiters {
		delete(p.waiters, w)
		w.wake()
	}
}

// truncateBefore drops whole batches or segments below offset
// (DeleteRecords) and moves the log start. The caller holds p.mu.
func (p *partition) truncateBefore(offset int64) error {
	offset = min(offset, p.next)
	if err := p.log.deleteBefore(offset); err != nil {
		return err
	}
	p.logStart = max(p.logStart, offset)
	return nil
}

// storageError logs a failed disk operation of one partition, which answers
// KAFKA_STORAGE_ERROR for it.
func (t *topic) storageError(op string, partition int32, err error) {
	t.log.Error(op+" failed: answering KAFKA_STORAGE_ERROR", "topic", t.name, "partition", partition, "err", err)
}

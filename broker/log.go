package broker

import (
	"sort"
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

// partition is one partition's log and the state that goes with it.
type partition struct {
	topic *topic
	index int32

	mu        sync.Mutex
	batches   []storedBatch
	logStart  int64
	next      int64 // high watermark: offset of the next record
	size      int64 // bytes of batches held
	producers map[int64]*producerState
	waiters   map[*fetchWaiter]struct{}
}

// topic is a named set of partitions with its configs.
type topic struct {
	name    string
	id      [16]byte
	parts   atomic.Pointer[[]*partition] // replaced whole by CreatePartitions
	configs map[string]string
}

func newTopic(name string, partitions int32, configs map[string]string) *topic {
	t := &topic{name: name, id: newUUID(), configs: configs}
	if t.configs == nil {
		t.configs = map[string]string{}
	}
	t.addPartitions(partitions)
	return t
}

func (t *topic) addPartitions(n int32) {
	old := t.partitionList()
	parts := make([]*partition, len(old), len(old)+int(n))
	copy(parts, old)
	for i := int32(0); i < n; i++ {
		parts = append(parts, &partition{
			topic:     t,
			index:     int32(len(parts)),
			producers: map[int64]*producerState{},
			waiters:   map[*fetchWaiter]struct{}{},
		})
	}
	t.parts.Store(&parts)
}

// partitionList returns the topic's partitions; the slice is never mutated.
func (t *topic) partitionList() []*partition {
	if p := t.parts.Load(); p != nil {
		return *p
	}
	return nil
}

// findBatch returns the index of the batch holding offset, or len(batches).
// The caller holds p.mu.
func (p *partition) findBatch(offset int64) int {
	return sort.Search(len(p.batches), func(i int) bool { return p.batches[i].last >= offset })
}

// appendLocked appends a stamped batch. The caller holds p.mu.
func (p *partition) appendLocked(sb storedBatch) {
	p.batches = append(p.batches, sb)
	p.next = sb.last + 1
	p.size += int64(len(sb.raw))
}

// wakeLocked wakes every fetch waiting on this partition. The caller holds p.mu.
func (p *partition) wakeLocked() {
	for w := range p.waiters {
		delete(p.waiters, w)
		w.wake()
	}
}

// truncateBefore drops whole batches below offset (DeleteRecords,
// retention) and moves the log start. The caller holds p.mu.
func (p *partition) truncateBefore(offset int64) {
	if offset > p.next {
		offset = p.next
	}
	i := 0
	for i < len(p.batches) && p.batches[i].last < offset {
		p.size -= int64(len(p.batches[i].raw))
		i++
	}
	if i > 0 {
		p.batches = append(p.batches[:0:0], p.batches[i:]...)
	}
	if offset > p.logStart {
		p.logStart = offset
	}
}

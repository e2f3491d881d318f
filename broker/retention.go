package broker

// Time and size retention (topic configs retention.ms and retention.bytes,
// cleanup.policy=delete only). A background sweeper deletes from the head of
// each partition. With a data dir the unit is the segment, as in Kafka: a
// segment goes once its largest timestamp (its file's modification time
// when it has none) is retention.ms in the past, an expired active segment
// is rolled first, and old segments go while the rest still holds at least
// retention.bytes. In memory the unit is the batch (a batch is old once its
// max timestamp, or its append time when unset, is retention.ms in the
// past; batches go while the partition holds more than retention.bytes), so
// memory deletes sooner and finer, never later. -1 turns either limit off.

import (
	"time"
)

// retentionInterval is how often the retention sweeper (started by Open,
// stopped by Close) looks at every partition.
const retentionInterval = 3 * time.Second

// sweepRetention applies retention to every partition once and returns the
// number of batches (in memory) or segments (on disk) deleted.
func (b *Broker) sweepRetention() int {
	now := b.now()
	deleted := 0
	for _, t := range b.allTopics() {
		ms := b.topicConfigInt(t, "retention.ms")
		bytes := b.topicConfigInt(t, "retention.bytes")
		if ms < 0 && bytes < 0 {
			continue
		}
		parts := t.partitionList()
		for _, p := range parts {
			n := p.applyRetention(now, ms, bytes)
			if n > 0 {
				b.log.Debug("retention deleted batches or segments", "topic", t.name, "partition", p.index, "deleted", n)
			}
			deleted += n
		}
	}
	if deleted > 0 {
		b.metrics.retentionDelete.Add(deleted)
	}
	return deleted
}

// applyRetention deletes what retention.ms (ms) and retention.bytes
// (bytes) no longer allow from p, and returns how many batches (in memory)
// or segments (on disk) it deleted.
func (p *partition) applyRetention(now time.Time, ms, bytes int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, start, err := p.log.retain(now, ms, bytes)
	if err != nil {
		p.topic.storageError("retention", p.index, err)
	}
	if n > 0 && start > p.logStart {
		p.logStart = min(start, p.next)
	}
	return n
}

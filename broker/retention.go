package broker

// Time and size retention (topic configs retention.ms and retention.bytes,
// cleanup.policy=delete only). A background sweeper deletes whole batches
// from the head of each partition: a batch is old once its max timestamp
// (its append time when the timestamp is unset) is retention.ms in the past,
// and batches go while the partition holds more than retention.bytes.
// Kafka deletes whole segments; floodgate's unit is the batch, so it
// deletes sooner and finer, never later. -1 turns either limit off.

import (
	"time"
)

// startRetention runs the sweeper every interval until the broker closes.
func (b *Broker) startRetention(interval time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				b.sweepRetention()
			}
		}
	}()
	b.groups.onClose(func() {
		close(stop)
		<-done
	})
}

// sweepRetention applies retention to every partition once and returns the
// number of batches deleted.
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
				b.log.Debug("retention deleted batches", "topic", t.name, "partition", p.index, "batches", n)
			}
			deleted += n
		}
	}
	if deleted > 0 {
		b.metrics.retentionDelete.Add(deleted)
	}
	return deleted
}

// applyRetention deletes the batches of p that retention.ms (ms) and
// retention.bytes (bytes) no longer allow, and returns how many it deleted.
func (p *partition) applyRetention(now time.Time, ms, bytes int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	cutoff := now.UnixMilli() - ms
	size := p.size
	i := 0
	for ; i < len(p.batches); i++ {
		sb := &p.batches[i]
		ts := sb.maxTimestamp
		if ts < 0 {
			ts = sb.appended.UnixMilli()
		}
		tooOld := ms >= 0 && ts < cutoff
		tooBig := bytes >= 0 && size > bytes
		if !tooOld && !tooBig {
			break
		}
		size -= int64(len(sb.raw))
	}
	if i == 0 {
		return 0
	}
	p.truncateBefore(p.batches[i-1].last + 1)
	return i
}

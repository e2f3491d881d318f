package broker

import (
	"sort"
	"sync"
	"time"

	"github.com/floodgate/floodgate/storage"
)

// memLog keeps a partition's batches in memory (--in-memory, tests). Its
// unit of deletion is the batch.
type memLog struct {
	mu      sync.RWMutex
	batches []storedBatch
	size    int64
}

func (m *memLog) append(sb storedBatch, _ int64) error {
	m.mu.Lock()
	m.batches = append(m.batches, sb)
	m.size += int64(len(sb.raw))
	m.mu.Unlock()
	return nil
}

// find returns the index of the batch holding offset, or len(batches).
// The caller holds m.mu.
func (m *memLog) find(offset int64) int {
	return sort.Search(len(m.batches), func(i int) bool { return m.batches[i].last >= offset })
}

func (m *memLog) read(offset, limit int64, first bool) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := m.find(offset)
	var size int64
	j := i
	for ; j < len(m.batches); j++ {
		n := int64(len(m.batches[j].raw))
		if size+n > limit && !(first && j == i) {
			break
		}
		size += n
	}
	switch {
	case j == i:
		return nil, nil
	case j == i+1:
		return m.batches[i].raw, nil // immutable once appended
	}
	buf := make([]byte, 0, size)
	for k := i; k < j; k++ {
		buf = append(buf, m.batches[k].raw...)
	}
	return buf, nil
}

func (m *memLog) offsetForTime(ts int64) (int64, int64, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, sb := range m.batches {
		if sb.maxTimestamp >= ts {
			return sb.base, sb.maxTimestamp, true, nil
		}
	}
	return 0, 0, false, nil
}

func (m *memLog) maxTimestamp() (int64, int64, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	best, bestTS := int64(-1), int64(-1)
	for _, sb := range m.batches {
		if sb.maxTimestamp > bestTS {
			best, bestTS = sb.last, sb.maxTimestamp
		}
	}
	return best, bestTS, best >= 0, nil
}

func (m *memLog) deleteBefore(offset int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.batches) && m.batches[i].last < offset {
		m.size -= int64(len(m.batches[i].raw))
		i++
	}
	if i > 0 {
		m.batches = append(m.batches[:0:0], m.batches[i:]...)
	}
	return nil
}

// retain deletes batches from the head: a batch is old once its max
// timestamp (its append time when the timestamp is unset or more than
// storage.DefaultFutureSkew in the future) is ms in the past, and batches go while the log holds more than bytes. The unit is
// the batch, so memory deletes sooner and finer than segments, never later.
func (m *memLog) retain(now time.Time, ms, bytes int64) (int, int64, error) {
	m.mu.RLock()
	cutoff := now.UnixMilli() - ms
	future := now.Add(storage.DefaultFutureSkew).UnixMilli()
	size := m.size
	i := 0
	for ; i < len(m.batches); i++ {
		sb := &m.batches[i]
		ts := sb.maxTimestamp
		if ts < 0 || ts > future {
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
		m.mu.RUnlock()
		return 0, -1, nil
	}
	start := m.batches[i-1].last + 1
	m.mu.RUnlock()
	return i, start, m.deleteBefore(start)
}

func (m *memLog) close() error  { return nil }
func (m *memLog) remove() error { return nil }

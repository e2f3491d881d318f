package broker

import (
	"fmt"
	"time"

	"github.com/floodgate/floodgate/storage"
)

// diskLog keeps a partition's batches in segment files (storage.Log).
type diskLog struct {
	l *storage.Log
}

func (d diskLog) append(sb storedBatch, segmentBytes int64) error {
	info := storage.Batch{Base: sb.base, Last: sb.last, MaxTimestamp: sb.maxTimestamp}
	return d.l.Append(sb.raw, info, segmentBytes)
}

func (d diskLog) read(offset, limit int64, first bool) ([]byte, error) {
	return d.l.Read(offset, limit, first)
}

func (d diskLog) readSection(offset, limit int64, first bool, upTo int64) (*storage.Section, bool, error) {
	return d.l.ReadSection(offset, limit, first, upTo)
}

func (d diskLog) offsetForTime(ts int64) (int64, int64, bool, error) {
	b, ok, err := d.l.OffsetForTime(ts)
	return b.Base, b.MaxTimestamp, ok, err
}

func (d diskLog) maxTimestamp() (int64, int64, bool, error) {
	b, ok, err := d.l.MaxTimestamp()
	return b.Last, b.MaxTimestamp, ok, err
}

func (d diskLog) deleteBefore(offset int64) error {
	_, err := d.l.DeleteBefore(offset)
	return err
}

func (d diskLog) retain(now time.Time, ms, bytes int64) (int, int64, error) {
	n, err := d.l.Retain(now, ms, bytes)
	return n, d.l.Stats().Start, err
}

func (d diskLog) close() error  { return d.l.Close() }
func (d diskLog) remove() error { return d.l.Remove() }

// brokenLog stands for a partition whose log could not be opened: every
// operation fails, and the partition answers KAFKA_STORAGE_ERROR while the
// others keep serving.
type brokenLog struct{ err error }

func (b brokenLog) append(storedBatch, int64) error { return b.err }
func (b brokenLog) read(int64, int64, bool) ([]byte, error) {
	return nil, b.err
}
func (b brokenLog) offsetForTime(int64) (int64, int64, bool, error) { return 0, 0, false, b.err }
func (b brokenLog) maxTimestamp() (int64, int64, bool, error)       { return 0, 0, false, b.err }
func (b brokenLog) deleteBefore(int64) error                        { return b.err }
func (b brokenLog) retain(time.Time, int64, int64) (int, int64, error) {
	return 0, -1, nil
}
func (b brokenLog) close() error  { return nil }
func (b brokenLog) remove() error { return nil }

// errPartitionOffline wraps the reason a partition's log is unusable.
func errPartitionOffline(name string, err error) error {
	return fmt.Errorf("partition %s offline: %w", name, err)
}

// offline returns the error of a partition log that cannot serve at all.
func offline(lg partitionLog) error {
	if b, ok := lg.(brokenLog); ok {
		return b.err
	}
	return nil
}

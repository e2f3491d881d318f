package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultIndexIntervalBytes = 4096
	DefaultRollAge            = 7 * 24 * time.Hour
	DefaultRecoveryBytes      = 1 << 20
	// MaxSegmentBytes is the largest segment: index positions are uint32.
	MaxSegmentBytes = 1<<31 - 1
)

// ErrClosed is returned by a Log used after Close or Remove.
var ErrClosed = errors.New("log closed")

// Options configures one partition log.
type Options struct {
	// Dir is the partition's directory; it is created when missing.
	Dir string
	// Name names the log in errors and log lines (as "topic[3]").
	Name string
	// IndexIntervalBytes is the log bytes between index entries.
	IndexIntervalBytes int64
	// RollAge rolls a segment once it has been active this long.
	RollAge time.Duration
	// RecoveryBytes is how much of the log's tail Open checks batch by
	// batch (CRC) and reads producer state from.
	RecoveryBytes int64
	// Syncer fsyncs written segments; nil means never.
	Syncer *Syncer
	// Logger receives recovery and error events; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Log is one partition's log: segments in offset order, the last one
// active. It is safe for concurrent use: appends and deletions are
// exclusive, reads share the lock and read with pread.
type Log struct {
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex
	segs   []*segment
	start  int64 // log start offset
	next   int64 // offset of the next batch
	size   int64 // bytes of every segment
	closed bool
}

// Append writes one stamped batch (its offsets base..last and max
// timestamp in info) at the end of the log, rolling first when the active
// segment would grow past segmentBytes or has been active for RollAge. On
// error the log is unchanged.
func (l *Log) Append(raw []byte, info Batch, segmentBytes int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if info.Base != l.next || len(raw) < HeaderSize || int64(binary.BigEndian.Uint64(raw)) != info.Base {
		return fmt.Errorf("append %s: base offset %d, want %d stamped in the batch", l.opts.Name, info.Base, l.next)
	}
	segmentBytes = min(max(segmentBytes, 1), MaxSegmentBytes)
	s := l.active()
	if s.size > 0 && (s.size+int64(len(raw)) > segmentBytes || l.opts.Now().Sub(s.created) >= l.opts.RollAge) {
		if err := l.roll(); err != nil {
			return fmt.Errorf("append %s: %w", l.opts.Name, err)
		}
		s = l.active()
	}
	if s.size+int64(len(raw)) > MaxSegmentBytes {
		return fmt.Errorf("append %s: batch of %d bytes does not fit a segment", l.opts.Name, len(raw))
	}
	if _, err := s.f.WriteAt(raw, s.size); err != nil {
		return l.undo(s, fmt.Errorf("append %s: %w", l.opts.Name, err))
	}
	if len(s.entries) == 0 || s.sinceIndex >= l.opts.IndexIntervalBytes {
		e := indexEntry{rel: uint32(info.Base - s.base), pos: uint32(s.size), tsBefore: s.maxTS}
		if err := s.ix.write(len(s.entries), e); err != nil {
			return l.undo(s, fmt.Errorf("append %s: %w", l.opts.Name, err))
		}
		s.entries = append(s.entries, e)
		s.sinceIndex = 0
	}
	s.size += int64(len(raw))
	s.sinceIndex += int64(len(raw))
	s.maxTS = max(s.maxTS, info.MaxTimestamp)
	s.next = info.Last + 1
	l.size += int64(len(raw))
	l.next = info.Last + 1
	l.opts.Syncer.markDirty(s)
	return nil
}

// undo cuts a failed append off the active segment so the files end with
// whole batches; err is returned, with any error of the undo itself.
func (l *Log) undo(s *segment, err error) error {
	terr := s.f.Truncate(s.size)
	if terr == nil {
		terr = s.ix.truncate(len(s.entries))
	}
	if terr != nil {
		return errors.Join(err, fmt.Errorf("undo: %w", terr))
	}
	return err
}

// active returns the last segment. The caller holds l.mu.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// roll seals the active segment (fsyncing it unless the policy is never)
// and starts a new one at the next offset. The caller holds l.mu.
func (l *Log) roll() error {
	old := l.active()
	if l.opts.Syncer.Mode() != FsyncNever {
		if err := old.sync(); err != nil {
			return fmt.Errorf("roll: %w", err)
		}
	}
	s, err := createSegment(l.opts.Dir, l.next, l.opts.Now())
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	if l.opts.Syncer.Mode() != FsyncNever {
		if err := syncDir(l.opts.Dir); err != nil {
			s.remove()
			return fmt.Errorf("roll: %w", err)
		}
	}
	if err := old.seal(); err != nil {
		l.log.Warn("closing index files of a sealed segment", "log", l.opts.Name, "segment", old.base, "err", err)
	}
	l.segs = append(l.segs, s)
	return nil
}

// Read returns whole batches starting with the one holding offset, at most
// maxBytes of them, but the first batch whole even when larger if first is
// set. It returns nil at the end of the log. A read stays in one segment.
func (l *Log) Read(offset, maxBytes int64, first bool) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	for i = max(i, 0); i < len(l.segs); i++ {
		s := l.segs[i]
		if err := s.load(l.opts.IndexIntervalBytes); err != nil {
			return nil, fmt.Errorf("read %s: %w", l.opts.Name, err)
		}
		end := s.size
		pos, b, ok, err := s.find(offset, end)
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", l.opts.Name, offset, err)
		}
		if !ok {
			continue
		}
		out, err := s.readBatches(pos, end, b.Size, maxBytes, first)
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", l.opts.Name, offset, err)
		}
		return out, nil
	}
	return nil, nil
}

// OffsetForTime returns the first batch from the log start whose max
// timestamp is at or after ts; ok is false when there is none.
func (l *Log) OffsetForTime(ts int64) (b Batch, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		if err := s.load(l.opts.IndexIntervalBytes); err != nil {
			return b, false, fmt.Errorf("time lookup %s: %w", l.opts.Name, err)
		}
		if s.maxTS < ts || s.size == 0 {
			continue
		}
		b, ok, err = s.findTime(ts, s.size)
		if err != nil || ok {
			return b, ok, err
		}
	}
	return b, false, nil
}

// MaxTimestamp returns the first batch holding the log's largest
// timestamp; ok is false for an empty log.
func (l *Log) MaxTimestamp() (b Batch, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var best *segment
	for _, s := range l.segs {
		if err := s.load(l.opts.IndexIntervalBytes); err != nil {
			return b, false, fmt.Errorf("max timestamp %s: %w", l.opts.Name, err)
		}
		if s.size > 0 && (best == nil || s.maxTS > best.maxTS) {
			best = s
		}
	}
	if best == nil {
		return b, false, nil
	}
	return best.findTime(best.maxTS, best.size)
}

// StartOffset is the log start offset.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// NextOffset is the offset the next batch gets.
func (l *Log) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next
}

// Size is the bytes held in every segment.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Segments is the number of segments, the active one included.
func (l *Log) Segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// Sync fsyncs every file of the active segment now.
func (l *Log) Sync() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return l.active().sync()
}

// Close fsyncs (unless the policy is never) and closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.opts.Syncer.Mode() != FsyncNever {
		err = l.active().sync()
	}
	for _, s := range l.segs {
		err = errors.Join(err, s.close())
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", l.opts.Name, err)
	}
	return nil
}

// Remove closes the log and deletes its directory (topic deletion).
func (l *Log) Remove() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	var err error
	for _, s := range l.segs {
		err = errors.Join(err, s.close())
	}
	if e := os.RemoveAll(l.opts.Dir); e != nil {
		err = errors.Join(err, e)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", l.opts.Name, err)
	}
	return nil
}

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

	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/internal/atomicfile"
)

// Defaults of Options.
const (
	DefaultIndexIntervalBytes = 4096
	DefaultRollAge            = 7 * 24 * time.Hour
	DefaultRecoveryBytes      = 1 << 20
	// DefaultFutureSkew is Options.FutureSkew's default.
	DefaultFutureSkew = time.Hour
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
	// Files bounds the descriptors this log shares with the others of the
	// process; nil means a cache of its own without a bound.
	Files *FileCache
	// OnFence is called once for every sealed segment found damaged and
	// fenced (reads skip from its last good batch to the next segment);
	// nil means none.
	OnFence func(segment, goodBytes, lostBytes int64)
	// FutureSkew is how far past now a segment's max timestamp may be
	// before retention uses the segment's last write time instead (a
	// record stamped in the far future must not keep a segment forever);
	// zero means one hour, Kafka's message.timestamp.after.max.ms.
	FutureSkew time.Duration
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
	if info.Base != l.next || len(raw) < recordbatch.HeaderSize || int64(binary.BigEndian.Uint64(raw)) != info.Base {
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
	f, ix, err := s.acquire(true)
	if err != nil {
		return fmt.Errorf("append %s: %w", l.opts.Name, err)
	}
	defer s.release()
	if ix == nil { // cannot happen: the last segment is active until a roll replaces it
		return fmt.Errorf("append %s: segment %d is sealed", l.opts.Name, s.base)
	}
	s.unsynced.Store(true) // also when undone: the undo truncates
	if _, err := f.WriteAt(raw, s.size); err != nil {
		return l.undo(f, ix, s, fmt.Errorf("append %s: %w", l.opts.Name, err))
	}
	if len(s.entries) == 0 || s.sinceIndex >= l.opts.IndexIntervalBytes {
		e := indexEntry{rel: uint32(info.Base - s.base), pos: uint32(s.size), tsBefore: s.maxTS}
		if err := ix.write(len(s.entries), e); err != nil {
			return l.undo(f, ix, s, fmt.Errorf("append %s: %w", l.opts.Name, err))
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
func (l *Log) undo(f *os.File, ix *indexWriter, s *segment, err error) error {
	terr := f.Truncate(s.size)
	if terr == nil {
		terr = ix.truncate(len(s.entries))
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
	s, err := createSegment(l.opts.Dir, l.next, l.opts.Now(), l.opts.Files)
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	if l.opts.Syncer.Mode() != FsyncNever {
		if err := atomicfile.SyncDir(l.opts.Dir); err != nil {
			s.remove()
			return fmt.Errorf("roll: %w", err)
		}
	}
	old.seal()
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
		if err := l.load(s); err != nil {
			return nil, fmt.Errorf("read %s: %w", l.opts.Name, err)
		}
		end := s.end()
		pos, b, ok, err := s.find(offset, end)
		if err == nil && ok {
			var out []byte
			if out, err = s.readBatches(pos, end, b.Size, maxBytes, first); err == nil {
				return out, nil
			}
		}
		if err != nil {
			// A damaged sealed segment is fenced and the read goes on with
			// the next segment: consumers skip the damage, not wedge on it.
			if d := asDamage(err); d != nil && i < len(l.segs)-1 {
				if s.fence(d.pos) {
					l.fenced(s, d)
				}
				continue
			}
			return nil, fmt.Errorf("read %s at %d: %w", l.opts.Name, offset, err)
		}
	}
	return nil, nil
}

// load loads a sealed segment, reporting damage found on the way.
func (l *Log) load(s *segment) error {
	d, err := s.load(l.opts.IndexIntervalBytes)
	if d != nil {
		l.fenced(s, d)
	}
	return err
}

// fenced logs and reports the fence of s at the damage d.
func (l *Log) fenced(s *segment, d *damagedError) {
	lost := s.size - d.pos
	l.log.Error("damaged sealed segment fenced: reads skip from its last good batch to the next segment",
		"log", l.opts.Name, "segment", s.base, "good_bytes", d.pos, "lost_bytes", lost, "why", d.why)
	if l.opts.OnFence != nil {
		l.opts.OnFence(s.base, d.pos, lost)
	}
}

// OffsetForTime returns the first batch from the log start whose max
// timestamp is at or after ts; ok is false when there is none.
func (l *Log) OffsetForTime(ts int64) (b Batch, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		if err := l.load(s); err != nil {
			return b, false, fmt.Errorf("time lookup %s: %w", l.opts.Name, err)
		}
		if s.maxTS < ts || s.end() == 0 {
			continue
		}
		b, ok, err = s.findTime(ts, s.end())
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
		if err := l.load(s); err != nil {
			return b, false, fmt.Errorf("max timestamp %s: %w", l.opts.Name, err)
		}
		if s.end() > 0 && (best == nil || s.maxTS > best.maxTS) {
			best = s
		}
	}
	if best == nil {
		return b, false, nil
	}
	return best.findTime(best.maxTS, best.end())
}

// Stats is a consistent snapshot of a log's extent: its offsets and the
// bytes and segments that hold them.
type Stats struct {
	// Start is the log start offset.
	Start int64
	// Next is the offset the next batch gets.
	Next int64
	// Size is the bytes held in every segment.
	Size int64
	// Segments is the number of segments, the active one included.
	Segments int
}

// Stats reads the log's extent under one lock, so its fields agree with
// each other (a retention pass or an append cannot fall between them).
func (l *Log) Stats() Stats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return Stats{Start: l.start, Next: l.next, Size: l.size, Segments: len(l.segs)}
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

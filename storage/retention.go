package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/floodgate/floodgate/internal/atomicfile"
)

// DeleteBefore moves the log start to offset (never past the end) and
// deletes the segments whose every offset is below it, rolling first when
// that includes the active segment. A start inside a segment is kept in
// the start-offset file. It returns the number of segments deleted.
func (l *Log) DeleteBefore(offset int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	offset = min(offset, l.next)
	if offset <= l.start {
		return 0, nil
	}
	n := 0
	for n < len(l.segs) && l.segs[n].next <= offset && (l.segs[n].size > 0 || n < len(l.segs)-1) {
		n++
	}
	if err := l.dropFirst(n); err != nil {
		return 0, fmt.Errorf("delete records %s: %w", l.opts.Name, err)
	}
	l.start = offset
	if err := l.saveStart(); err != nil {
		return n, fmt.Errorf("delete records %s: %w", l.opts.Name, err)
	}
	return n, nil
}

// Retain deletes the oldest whole segments that retention allows to go:
// those whose largest timestamp is more than ms before now (ms >= 0), and
// those whose removal keeps the log at or above bytes (bytes >= 0). An
// expired active segment is rolled first. It returns the number of
// segments deleted.
//
// A segment without timestamps, or whose largest timestamp is more than
// FutureSkew past now, is aged by its file's last write instead: one
// record stamped in the year 9999 must not keep its segment, and every
// later one, forever (Kafka warns of such segments and, since
// message.timestamp.after.max.ms, refuses the records; these may be on
// disk from before).
func (l *Log) Retain(now time.Time, ms, bytes int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	cutoff := now.UnixMilli() - ms
	future := now.Add(l.opts.FutureSkew).UnixMilli()
	size := l.size
	n := 0
	for ; n < len(l.segs); n++ {
		s := l.segs[n]
		if s.size == 0 && n == len(l.segs)-1 {
			break // an empty active segment: nothing to delete
		}
		if err := l.load(s); err != nil {
			return 0, fmt.Errorf("retention %s: %w", l.opts.Name, err)
		}
		ts := s.maxTS
		if ts < 0 || ts > future {
			if ts > future && !s.futureWarned {
				s.futureWarned = true
				l.log.Warn("segment's largest timestamp is in the future: retention ages it by its last write instead",
					"log", l.opts.Name, "segment", s.base, "max_timestamp", ts)
			}
			if st, err := os.Stat(s.logPath()); err == nil {
				ts = st.ModTime().UnixMilli()
			}
		}
		tooOld := ms >= 0 && ts < cutoff
		tooBig := bytes >= 0 && size-s.size >= bytes
		if !tooOld && !tooBig {
			break
		}
		size -= s.size
	}
	if err := l.dropFirst(n); err != nil {
		return 0, fmt.Errorf("retention %s: %w", l.opts.Name, err)
	}
	if n > 0 && l.segs[0].base > l.start {
		l.start = l.segs[0].base
	}
	return n, nil
}

// dropFirst deletes the first n segments, rolling when that is all of
// them. The caller holds l.mu.
func (l *Log) dropFirst(n int) error {
	if n == 0 {
		return nil
	}
	if n == len(l.segs) {
		if err := l.roll(); err != nil {
			return err
		}
	}
	for _, s := range l.segs[:n] {
		l.size -= s.size
		if err := s.remove(); err != nil {
			l.segs = l.segs[1:]
			return err
		}
		l.segs = l.segs[1:]
	}
	if l.start < l.segs[0].base {
		l.start = l.segs[0].base
	}
	return nil
}

// saveStart persists a log start inside the first segment. The caller
// holds l.mu.
func (l *Log) saveStart() error {
	path := filepath.Join(l.opts.Dir, startOffsetFile)
	sync := l.opts.Syncer.Mode() != FsyncNever
	return atomicfile.Write(path, []byte(strconv.FormatInt(l.start, 10)+"\n"), sync)
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// segment is one log file and its indexes. size, next, entries (of the
// active segment), sinceIndex and maxTS are guarded by the Log's lock;
// sealed segments load entries and maxTS lazily under loadMu.
type segment struct {
	base int64
	path string // without extension
	f    *os.File

	size       int64 // bytes of whole batches in the file
	next       int64 // offset after the last batch (base when empty)
	created    time.Time
	sinceIndex int64 // log bytes since the last index entry

	loadMu  sync.Mutex
	loaded  bool
	entries []indexEntry
	maxTS   int64 // largest max timestamp in the segment, -1 when none

	fileMu sync.Mutex // guards f, ix and closed against sync and close
	ix     *indexWriter
	closed bool
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", base))
}

func (s *segment) logPath() string   { return s.path + ".log" }
func (s *segment) indexPath() string { return s.path + ".index" }
func (s *segment) timePath() string  { return s.path + ".timeindex" }

// createSegment creates an empty active segment at base (replacing an empty
// or torn file left by a crash during a roll).
func createSegment(dir string, base int64, now time.Time) (*segment, error) {
	s := &segment{base: base, path: segmentPath(dir, base), next: base, created: now, loaded: true, maxTS: -1}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	s.f = f
	if s.ix, err = createIndexWriter(s.indexPath(), s.timePath(), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	return s, nil
}

// walk calls fn for the header of every batch from position from up to end,
// until fn returns false. Bodies are skipped, CRCs are not checked.
func (s *segment) walk(from, end int64, fn func(pos int64, b Batch) bool) error {
	buf := make([]byte, 8192)
	bufPos, n := int64(-1), 0
	for pos := from; pos < end; {
		if bufPos < 0 || pos < bufPos || pos+HeaderSize > bufPos+int64(n) {
			want := min(int64(len(buf)), end-pos)
			if want < HeaderSize {
				return fmt.Errorf("segment %d at %d: %d bytes left: %w", s.base, pos, want, ErrCorrupt)
			}
			var err error
			n, err = s.f.ReadAt(buf[:want], pos)
			if err != nil && !(errors.Is(err, io.EOF) && n >= HeaderSize) {
				return fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
			}
			bufPos = pos
		}
		b, err := parseHeader(buf[pos-bufPos : n])
		if err != nil || pos+int64(b.Size) > end {
			return fmt.Errorf("segment %d at %d: %w", s.base, pos, ErrCorrupt)
		}
		if !fn(pos, b) {
			return nil
		}
		pos += int64(b.Size)
	}
	return nil
}

// load reads a sealed segment's index (rebuilding it when missing or
// short) and its max timestamp, once.
func (s *segment) load(interval int64) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loaded {
		return nil
	}
	entries, _, err := readIndex(s.indexPath(), s.timePath(), s.size)
	if err != nil {
		return err
	}
	from, ts := int64(0), int64(-1)
	if len(entries) > 0 {
		last := entries[len(entries)-1]
		from, ts = int64(last.pos), last.tsBefore
	}
	// Walk the rest of the segment: it is short when the index is whole,
	// and rebuilds the missing entries when it is not.
	since := int64(0)
	err = s.walk(from, s.size, func(pos int64, b Batch) bool {
		if pos > from || len(entries) == 0 {
			if len(entries) == 0 || since >= interval {
				entries = append(entries, indexEntry{rel: uint32(b.Base - s.base), pos: uint32(pos), tsBefore: ts})
				since = 0
			}
		}
		since += int64(b.Size)
		ts = max(ts, b.MaxTimestamp)
		return true
	})
	if err != nil {
		return fmt.Errorf("load index of segment %d: %w", s.base, err)
	}
	s.entries, s.maxTS, s.loaded = entries, ts, true
	return nil
}

// find returns the position and header of the first batch holding an
// offset >= offset, or ok false when the segment has none.
func (s *segment) find(offset int64, end int64) (pos int64, b Batch, ok bool, err error) {
	from := int64(0)
	if offset > s.base {
		if i := floorEntry(s.entries, uint32(offset-s.base)); i >= 0 {
			from = int64(s.entries[i].pos)
		}
	}
	err = s.walk(from, end, func(p int64, h Batch) bool {
		if h.Last >= offset {
			pos, b, ok = p, h, true
			return false
		}
		return true
	})
	return pos, b, ok, err
}

// findTime returns the first batch whose max timestamp is >= ts.
func (s *segment) findTime(ts int64, end int64) (b Batch, ok bool, err error) {
	from := int64(0)
	// The batch is at or after the last entry all of whose predecessors are older.
	for i := len(s.entries) - 1; i >= 0; i-- {
		if s.entries[i].tsBefore < ts {
			from = int64(s.entries[i].pos)
			break
		}
	}
	err = s.walk(from, end, func(_ int64, h Batch) bool {
		if h.MaxTimestamp >= ts {
			b, ok = h, true
			return false
		}
		return true
	})
	return b, ok, err
}

// readBatches reads whole batches from pos, at most maxBytes of them but
// at least firstSize bytes (the first batch) when first is set.
func (s *segment) readBatches(pos, end int64, firstSize int, maxBytes int64, first bool) ([]byte, error) {
	n := min(maxBytes, end-pos)
	if n < int64(firstSize) {
		if !first {
			return nil, nil
		}
		n = int64(firstSize)
	}
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, pos); err != nil {
		return nil, fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
	}
	cut := 0
	for cut+lengthPrefix <= len(buf) {
		l := int(int32(binary.BigEndian.Uint32(buf[cut+hdrLength:])))
		if l <= 0 || cut+lengthPrefix+l > len(buf) {
			break
		}
		cut += lengthPrefix + l
	}
	return buf[:cut], nil
}

// sync fsyncs the segment's files; a closed segment has nothing to sync.
func (s *segment) sync() error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.closed {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.logPath(), err)
	}
	if s.ix != nil {
		return s.ix.sync()
	}
	return nil
}

// seal closes the index files of a segment that stops being active.
func (s *segment) seal() error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.ix == nil {
		return nil
	}
	err := s.ix.close()
	s.ix = nil
	return err
}

// close closes every file of the segment.
func (s *segment) close() error {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.ix != nil {
		err = s.ix.close()
		s.ix = nil
	}
	return errors.Join(err, s.f.Close())
}

// remove closes and deletes the segment's files.
func (s *segment) remove() error {
	err := s.close()
	for _, p := range []string{s.logPath(), s.indexPath(), s.timePath()} {
		if e := os.Remove(p); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove segment: %w", e))
		}
	}
	return err
}

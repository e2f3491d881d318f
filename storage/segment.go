package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// segment is one log file and its indexes. size, next, entries (of the
// active segment), sinceIndex and maxTS are guarded by the Log's lock;
// sealed segments load entries, maxTS and good lazily under loadMu. Its
// files are opened on use through the FileCache (acquire, release).
type segment struct {
	base int64
	path string // without extension

	size       int64 // bytes of whole batches in the file
	next       int64 // offset after the last batch (base when empty)
	created    time.Time
	sinceIndex int64 // log bytes since the last index entry

	loadMu  sync.Mutex
	loaded  bool
	entries []indexEntry
	maxTS   int64 // largest max timestamp in the segment, -1 when none
	// fenced is 1 + the position where a sealed segment was found damaged
	// (0: not damaged): reads, lookups and retention stop there.
	fenced atomic.Int64

	files segFiles
	// unsynced is set by writes and cleared by sync, so closing thousands
	// of idle partitions neither reopens nor fsyncs their files.
	unsynced atomic.Bool

	futureWarned bool // retention logged its future timestamp; under the Log's lock
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", base))
}

func (s *segment) logPath() string   { return s.path + ".log" }
func (s *segment) indexPath() string { return s.path + ".index" }
func (s *segment) timePath() string  { return s.path + ".timeindex" }

// createSegment creates an empty active segment at base (replacing an empty
// or torn file left by a crash during a roll).
func createSegment(dir string, base int64, now time.Time, cache *FileCache) (*segment, error) {
	s := &segment{base: base, path: segmentPath(dir, base), next: base, created: now, loaded: true, maxTS: -1}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	ix, err := createIndexWriter(s.indexPath(), s.timePath(), 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	cache.adopt(s, f, ix)
	return s, nil
}

// newSegment describes an existing segment file without opening it.
func newSegment(dir string, base int64, now time.Time, cache *FileCache, writable bool) *segment {
	s := &segment{base: base, path: segmentPath(dir, base), maxTS: -1, created: now}
	s.files.cache, s.files.writable = cache, writable
	return s
}

// damagedError reports the position from which a segment does not hold
// whole, well-formed batches (a truncated or scribbled file).
type damagedError struct {
	seg, pos int64
	why      string
}

func (d *damagedError) Error() string {
	return fmt.Sprintf("segment %d damaged at %d: %s", d.seg, d.pos, d.why)
}

func (d *damagedError) Unwrap() error { return ErrCorrupt }

// asDamage returns the damage err reports, or nil.
func asDamage(err error) *damagedError {
	var d *damagedError
	if errors.As(err, &d) {
		return d
	}
	return nil
}

// end returns the bytes of s that reads may use: its size, or less when it
// is fenced. For a sealed segment the caller has loaded it.
func (s *segment) end() int64 {
	if f := s.fenced.Load(); f > 0 {
		return min(s.size, f-1)
	}
	return s.size
}

// fence stops s at pos; it reports whether this moved the fence.
func (s *segment) fence(pos int64) bool {
	for {
		cur := s.fenced.Load()
		if cur > 0 && cur-1 <= pos {
			return false
		}
		if s.fenced.CompareAndSwap(cur, pos+1) {
			return true
		}
	}
}

// walk calls fn for the header of every batch from position from up to end,
// until fn returns false. Bodies are skipped, CRCs are not checked. A
// malformed header, a batch passing end or a file shorter than end is a
// *damagedError.
func (s *segment) walk(from, end int64, fn func(pos int64, b Batch) bool) error {
	f, _, err := s.acquire(false)
	if err != nil {
		return err
	}
	defer s.release()
	buf := make([]byte, 8192)
	bufPos, n := int64(-1), 0
	for pos := from; pos < end; {
		if bufPos < 0 || pos < bufPos || pos+recordbatch.HeaderSize > bufPos+int64(n) {
			want := min(int64(len(buf)), end-pos)
			if want < recordbatch.HeaderSize {
				return &damagedError{s.base, pos, fmt.Sprintf("%d bytes left, less than a batch header", want)}
			}
			n, err = f.ReadAt(buf[:want], pos)
			if err != nil && !(errors.Is(err, io.EOF) && n >= recordbatch.HeaderSize) {
				if errors.Is(err, io.EOF) {
					return &damagedError{s.base, pos, "the file ends before its batches"}
				}
				return fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
			}
			bufPos = pos
		}
		b, err := parseHeader(buf[pos-bufPos : n])
		if err != nil {
			return &damagedError{s.base, pos, "malformed batch header"}
		}
		if pos+int64(b.Size) > end {
			return &damagedError{s.base, pos, fmt.Sprintf("batch of %d bytes passes the end %d", b.Size, end)}
		}
		if !fn(pos, b) {
			return nil
		}
		pos += int64(b.Size)
	}
	return nil
}

// load reads a sealed segment's index (rebuilding it when missing or
// short) and its max timestamp, once. A segment damaged after its last
// good batch is fenced there and the damage returned (the first time) with
// a nil error.
func (s *segment) load(interval int64) (*damagedError, error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loaded {
		return nil, nil
	}
	entries, _, err := readIndex(s.indexPath(), s.timePath(), s.size)
	if err != nil {
		return nil, err
	}
	from, ts := int64(0), int64(-1)
	if len(entries) > 0 {
		last := entries[len(entries)-1]
		from, ts = int64(last.pos), last.tsBefore
	}
	// Walk the rest of the segment: it is short when the index is whole,
	// and rebuilds the missing entries when it is not.
	since, goodEnd, lastNext := int64(0), from, s.base
	if len(entries) > 0 {
		lastNext = s.base + int64(entries[len(entries)-1].rel)
	}
	err = s.walk(from, s.size, func(pos int64, b Batch) bool {
		if pos > from || len(entries) == 0 {
			if len(entries) == 0 || since >= interval {
				entries = append(entries, indexEntry{rel: uint32(b.Base - s.base), pos: uint32(pos), tsBefore: ts})
				since = 0
			}
		}
		since += int64(b.Size)
		ts = max(ts, b.MaxTimestamp)
		goodEnd = pos + int64(b.Size)
		lastNext = b.Last + 1
		return true
	})
	d := asDamage(err)
	if err == nil && lastNext < s.next {
		// Whole batches, but fewer offsets than the next segment's base
		// says it held: cut at a batch boundary.
		d = &damagedError{s.base, goodEnd, fmt.Sprintf("its batches end at offset %d, the next segment starts at %d", lastNext, s.next)}
	}
	if d != nil {
		err = nil
		d.pos = goodEnd
		if !s.fence(goodEnd) {
			d = nil // fenced there before: reported then
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load index of segment %d: %w", s.base, err)
	}
	s.entries, s.maxTS, s.loaded = entries, ts, true
	return d, nil
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
	f, _, err := s.acquire(false)
	if err != nil {
		return nil, err
	}
	defer s.release()
	buf := make([]byte, n)
	if got, err := f.ReadAt(buf, pos); err != nil {
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read segment %d at %d: %w", s.base, pos, err)
		}
		// The file was cut shorter under us: serve the whole batches
		// read; the damage is fenced when a read starts at it.
		buf = buf[:got]
		if got < firstSize {
			return nil, &damagedError{s.base, pos, "the file ends before its batches"}
		}
	}
	cut := 0
	for cut+recordbatch.LengthPrefix <= len(buf) {
		size := int(recordbatch.Size(buf[cut:]))
		if size <= recordbatch.LengthPrefix || cut+size > len(buf) {
			break
		}
		cut += size
	}
	return buf[:cut], nil
}

// sync fsyncs the segment's files; a closed segment has nothing to sync.
// A segment the cache closed since it was written is reopened: fsync
// flushes the file, whichever descriptor wrote it.
func (s *segment) sync() error {
	if !s.unsynced.Swap(false) {
		return nil // nothing written since the last fsync: no reopen
	}
	f, ix, err := s.acquire(s.writableNow())
	if errors.Is(err, ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", s.logPath(), err)
	}
	defer s.release()
	if err := f.Sync(); err != nil {
		s.unsynced.Store(true)
		return fmt.Errorf("fsync %s: %w", s.logPath(), err)
	}
	if ix != nil {
		if err := ix.sync(); err != nil {
			s.unsynced.Store(true)
			return err
		}
	}
	return nil
}

// writableNow reports whether s is the active segment.
func (s *segment) writableNow() bool {
	c := s.files.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.files.writable
}

// seal closes the index files of a segment that stops being active.
func (s *segment) seal() { s.sealFiles() }

// close closes every file of the segment.
func (s *segment) close() error { return s.closeFiles() }

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

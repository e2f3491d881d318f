package storage

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Descriptors a segment holds while open: its .log file, and while it is
// active also its two index files.
const (
	sealedFDs = 1
	activeFDs = 3
)

// FileCache bounds the descriptors every partition log of a process holds
// together. A segment's files are opened when first used and stay open
// while descriptors are within the budget; beyond it the least recently
// used idle segments are closed, to be reopened on their next use. So a
// partition on disk costs no descriptor while it is idle, and ten thousand
// partitions cannot take the descriptors the listeners need to accept.
//
// A segment in use (a read, an append, an fsync) is pinned and never
// closed under its user: when every open segment is pinned the cache
// overshoots the budget by the pinned ones, which the number of concurrent
// operations bounds, and shrinks back as they finish.
type FileCache struct {
	max int // descriptors; 0: no bound

	mu   sync.Mutex
	lru  list.List // *segment with open files, most recently used first
	open int       // descriptors open

	opens     atomic.Uint64
	evictions atomic.Uint64

	// sections counts the Sections held (zero-copy sends in progress);
	// sectionRefusals the ones refused at the bound (read by copy instead).
	sections        atomic.Int64
	sectionRefusals atomic.Uint64
}

// NewFileCache returns a cache that keeps at most maxFDs descriptors open
// (beyond pinned segments); 0 means no bound.
func NewFileCache(maxFDs int) *FileCache {
	return &FileCache{max: max(maxFDs, 0)}
}

// FileCacheStats is a snapshot of a FileCache.
type FileCacheStats struct {
	// Open is the descriptors open now; Max the budget (0: none).
	Open, Max int
	// Opens counts segment file opens (first uses and reopens after an
	// eviction); Evictions counts segments closed to stay in the budget.
	Opens, Evictions uint64
	// Sections is the file sections held by zero-copy sends now,
	// MaxSections their bound; SectionRefusals counts the reads served by
	// copy because the bound was reached.
	Sections, MaxSections int64
	SectionRefusals       uint64
}

// Stats returns the cache's counters.
func (c *FileCache) Stats() FileCacheStats {
	c.mu.Lock()
	open := c.open
	c.mu.Unlock()
	return FileCacheStats{Open: open, Max: c.max, Opens: c.opens.Load(), Evictions: c.evictions.Load(),
		Sections: c.sections.Load(), MaxSections: c.maxSections(), SectionRefusals: c.sectionRefusals.Load()}
}

// segFiles are the open files of one segment, guarded by its cache's mu.
type segFiles struct {
	cache    *FileCache
	elem     *list.Element // in cache.lru while any file is open
	f        *os.File
	ix       *indexWriter
	refs     int
	writable bool // active segment: the log opens read-write, with index files
	closed   bool // closed or removed: never reopened
}

// fds is the number of descriptors s holds. The caller holds the cache's mu.
func (fs *segFiles) fds() int {
	n := 0
	if fs.f != nil {
		n += sealedFDs
	}
	if fs.ix != nil {
		n += activeFDs - sealedFDs
	}
	return n
}

// acquire pins s's log file (and, when withIndex is set and s is active,
// its index files; nil for a sealed segment), opening what is closed. The
// caller calls release once done.
func (s *segment) acquire(withIndex bool) (*os.File, *indexWriter, error) {
	c := s.files.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := &s.files
	if fs.closed {
		return nil, nil, ErrClosed
	}
	before := fs.fds()
	if fs.f == nil {
		mode := os.O_RDONLY
		if fs.writable {
			mode = os.O_RDWR
		}
		f, err := os.OpenFile(s.logPath(), mode, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("open segment %d: %w", s.base, err)
		}
		fs.f = f
		c.opens.Add(1)
	}
	if withIndex && fs.ix == nil && fs.writable { // a sealed segment's index is not written
		ix, err := openIndexWriter(s.indexPath(), s.timePath())
		if err != nil {
			c.track(s, before)
			return nil, nil, fmt.Errorf("open segment %d: %w", s.base, err)
		}
		fs.ix = ix
	}
	fs.refs++
	c.track(s, before)
	return fs.f, fs.ix, nil
}

// release unpins s; the files of a segment closed while pinned are closed
// with the last release.
func (s *segment) release() {
	c := s.files.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := &s.files
	fs.refs--
	if fs.refs > 0 {
		return
	}
	before := fs.fds()
	switch {
	case fs.closed:
		c.closeLocked(s)
	case !fs.writable && fs.ix != nil: // sealed while pinned
		fs.ix.close()
		fs.ix = nil
		c.track(s, before)
	default:
		c.evictLocked()
	}
}

// adopt registers the files of a segment just created (open, unpinned).
func (c *FileCache) adopt(s *segment, f *os.File, ix *indexWriter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.files.cache, s.files.f, s.files.ix, s.files.writable = c, f, ix, true
	c.opens.Add(1)
	c.track(s, 0)
}

// track accounts for s's descriptors having been before and keeps it at
// the front of the LRU while it has any, then evicts what is over the
// budget. The caller holds c.mu.
func (c *FileCache) track(s *segment, before int) {
	fs := &s.files
	now := fs.fds()
	c.open += now - before
	switch {
	case now > 0 && fs.elem == nil:
		fs.elem = c.lru.PushFront(s)
	case now > 0:
		c.lru.MoveToFront(fs.elem)
	case fs.elem != nil:
		c.lru.Remove(fs.elem)
		fs.elem = nil
	}
	c.evictLocked()
}

// evictLocked closes the least recently used unpinned segments while the
// cache is over its budget. The caller holds c.mu.
func (c *FileCache) evictLocked() {
	if c.max == 0 {
		return
	}
	for e := c.lru.Back(); e != nil && c.open > c.max; {
		s := e.Value.(*segment)
		e = e.Prev()
		if s.files.refs > 0 {
			continue
		}
		c.closeLocked(s)
		c.evictions.Add(1)
	}
}

// closeLocked closes every open file of s and drops it from the LRU. The
// caller holds c.mu.
func (c *FileCache) closeLocked(s *segment) error {
	fs := &s.files
	c.open -= fs.fds()
	var err error
	if fs.ix != nil {
		err = fs.ix.close()
		fs.ix = nil
	}
	if fs.f != nil {
		err = errors.Join(err, fs.f.Close())
		fs.f = nil
	}
	if fs.elem != nil {
		c.lru.Remove(fs.elem)
		fs.elem = nil
	}
	return err
}

// sealFiles marks s sealed: its index files close (now, or when the last
// user releases it) and a reopened log file is read-only. The index was
// fsynced by the roll (or fsync is off), so a close error loses nothing.
func (s *segment) sealFiles() {
	c := s.files.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := &s.files
	fs.writable = false
	if fs.refs == 0 && fs.ix != nil {
		before := fs.fds()
		_ = fs.ix.close()
		fs.ix = nil
		c.track(s, before)
	}
}

// closeFiles closes s for good: at once, or with its last release.
func (s *segment) closeFiles() error {
	c := s.files.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := &s.files
	if fs.closed {
		return nil
	}
	fs.closed = true
	if fs.refs > 0 {
		return nil
	}
	return c.closeLocked(s)
}

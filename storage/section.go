package storage

import (
	"fmt"
	"sort"
)

// DefaultMaxSections is the bound on sections held at once when the
// FileCache has no descriptor budget (tests, tools).
const DefaultMaxSections = 1024

// Section is whole batches of one segment file, left in the file for a
// zero-copy send (sendfile(2)) instead of being read into memory. It pins
// its segment: the file stays open, whatever the FileCache evicts and
// whatever retention or topic deletion removes meanwhile (a removed file
// stays readable through the open descriptor until the last release). The
// bytes it names never change: the log only appends after them, and an
// append undone is cut after them.
type Section struct {
	seg      *segment
	fd       int
	off, n   int64
	released bool
}

// Span returns the file's descriptor and the section's place in it.
func (s *Section) Span() (fd int, off, n int64) { return s.fd, s.off, s.n }

// Release unpins the segment; the descriptor must not be used after it.
// Only the first call counts.
func (s *Section) Release() {
	if s.released || s.seg == nil {
		return
	}
	s.released = true
	c := s.seg.files.cache
	c.sections.Add(-1)
	s.seg.release()
}

// ReadSection is Read without the copy: it finds the same batches (from
// the one holding offset, at most maxBytes of them but the first whole
// when first is set), stopping before the first batch whose base offset is
// upTo or more (appended after the caller's high watermark), and returns
// them as a Section held open for the caller. ok is false (with a nil
// error) when the read is better served by Read: the cache's bound on held
// sections is reached, or the batches are in a segment found damaged (Read
// fences it and goes on). A nil section with ok set means no batch.
func (l *Log) ReadSection(offset, maxBytes int64, first bool, upTo int64) (sec *Section, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, false, ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	for i = max(i, 0); i < len(l.segs); i++ {
		s := l.segs[i]
		if err := l.load(s); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", l.opts.Name, err)
		}
		end := s.end()
		pos, b, found, err := s.find(offset, end)
		if err != nil {
			if asDamage(err) != nil {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("read %s at %d: %w", l.opts.Name, offset, err)
		}
		if !found {
			continue
		}
		if b.Base >= upTo || (!first && int64(b.Size) > maxBytes) {
			return nil, true, nil
		}
		stop, err := s.extent(pos, end, int64(b.Size), maxBytes, upTo)
		if err != nil {
			if asDamage(err) != nil {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("read %s at %d: %w", l.opts.Name, offset, err)
		}
		return s.hold(pos, stop-pos)
	}
	return nil, true, nil
}

// extent returns where the whole batches from pos end, given that the
// first (firstSize bytes) is taken: at most maxBytes from pos, none at or
// past offset upTo, none past end. The index skips to the last entry
// within reach; from there the batch headers are read.
func (s *segment) extent(pos, end, firstSize, maxBytes, upTo int64) (int64, error) {
	stop := pos + firstSize
	limit := min(end, pos+max(maxBytes, firstSize))
	if stop >= limit {
		return stop, nil
	}
	from := stop
	if k := floorPos(s.entries, limit); k >= 0 {
		if e := s.entries[k]; int64(e.pos) > from && s.base+int64(e.rel) < upTo {
			from = int64(e.pos) // every batch before the entry fits and is below upTo
		}
	}
	stop = from
	err := s.walk(from, end, func(p int64, h Batch) bool {
		if h.Base >= upTo || p+int64(h.Size) > limit {
			return false
		}
		stop = p + int64(h.Size)
		return true
	})
	return stop, err
}

// hold pins s for a section of n bytes at off, within the cache's bound on
// held sections.
func (s *segment) hold(off, n int64) (*Section, bool, error) {
	c := s.files.cache
	if c.sections.Add(1) > c.maxSections() {
		c.sections.Add(-1)
		c.sectionRefusals.Add(1)
		return nil, false, nil
	}
	f, _, err := s.acquire(false)
	if err != nil {
		c.sections.Add(-1)
		return nil, false, err
	}
	return &Section{seg: s, fd: int(f.Fd()), off: off, n: n}, true, nil
}

// maxSections bounds the sections held at once: half the descriptor
// budget, so segments pinned by sends (one descriptor per segment, however
// many sections share it) leave the cache room for the reads and appends
// it serves, and the budget holds (a pinned segment is never closed; the
// cache evicts idle ones instead).
func (c *FileCache) maxSections() int64 {
	if c.max == 0 {
		return DefaultMaxSections
	}
	return int64(max(c.max/2, 1))
}

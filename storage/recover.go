package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/codec/recordbatch"
)

// startOffsetFile holds a log start offset inside the first segment.
const startOffsetFile = "start-offset"

// Recovery reports what Open found.
type Recovery struct {
	// Tail is every batch of the scanned tail, oldest first: at least
	// RecoveryBytes of the log when it has that much. The broker rebuilds
	// idempotent producer state from it.
	Tail []Batch
	// TruncatedBytes were cut off the last segment (torn or corrupt tail).
	TruncatedBytes int64
	// IndexRebuilt is set when the last segment's index was missing.
	IndexRebuilt bool
}

// Open opens (creating when empty) the log in opts.Dir. Only the tail of
// the last segment is read: batches from the index entry at or before
// RecoveryBytes from its end are CRC-checked, and the first bad one and
// everything after it are truncated. Older segments are opened without
// reading; their indexes load on first use.
func Open(opts Options) (*Log, Recovery, error) {
	var rec Recovery
	if opts.IndexIntervalBytes <= 0 {
		opts.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if opts.RollAge <= 0 {
		opts.RollAge = DefaultRollAge
	}
	if opts.RecoveryBytes <= 0 {
		opts.RecoveryBytes = DefaultRecoveryBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Name == "" {
		opts.Name = opts.Dir
	}
	if opts.Files == nil {
		opts.Files = NewFileCache(0)
	}
	if opts.FutureSkew <= 0 {
		opts.FutureSkew = DefaultFutureSkew
	}
	l := &Log{opts: opts, log: opts.Logger}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, rec, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	bases, err := listSegments(opts.Dir)
	if err != nil {
		return nil, rec, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	fail := func(err error) (*Log, Recovery, error) {
		for _, s := range l.segs {
			s.close()
		}
		return nil, rec, fmt.Errorf("open %s: %w", opts.Name, err)
	}
	// Segments are described from their sizes alone: their files open on
	// first use, through the descriptor cache.
	for i, base := range bases {
		s := newSegment(opts.Dir, base, opts.Now(), opts.Files, i == len(bases)-1)
		st, err := os.Stat(s.logPath())
		if err != nil {
			return fail(err)
		}
		l.segs = append(l.segs, s)
		s.size = st.Size()
		if i > 0 {
			l.segs[i-1].next = base
		}
	}
	if len(l.segs) == 0 {
		s, err := createSegment(opts.Dir, 0, opts.Now(), opts.Files)
		if err != nil {
			return fail(err)
		}
		l.segs = append(l.segs, s)
	} else if err := l.recoverTail(&rec); err != nil {
		return fail(err)
	}
	for _, s := range l.segs {
		l.size += s.size
	}
	l.next = l.active().next
	l.start = l.segs[0].base
	if v, err := readStartOffset(opts.Dir); err != nil {
		return fail(err)
	} else if v > l.start {
		l.start = min(v, l.next)
	}
	if err := l.previousTail(&rec); err != nil {
		l.log.Warn("reading producer state from the previous segment", "log", opts.Name, "err", err)
	}
	return l, rec, nil
}

// listSegments returns the base offsets of the .log files in dir, sorted.
func listSegments(dir string) ([]int64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), ".log")
		if !ok || len(name) != 20 {
			continue
		}
		if v, err := strconv.ParseInt(name, 10, 64); err == nil {
			bases = append(bases, v)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// recoverTail checks the last segment's tail batch by batch, truncates it
// after the last good batch and makes its index agree.
func (l *Log) recoverTail(rec *Recovery) error {
	s := l.active()
	s.loaded = true
	entries, missing, err := readIndex(s.indexPath(), s.timePath(), s.size)
	if err != nil {
		return err
	}
	if missing && s.size > 0 {
		rec.IndexRebuilt = true
		l.log.Warn("segment index missing: rebuilding it from the whole segment", "log", l.opts.Name, "segment", s.base)
	}
	// Start at the last index entry at least RecoveryBytes before the end.
	k := floorPos(entries, s.size-l.opts.RecoveryBytes)
	if k < 0 && len(entries) > 0 {
		k = 0
	}
	from, ts, expect := int64(0), int64(-1), s.base
	if k >= 0 {
		e := entries[k]
		from, ts, expect = int64(e.pos), e.tsBefore, s.base+int64(e.rel)
		entries = entries[:k+1]
	} else {
		entries = nil
	}
	f, _, err := s.acquire(false)
	if err != nil {
		return err
	}
	defer s.release()
	since := int64(0)
	good := from
	buf := make([]byte, 64<<10)
	for good < s.size {
		b, raw, err := readBatchAt(f, good, s.size, buf)
		if err == nil && b.Base != expect {
			err = fmt.Errorf("base offset %d, want %d: %w", b.Base, expect, ErrCorrupt)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return err
			}
			break
		}
		buf = raw[:cap(raw)]
		if len(entries) == 0 || (good > from && since >= l.opts.IndexIntervalBytes) {
			entries = append(entries, indexEntry{rel: uint32(b.Base - s.base), pos: uint32(good), tsBefore: ts})
			since = 0
		}
		since += int64(b.Size)
		ts = max(ts, b.MaxTimestamp)
		expect = b.Last + 1
		good += int64(b.Size)
		rec.Tail = append(rec.Tail, b)
	}
	if n := len(entries); n > 0 && int64(entries[n-1].pos) >= good {
		entries = entries[:n-1] // its batch was cut
	}
	if good < s.size {
		rec.TruncatedBytes = s.size - good
		l.log.Warn("truncating a torn or corrupt segment tail to the last good batch",
			"log", l.opts.Name, "segment", s.base, "good_bytes", good, "truncated_bytes", rec.TruncatedBytes, "next_offset", expect)
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("truncate segment %d: %w", s.base, err)
		}
		s.size = good
	}
	// The index is rewritten to agree with the log; the cache reopens it
	// for the next append.
	ix, err := createIndexWriter(s.indexPath(), s.timePath(), 0)
	if err != nil {
		return err
	}
	for i, e := range entries {
		if err := ix.write(i, e); err != nil {
			ix.close()
			return err
		}
	}
	if err := ix.close(); err != nil {
		return err
	}
	s.unsynced.Store(true) // the recovered files are fsynced at the next round or close
	s.entries, s.sinceIndex, s.maxTS, s.next = entries, since, ts, expect
	return nil
}

// previousTail adds the headers of the previous segment's tail to rec.Tail
// when the last segment holds less than RecoveryBytes, so producer state
// survives a roll.
func (l *Log) previousTail(rec *Recovery) error {
	if len(l.segs) < 2 {
		return nil
	}
	want := l.opts.RecoveryBytes - l.active().size
	if want <= 0 {
		return nil
	}
	s := l.segs[len(l.segs)-2]
	if err := l.load(s); err != nil {
		return err
	}
	from := int64(0)
	if i := floorPos(s.entries, s.size-want); i >= 0 {
		from = int64(s.entries[i].pos)
	}
	var prev []Batch
	if err := s.walk(from, s.end(), func(_ int64, b Batch) bool {
		prev = append(prev, b)
		return true
	}); err != nil {
		return err
	}
	rec.Tail = append(prev, rec.Tail...)
	return nil
}

// readBatchAt reads and CRC-checks the batch at pos (ending at or before
// end) into buf, growing it when needed.
func readBatchAt(f *os.File, pos, end int64, buf []byte) (Batch, []byte, error) {
	if end-pos < recordbatch.HeaderSize {
		return Batch{}, buf, fmt.Errorf("%d bytes at %d: %w", end-pos, pos, io.ErrUnexpectedEOF)
	}
	if _, err := f.ReadAt(buf[:recordbatch.LengthPrefix], pos); err != nil {
		return Batch{}, buf, fmt.Errorf("read at %d: %w", pos, err)
	}
	size := recordbatch.Size(buf)
	l := size - recordbatch.LengthPrefix
	if l < recordbatch.HeaderSize-recordbatch.LengthPrefix || l > maxBatchSize {
		return Batch{}, buf, fmt.Errorf("batch length %d at %d: %w", l, pos, ErrCorrupt)
	}
	if pos+size > end {
		return Batch{}, buf, fmt.Errorf("batch of %d bytes at %d passes the end %d: %w", size, pos, end, io.ErrUnexpectedEOF)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := f.ReadAt(buf, pos); err != nil {
		return Batch{}, buf, fmt.Errorf("read at %d: %w", pos, err)
	}
	b, err := ParseBatch(buf)
	if err != nil {
		return b, buf, fmt.Errorf("batch at %d: %w", pos, err)
	}
	return b, buf, nil
}

// readStartOffset reads the start-offset file, or -1 when there is none.
func readStartOffset(dir string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, startOffsetFile))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read start offset: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return -1, nil // a torn write of a hint: the segment base stands
	}
	return v, nil
}

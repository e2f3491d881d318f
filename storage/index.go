package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
)

// Sizes of one entry in the .index and .timeindex files.
const (
	offsetEntrySize = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // max timestamp before int64, relative offset uint32
)

// indexEntry is one sparse index point: the batch starting at pos has base
// offset segment base + rel, and every batch before it has a max timestamp
// of at most tsBefore (-1 when there is none).
type indexEntry struct {
	rel      uint32
	pos      uint32
	tsBefore int64
}

// readIndex reads a segment's index files and keeps the longest prefix of
// entries that agree with each other and point inside a log of logSize
// bytes. missing reports that the offset index file does not exist.
func readIndex(offPath, timePath string, logSize int64) (entries []indexEntry, missing bool, err error) {
	offData, err := os.ReadFile(offPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read index: %w", err)
	}
	timeData, err := os.ReadFile(timePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read time index: %w", err)
	}
	n := min(len(offData)/offsetEntrySize, len(timeData)/timeEntrySize)
	entries = make([]indexEntry, 0, n)
	for i := 0; i < n; i++ {
		o := offData[i*offsetEntrySize:]
		t := timeData[i*timeEntrySize:]
		e := indexEntry{
			rel:      binary.BigEndian.Uint32(o),
			pos:      binary.BigEndian.Uint32(o[4:]),
			tsBefore: int64(binary.BigEndian.Uint64(t)),
		}
		if binary.BigEndian.Uint32(t[8:]) != e.rel || int64(e.pos) >= logSize {
			break
		}
		if i == 0 && e.pos != 0 {
			break
		}
		if i > 0 && (e.rel <= entries[i-1].rel || e.pos <= entries[i-1].pos) {
			break
		}
		entries = append(entries, e)
	}
	return entries, false, nil
}

// floorEntry returns the last entry with rel <= target, or -1.
func floorEntry(entries []indexEntry, target uint32) int {
	return sort.Search(len(entries), func(i int) bool { return entries[i].rel > target }) - 1
}

// floorPos returns the last entry with pos <= target, or -1.
func floorPos(entries []indexEntry, target int64) int {
	return sort.Search(len(entries), func(i int) bool { return int64(entries[i].pos) > target }) - 1
}

// indexWriter appends entries to a segment's two open index files.
type indexWriter struct {
	off, time *os.File
}

// createIndexWriter opens (creating) both index files of a segment and
// truncates them to n entries.
func createIndexWriter(offPath, timePath string, n int) (*indexWriter, error) {
	w := &indexWriter{}
	var err error
	if w.off, err = os.OpenFile(offPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	if w.time, err = os.OpenFile(timePath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		w.off.Close()
		return nil, fmt.Errorf("open time index: %w", err)
	}
	if err := w.truncate(n); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// write stores entry e as the i-th entry of both files.
func (w *indexWriter) write(i int, e indexEntry) error {
	var o [offsetEntrySize]byte
	var t [timeEntrySize]byte
	binary.BigEndian.PutUint32(o[:], e.rel)
	binary.BigEndian.PutUint32(o[4:], e.pos)
	binary.BigEndian.PutUint64(t[:], uint64(e.tsBefore))
	binary.BigEndian.PutUint32(t[8:], e.rel)
	if _, err := w.off.WriteAt(o[:], int64(i*offsetEntrySize)); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if _, err := w.time.WriteAt(t[:], int64(i*timeEntrySize)); err != nil {
		return fmt.Errorf("write time index: %w", err)
	}
	return nil
}

// truncate cuts both files to n entries.
func (w *indexWriter) truncate(n int) error {
	if err := w.off.Truncate(int64(n * offsetEntrySize)); err != nil {
		return fmt.Errorf("truncate index: %w", err)
	}
	if err := w.time.Truncate(int64(n * timeEntrySize)); err != nil {
		return fmt.Errorf("truncate time index: %w", err)
	}
	return nil
}

func (w *indexWriter) sync() error {
	if err := w.off.Sync(); err != nil {
		return fmt.Errorf("fsync index: %w", err)
	}
	if err := w.time.Sync(); err != nil {
		return fmt.Errorf("fsync time index: %w", err)
	}
	return nil
}

func (w *indexWriter) close() error {
	return errors.Join(w.off.Close(), w.time.Close())
}

// openIndexWriter reopens both index files of an active segment as they
// are (the cache closed them; their entries are in memory).
func openIndexWriter(offPath, timePath string) (*indexWriter, error) {
	w := &indexWriter{}
	var err error
	if w.off, err = os.OpenFile(offPath, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	if w.time, err = os.OpenFile(timePath, os.O_RDWR, 0); err != nil {
		w.off.Close()
		return nil, fmt.Errorf("open time index: %w", err)
	}
	return w, nil
}

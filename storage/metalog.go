package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/floodgate/floodgate/internal/atomicfile"
)

// metaRecordHeader is the length (uint32) and CRC32C (uint32) before each
// record payload of a MetaLog.
const metaRecordHeader = 8

// MetaLog is a small append-only file of records, each framed as
// length uint32, CRC32C uint32, payload. Open replays the good prefix and
// truncates a torn tail; Rewrite replaces the file atomically with the
// live records (compaction).
type MetaLog struct {
	path   string
	syncer *Syncer
	log    *slog.Logger

	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
	// tail holds the frames appended while a MetaRewrite is under way:
	// the rewrite appends them to the new file before it replaces the old.
	tail      []byte
	rewriting bool
}

// OpenMetaLog opens (creating) the log at path and returns the payloads of
// its good records. It holds them all in memory: large logs are opened
// with OpenMetaLogFunc.
// castagnoli is the CRC32C table of metadata log records.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func OpenMetaLog(path string, syncer *Syncer, logger *slog.Logger) (*MetaLog, [][]byte, error) {
	var out [][]byte
	m, err := OpenMetaLogFunc(path, syncer, logger, func(p []byte) error {
		out = append(out, bytes.Clone(p))
		return nil
	})
	return m, out, err
}

// OpenMetaLogFunc opens (creating) the log at path and hands the payload of
// each good record to fn, in order, as it reads: memory stays proportional
// to the largest record, not to the file. The payload is only valid during
// the call. A torn or corrupt tail is truncated; an error from fn stops
// the replay and is returned.
func OpenMetaLogFunc(path string, syncer *Syncer, logger *slog.Logger, fn func(payload []byte) error) (*MetaLog, error) {
	if logger == nil {
		logger = slog.Default()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	good, size, err := replayMeta(f, fn)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	if good < size {
		logger.Warn("truncating a torn metadata log tail", "path", path, "good_bytes", good, "truncated_bytes", size-good)
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate %s: %w", path, err)
		}
	}
	return &MetaLog{path: path, syncer: syncer, log: logger, f: f, size: good}, nil
}

// replayMeta reads f's records from the start and returns the length of
// the good prefix and the file's size. A record whose length runs past the
// end of the file ends the good prefix before anything is allocated for it.
func replayMeta(f *os.File, fn func([]byte) error) (good, size int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = st.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [metaRecordHeader]byte
	var buf []byte
	for good+metaRecordHeader <= size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return good, size, nil
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		crc := binary.BigEndian.Uint32(hdr[4:])
		if good+metaRecordHeader+n > size {
			break
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		if crc32.Checksum(buf, castagnoli) != crc {
			break
		}
		if err := fn(buf); err != nil {
			return good, size, err
		}
		good += metaRecordHeader + n
	}
	return good, size, nil
}

func frame(payload []byte) []byte {
	rec := make([]byte, metaRecordHeader+len(payload))
	binary.BigEndian.PutUint32(rec, uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
	copy(rec[metaRecordHeader:], payload)
	return rec
}

// Append writes one record (it is in the page cache when Append returns;
// the syncer makes it durable).
func (m *MetaLog) Append(payload []byte) error {
	return m.appendFramed(frame(payload))
}

// AppendMany writes several records with one write: all of them, or none
// when the write fails.
func (m *MetaLog) AppendMany(payloads [][]byte) error {
	if len(payloads) == 0 {
		return nil
	}
	n := 0
	for _, p := range payloads {
		n += metaRecordHeader + len(p)
	}
	buf := make([]byte, 0, n)
	for _, p := range payloads {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(p)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(p, castagnoli))
		buf = append(buf, p...)
	}
	return m.appendFramed(buf)
}

// appendFramed writes framed records at the end of the file with one
// write, cutting off what a failed write left; a rewrite in progress keeps
// them for the new file.
func (m *MetaLog) appendFramed(recs []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, err := m.f.WriteAt(recs, m.size); err != nil {
		_ = m.f.Truncate(m.size)
		return fmt.Errorf("append %s: %w", m.path, err)
	}
	m.size += int64(len(recs))
	if m.rewriting {
		m.tail = append(m.tail, recs...)
	}
	m.syncer.markDirty(m)
	return nil
}

// Size is the file's length in bytes.
func (m *MetaLog) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// Rewrite replaces the file with exactly payloads, atomically.
func (m *MetaLog) Rewrite(payloads [][]byte) error {
	rw, err := m.BeginRewrite()
	if err != nil {
		return err
	}
	for _, p := range payloads {
		if err := rw.Add(p); err != nil {
			rw.Abort()
			return err
		}
	}
	return rw.Commit()
}

// MetaRewrite replaces a MetaLog's file with a snapshot taken while
// appends go on (compaction without stopping writers): records appended
// between BeginRewrite and Commit stay in the old file and are appended to
// the new one, after the snapshot, when Commit swaps them. Replaying
// snapshot then tail gives the latest state as long as every record is a
// whole set or delete of its key and the snapshot of a key is taken after
// BeginRewrite.
type MetaRewrite struct {
	m   *MetaLog
	tmp *os.File
	w   *bufio.Writer
	n   int64
}

// BeginRewrite starts a rewrite; only one may be under way at a time.
func (m *MetaLog) BeginRewrite() (*MetaRewrite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, ErrClosed
	case m.rewriting:
		return nil, fmt.Errorf("rewrite %s: a rewrite is already under way", m.path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(m.path), "."+filepath.Base(m.path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("rewrite %s: %w", m.path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("rewrite %s: %w", m.path, err)
	}
	m.rewriting, m.tail = true, nil
	return &MetaRewrite{m: m, tmp: tmp, w: bufio.NewWriterSize(tmp, 1<<20)}, nil
}

// Add writes one record of the snapshot.
func (rw *MetaRewrite) Add(payload []byte) error {
	var hdr [metaRecordHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(payload, castagnoli))
	if _, err := rw.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("rewrite %s: %w", rw.m.path, err)
	}
	if _, err := rw.w.Write(payload); err != nil {
		return fmt.Errorf("rewrite %s: %w", rw.m.path, err)
	}
	rw.n += int64(metaRecordHeader + len(payload))
	return nil
}

// Abort drops the rewrite; the old file stays.
func (rw *MetaRewrite) Abort() {
	m := rw.m
	m.mu.Lock()
	m.rewriting, m.tail = false, nil
	m.mu.Unlock()
	rw.tmp.Close()
	os.Remove(rw.tmp.Name())
}

// Commit writes the snapshot (fsynced unless the policy is never) without
// holding the log, then, holding it, appends the records that arrived
// meanwhile and renames the new file over the old.
func (rw *MetaRewrite) Commit() error {
	m := rw.m
	sync := m.syncer.Mode() != FsyncNever
	fail := func(err error) error {
		rw.Abort()
		return fmt.Errorf("rewrite %s: %w", m.path, err)
	}
	if err := rw.w.Flush(); err != nil {
		return fail(err)
	}
	if sync {
		if err := rw.tmp.Sync(); err != nil {
			return fail(err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tail := m.tail
	m.rewriting, m.tail = false, nil
	if m.closed {
		rw.tmp.Close()
		os.Remove(rw.tmp.Name())
		return ErrClosed
	}
	err := func() error {
		if _, err := rw.tmp.WriteAt(tail, rw.n); err != nil {
			return err
		}
		if sync && len(tail) > 0 {
			if err := rw.tmp.Sync(); err != nil {
				return err
			}
		}
		if err := os.Rename(rw.tmp.Name(), m.path); err != nil {
			return err
		}
		if sync {
			return atomicfile.SyncDir(filepath.Dir(m.path))
		}
		return nil
	}()
	if err != nil {
		rw.tmp.Close()
		os.Remove(rw.tmp.Name())
		return fmt.Errorf("rewrite %s: %w", m.path, err)
	}
	m.f.Close()
	m.f, m.size = rw.tmp, rw.n+int64(len(tail))
	return nil
}

func (m *MetaLog) sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", m.path, err)
	}
	return nil
}

// Close fsyncs (unless the policy is never) and closes the file.
func (m *MetaLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var err error
	if m.syncer.Mode() != FsyncNever {
		err = m.f.Sync()
	}
	return errors.Join(err, m.f.Close())
}

package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"sync"
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
}

// OpenMetaLog opens (creating) the log at path and returns the payloads of
// its good records.
func OpenMetaLog(path string, syncer *Syncer, logger *slog.Logger) (*MetaLog, [][]byte, error) {
	if logger == nil {
		logger = slog.Default()
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	var out [][]byte
	good := 0
	for good+metaRecordHeader <= len(data) {
		n := int(binary.BigEndian.Uint32(data[good:]))
		crc := binary.BigEndian.Uint32(data[good+4:])
		end := good + metaRecordHeader + n
		if n < 0 || end > len(data) || crc32.Checksum(data[good+metaRecordHeader:end], castagnoli) != crc {
			break
		}
		out = append(out, data[good+metaRecordHeader:end])
		good = end
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	if good < len(data) {
		logger.Warn("truncating a torn metadata log tail", "path", path, "good_bytes", good, "truncated_bytes", len(data)-good)
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncate %s: %w", path, err)
		}
	}
	return &MetaLog{path: path, syncer: syncer, log: logger, f: f, size: int64(good)}, out, nil
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	rec := frame(payload)
	if _, err := m.f.WriteAt(rec, m.size); err != nil {
		_ = m.f.Truncate(m.size)
		return fmt.Errorf("append %s: %w", m.path, err)
	}
	m.size += int64(len(rec))
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
	var data []byte
	for _, p := range payloads {
		data = append(data, frame(p)...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := WriteFileAtomic(m.path, data, m.syncer.Mode() != FsyncNever); err != nil {
		return err
	}
	f, err := os.OpenFile(m.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", m.path, err)
	}
	m.f.Close()
	m.f, m.size = f, int64(len(data))
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

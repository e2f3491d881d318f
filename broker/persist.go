package broker

// Durable broker state in --data-dir:
//
//	<data-dir>/.lock                   flock(2): one process per data dir
//	<data-dir>/topics.json             topics (name, id, partitions, configs),
//	                                   replaced atomically once per request
//	                                   that changes topics; checked against
//	                                   the limits before anything is opened
//	<data-dir>/offsets.log             committed group offsets: an append-only
//	                                   storage.MetaLog of binary records
//	                                   (offsets_log.go), compacted at start
//	                                   and as it grows
//	<data-dir>/logs/<topic id>/<n>/    partition n's segments (package storage)
//
// Producer ids are not stored: after a restart they count up from the
// current time in microseconds, so a new producer never reuses the id of
// one whose sequences the recovered log still remembers.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/internal/atomicfile"
	"github.com/floodgate/floodgate/storage"
)

const (
	topicsFile  = "topics.json"
	offsetsFile = "offsets.log"
	logsDir     = "logs"
	lockFile    = ".lock"
	// maxTopicMetaBytes bounds one topic's entry in topics.json: a name of
	// at most 249 bytes, an id, a count and the eight configs' values.
	maxTopicMetaBytes = 16 << 10
)

// diskStore is the broker's persistence when it has a data dir.
type diskStore struct {
	dir    string
	cfg    Config
	log    *slog.Logger
	syncer *storage.Syncer
	lock   *os.File
	// files bounds the descriptors of every partition's segment files.
	files *storage.FileCache
	// fenced counts damaged sealed segments found and fenced.
	fenced *metrics.Counter

	closeOnce sync.Once
	offsetsLogState
}

// topicMeta is one topic in topics.json.
type topicMeta struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// openStore locks the data dir and starts the syncer.
func openStore(cfg Config, log *slog.Logger) (*diskStore, error) {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, logsDir), 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("data dir %s is in use by another floodgate: %w", cfg.DataDir, err)
	}
	s := &diskStore{dir: cfg.DataDir, cfg: cfg, log: log, lock: lock, files: storage.NewFileCache(cfg.MaxOpenSegmentFiles)}
	s.syncer = storage.NewSyncer(cfg.Fsync, cfg.FsyncInterval, log)
	return s, nil
}

// registerMetrics publishes the descriptor cache's state.
func (s *diskStore) registerMetrics(m brokerMetrics) {
	m.set.NewGauge("floodgate_segment_files_open", func() float64 { return float64(s.files.Stats().Open) })
	m.set.NewGauge("floodgate_segment_files_limit", func() float64 { return float64(s.files.Stats().Max) })
	m.set.NewGauge("floodgate_segment_file_evictions", func() float64 { return float64(s.files.Stats().Evictions) })
	// Zero-copy fetches: sections of segment files held by answers not yet
	// written, their bound (half of the descriptor budget), and the reads
	// served by copy because the bound was reached.
	m.set.NewGauge("floodgate_sendfile_sections_held", func() float64 { return float64(s.files.Stats().Sections) })
	m.set.NewGauge("floodgate_sendfile_sections_limit", func() float64 { return float64(s.files.Stats().MaxSections) })
	m.set.NewGauge("floodgate_sendfile_sections_refused", func() float64 { return float64(s.files.Stats().SectionRefusals) })
}

// loadState reads topics (recovering every partition log) and committed
// offsets, and removes partition directories no topic owns.
func (b *Broker) loadState() error {
	s := b.store
	// A topic takes well under maxTopicMetaBytes in the file: a larger
	// file cannot be one floodgate wrote within --max-topics, and is not
	// read into memory.
	if st, err := os.Stat(filepath.Join(s.dir, topicsFile)); err == nil && st.Size() > int64(b.cfg.MaxTopics+1)*maxTopicMetaBytes {
		return fmt.Errorf("load topics: %s is %d bytes, more than --max-topics=%d topics take: raise the flag or repair the file",
			filepath.Join(s.dir, topicsFile), st.Size(), b.cfg.MaxTopics)
	}
	data, err := os.ReadFile(filepath.Join(s.dir, topicsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("load topics: %w", err)
	}
	var metas []topicMeta
	if len(data) > 0 {
		if err := json.Unmarshal(data, &metas); err != nil {
			return fmt.Errorf("load topics: %s: %w", topicsFile, err)
		}
	}
	ids, err := b.checkTopicMetas(metas)
	if err != nil {
		return fmt.Errorf("load topics: %s: %w", filepath.Join(s.dir, topicsFile), err)
	}
	live := map[string]bool{}
	b.mu.Lock()
	for i, m := range metas {
		t := b.newTopic(m.Name, ids[i], m.Partitions, m.Configs)
		b.topics[m.Name], b.byID[ids[i]] = t, t
		b.partitions += int(m.Partitions)
		live[m.ID] = true
	}
	b.metrics.topics.Set(float64(len(b.topics)))
	b.metrics.partitions.Set(float64(b.partitions))
	b.mu.Unlock()
	s.removeOrphans(live)
	if err := b.loadOffsets(); err != nil {
		return err
	}
	b.producers.mu.Lock()
	b.producers.next = b.now().UnixMicro()
	b.producers.mu.Unlock()
	b.log.Info("data dir loaded", "dir", s.dir, "topics", len(metas), "fsync", s.cfg.Fsync.String())
	return nil
}

// checkTopicMetas checks topics.json before anything is opened or
// allocated for it, so that an impossible file (2^31-1 partitions, a bad
// name, a duplicate) stops start-up at once with a message saying what to
// fix, instead of hanging or exhausting memory. A topic config no longer
// valid is dropped (the topic gets the default) with a warning. It returns
// the topics' ids.
func (b *Broker) checkTopicMetas(metas []topicMeta) ([][16]byte, error) {
	if len(metas) > b.cfg.MaxTopics {
		return nil, fmt.Errorf("%d topics, above --max-topics=%d: raise the flag to load this data dir", len(metas), b.cfg.MaxTopics)
	}
	ids := make([][16]byte, len(metas))
	names := make(map[string]bool, len(metas))
	seen := make(map[[16]byte]bool, len(metas))
	total := 0
	for i := range metas {
		m := &metas[i]
		if why := validTopicName(m.Name); why != "" {
			return nil, fmt.Errorf("topic %d: %s", i, why)
		}
		if names[m.Name] {
			return nil, fmt.Errorf("topic %q is listed twice", m.Name)
		}
		names[m.Name] = true
		if n, err := hex.Decode(ids[i][:], []byte(m.ID)); err != nil || n != 16 || len(m.ID) != 32 || ids[i] == ([16]byte{}) {
			return nil, fmt.Errorf("topic %q has the bad id %q", m.Name, m.ID)
		}
		if seen[ids[i]] {
			return nil, fmt.Errorf("topic %q has the id %s of another topic", m.Name, m.ID)
		}
		seen[ids[i]] = true
		if m.Partitions < 1 || m.Partitions > b.cfg.MaxPartitionsPerTopic {
			return nil, fmt.Errorf("topic %q has %d partitions: want 1 to --max-partitions-per-topic=%d (raise the flag if the count is right)", m.Name, m.Partitions, b.cfg.MaxPartitionsPerTopic)
		}
		total += int(m.Partitions)
		if total > b.cfg.MaxPartitions {
			return nil, fmt.Errorf("the topics hold more than --max-partitions=%d partitions: raise the flag to load this data dir", b.cfg.MaxPartitions)
		}
		for k, v := range m.Configs {
			if err := validateTopicConfig(k, v); err != nil {
				b.log.Warn("dropping an invalid topic config from topics.json: the topic uses the default", "topic", m.Name, "err", err)
				delete(m.Configs, k)
			}
		}
	}
	return ids, nil
}

// removeOrphans deletes partition directories of topics that are gone (a
// crash between saving topics.json and removing the files).
func (s *diskStore) removeOrphans(live map[string]bool) {
	des, err := os.ReadDir(filepath.Join(s.dir, logsDir))
	if err != nil {
		s.log.Warn("listing partition directories", "err", err)
		return
	}
	for _, de := range des {
		if !live[de.Name()] {
			s.log.Info("removing the files of a deleted topic", "dir", de.Name())
			if err := os.RemoveAll(filepath.Join(s.dir, logsDir, de.Name())); err != nil {
				s.log.Warn("removing the files of a deleted topic", "dir", de.Name(), "err", err)
			}
		}
	}
}

// saveTopicsLocked replaces topics.json. The caller holds b.mu.
func (b *Broker) saveTopicsLocked() {
	if b.store == nil {
		return
	}
	metas := make([]topicMeta, 0, len(b.topics))
	for _, t := range b.topics {
		metas = append(metas, topicMeta{Name: t.name, ID: hex.EncodeToString(t.id[:]), Partitions: int32(len(t.partitionList())), Configs: t.configs})
	}
	sort.Slice(metas, func(i, j int) bool { return metas[i].Name < metas[j].Name })
	data, err := json.MarshalIndent(metas, "", "  ")
	b.metrics.topicsWrites.Inc()
	if err == nil {
		err = atomicfile.Write(filepath.Join(b.store.dir, topicsFile), data, b.store.cfg.Fsync != storage.FsyncNever)
	}
	if err != nil {
		b.log.Error("saving topic metadata failed: topic changes since the last save are lost on restart", "err", err)
	}
}

// openPartition opens (recovering) p's log and rebuilds its idempotent
// producer state from the recovered tail. A log that cannot be opened
// leaves the partition offline (KAFKA_STORAGE_ERROR) and is logged.
func (s *diskStore) openPartition(p *partition) {
	name := fmt.Sprintf("%s[%d]", p.topic.name, p.index)
	l, rec, err := storage.Open(storage.Options{
		Dir:     filepath.Join(s.dir, logsDir, hex.EncodeToString(p.topic.id[:]), fmt.Sprint(p.index)),
		Name:    name,
		RollAge: s.cfg.SegmentMaxAge,
		Syncer:  s.syncer,
		Logger:  s.log,
		Now:     s.cfg.Now,
		Files:   s.files,
		OnFence: func(segment, good, lost int64) { s.fenced.Inc() },
	})
	if err != nil {
		s.log.Error("partition log cannot be opened: the partition answers KAFKA_STORAGE_ERROR", "partition", name, "err", err)
		p.log = brokenLog{errPartitionOffline(name, err)}
		return
	}
	p.log = diskLog{l}
	st := l.Stats()
	p.logStart, p.next = st.Start, st.Next
	for _, b := range rec.Tail {
		if b.ProducerID < 0 {
			continue
		}
		h := recordbatch.Header{ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch, BaseSequence: b.BaseSequence, LastOffsetDelta: int32(b.Last - b.Base)}
		p.recordSequence(&h, b.Base, b.Last)
	}
	if rec.TruncatedBytes > 0 || rec.IndexRebuilt {
		s.log.Warn("partition recovered", "partition", name, "truncated_bytes", rec.TruncatedBytes, "index_rebuilt", rec.IndexRebuilt, "next_offset", p.next)
	}
}

// close stops the syncer (a last fsync round), closes every log and the
// offsets log, and unlocks the data dir.
func (s *diskStore) close(topics []*topic) {
	s.closeOnce.Do(func() { s.closeFiles(topics) })
}

func (s *diskStore) closeFiles(topics []*topic) {
	s.syncer.Close()
	for _, t := range topics {
		for _, p := range t.partitionList() {
			p.mu.Lock()
			if err := p.log.close(); err != nil {
				s.log.Error("closing a partition log", "topic", t.name, "partition", p.index, "err", err)
			}
			p.mu.Unlock()
		}
	}
	s.compactions.Wait() // a compaction under way aborts: the groups are closed
	if s.offsets != nil {
		if err := s.offsets.Close(); err != nil {
			s.log.Error("closing offsets.log", "err", err)
		}
	}
	s.lock.Close()
}

package broker

// offsets.log: committed offsets on disk, a storage.MetaLog of records that
// each set or delete one key (a group's partition, or a whole group).
//
// Records are binary and length-prefixed (offsetRecord.appendBinary): the
// earlier JSON records escaped every non-printable metadata byte as \u00XX,
// six bytes per byte, so 234 MiB of commits became a 1.41 GB log. JSON
// records (they start with '{') are still read, and the compaction at
// start-up rewrites them as binary.
//
// The file is bounded by the live state: once the records appended since
// the last compaction outnumber max(offsetsCompactEvery, 2 x the live
// offsets), a compaction rewrites the live offsets. It runs beside the
// coordinator (storage.MetaRewrite): the lock is taken per group only to
// encode its offsets, and commits meanwhile go on and are carried over.
// Start-up streams the file record by record, so its time and memory
// follow the live offsets and the bounded history, not every commit ever
// made.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/floodgate/floodgate/storage"
)

// offsetsCompactEvery is the least number of appended offset records
// between two compactions of offsets.log.
const offsetsCompactEvery = 10000

// offsetsLogState is the diskStore's part for offsets.log. Its counters
// are guarded by groups.mu (records are appended under it).
type offsetsLogState struct {
	offsets       *storage.MetaLog
	offsetAppends int  // records appended since the last compaction began
	offsetLive    int  // records written by the last compaction
	compacting    bool // a compaction is under way
	compactions   sync.WaitGroup
	scratch       []byte // encoding buffer of appendOffsetRecord
	// While batching, records are encoded into batch (ends marks where
	// each ends) and written with one write by flushOffsetBatch: a
	// request that commits many partitions makes one write under the
	// coordinator lock, not one per partition.
	batching bool
	batch    []byte
	ends     []int
}

// offsetRecord is one offsets.log record: a commit, the deletion of one
// offset (Del), or of a whole group (Del and no topic). The JSON tags read
// the records of earlier versions.
type offsetRecord struct {
	Group     string `json:"g"`
	Topic     string `json:"t,omitempty"`
	Partition int32  `json:"p,omitempty"`
	Offset    int64  `json:"o,omitempty"`
	Epoch     int32  `json:"e,omitempty"`
	Metadata  string `json:"m,omitempty"`
	AtMillis  int64  `json:"at,omitempty"`
	Del       bool   `json:"del,omitempty"`
}

// The binary record: version byte, kind byte, then uvarint-length-prefixed
// strings and varints: group; topic and partition unless the kind is
// recDelGroup; offset, leader epoch, commit time in ms and metadata for
// recCommit.
const (
	offsetRecordV1 byte = 1

	recCommit    byte = 0
	recDelOffset byte = 1
	recDelGroup  byte = 2
)

var errBadOffsetRecord = errors.New("bad offsets.log record")

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendBinary appends r's binary encoding to dst.
func (r *offsetRecord) appendBinary(dst []byte) []byte {
	kind := recCommit
	switch {
	case r.Del && r.Topic == "":
		kind = recDelGroup
	case r.Del:
		kind = recDelOffset
	}
	dst = append(dst, offsetRecordV1, kind)
	dst = appendString(dst, r.Group)
	if kind == recDelGroup {
		return dst
	}
	dst = appendString(dst, r.Topic)
	dst = binary.AppendVarint(dst, int64(r.Partition))
	if kind == recDelOffset {
		return dst
	}
	dst = binary.AppendVarint(dst, r.Offset)
	dst = binary.AppendVarint(dst, int64(r.Epoch))
	dst = binary.AppendVarint(dst, r.AtMillis)
	return appendString(dst, r.Metadata)
}

// offsetRecordReader decodes the fields of a binary record, remembering the first
// error.
type offsetRecordReader struct {
	p   []byte
	err error
}

func (d *offsetRecordReader) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err, d.p = errBadOffsetRecord, nil
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *offsetRecordReader) str() string {
	l, n := binary.Uvarint(d.p)
	if n <= 0 || l > uint64(len(d.p)-n) {
		d.err, d.p = errBadOffsetRecord, nil
		return ""
	}
	s := string(d.p[n : n+int(l)]) // a copy: the payload is reused
	d.p = d.p[n+int(l):]
	return s
}

// decodeOffsetRecord decodes a binary or (earlier versions) JSON record.
func decodeOffsetRecord(p []byte) (offsetRecord, error) {
	var r offsetRecord
	if len(p) > 0 && p[0] == '{' {
		err := json.Unmarshal(p, &r)
		return r, err
	}
	if len(p) < 2 || p[0] != offsetRecordV1 || p[1] > recDelGroup {
		return r, errBadOffsetRecord
	}
	kind := p[1]
	d := offsetRecordReader{p: p[2:]}
	r.Group = d.str()
	if kind == recDelGroup {
		r.Del = true
		return r, d.err
	}
	r.Topic = d.str()
	r.Partition = int32(d.varint())
	if kind == recDelOffset {
		r.Del = true
		return r, d.err
	}
	r.Offset = d.varint()
	r.Epoch = int32(d.varint())
	r.AtMillis = d.varint()
	r.Metadata = d.str()
	if d.err == nil && r.Topic == "" {
		d.err = errBadOffsetRecord
	}
	return r, d.err
}

// loadOffsets replays offsets.log into the group coordinator, drops what
// has expired or what the limits no longer allow, and compacts the file.
func (b *Broker) loadOffsets() error {
	s := b.store
	gs := b.groups
	var bad, refused int
	gs.mu.Lock()
	ml, err := storage.OpenMetaLogFunc(filepath.Join(s.dir, offsetsFile), s.syncer, s.log, func(p []byte) error {
		r, err := decodeOffsetRecord(p)
		if err != nil {
			bad++
			return nil
		}
		if !gs.applyOffsetRecord(&r) {
			refused++
		}
		return nil
	})
	for _, g := range gs.all {
		if len(g.offsets) == 0 {
			delete(gs.all, g.name)
		}
	}
	gs.mu.Unlock()
	if err != nil {
		return fmt.Errorf("load offsets: %w", err)
	}
	if bad > 0 {
		s.log.Warn("skipped unreadable offsets.log records", "records", bad)
	}
	if refused > 0 {
		s.log.Warn("dropped committed offsets the group limits no longer allow", "offsets", refused)
	}
	gs.expireOffsets(b.now()) // before anything is appended: nothing is written
	gs.mu.Lock()
	s.offsets = ml // from here on commits are appended
	gs.mu.Unlock()
	if err := b.compactOffsets(); err != nil {
		return fmt.Errorf("load offsets: %w", err)
	}
	return nil
}

// applyOffsetRecord applies one replayed record and reports false when a
// limit refused a commit. The caller holds gs.mu.
func (gs *groups) applyOffsetRecord(r *offsetRecord) bool {
	switch {
	case r.Del && r.Topic == "":
		if g := gs.find(r.Group); g != nil {
			g.drop()
		}
	case r.Del:
		if g := gs.find(r.Group); g != nil {
			g.deleteOffset(r.Topic, r.Partition)
		}
	default:
		g, full := gs.get(r.Group, true)
		if full {
			return false
		}
		c := committedOffset{offset: r.Offset, leaderEpoch: r.Epoch, metadata: r.Metadata, at: time.UnixMilli(r.AtMillis)}
		return g.commitOffset(r.Topic, r.Partition, c) == 0
	}
	return true
}

// persistOffset records a commit (c != nil) or the deletion of one offset.
// The caller holds gs.mu. A failed write is logged: the commit stays in
// memory but is lost on restart.
func (b *Broker) persistOffset(group, topic string, partition int32, c *committedOffset) {
	if b.store == nil || b.store.offsets == nil {
		return
	}
	r := offsetRecord{Group: group, Topic: topic, Partition: partition, Del: c == nil}
	if c != nil {
		r.Offset, r.Epoch, r.Metadata, r.AtMillis = c.offset, c.leaderEpoch, c.metadata, c.at.UnixMilli()
	}
	b.appendOffsetRecord(&r)
}

// persistGroupDelete records the deletion of a group. The caller holds gs.mu.
func (b *Broker) persistGroupDelete(group string) {
	if b.store == nil || b.store.offsets == nil {
		return
	}
	b.appendOffsetRecord(&offsetRecord{Group: group, Del: true})
}

// offsetBatch runs fn, which holds gs.mu, with the offset records it
// persists written at its end with one write. The caller holds gs.mu.
func (b *Broker) offsetBatch(fn func()) {
	s := b.store
	if s == nil || s.offsets == nil || s.batching {
		fn()
		return
	}
	s.batching = true
	defer b.flushOffsetBatch()
	fn()
}

// flushOffsetBatch writes the batched records. The caller holds gs.mu.
func (b *Broker) flushOffsetBatch() {
	s := b.store
	s.batching = false
	if len(s.ends) == 0 {
		return
	}
	payloads := make([][]byte, len(s.ends))
	from := 0
	for i, end := range s.ends {
		payloads[i] = s.batch[from:end]
		from = end
	}
	err := s.offsets.AppendMany(payloads)
	n := len(s.ends)
	s.batch, s.ends = s.batch[:0], s.ends[:0]
	if cap(s.batch) > 1<<20 {
		s.batch, s.ends = nil, nil // one large request does not keep its buffer
	}
	if err != nil {
		b.log.Error("persisting committed offsets failed: they are lost on restart", "offsets", n, "err", err)
		return
	}
	b.appended(n)
}

// appendOffsetRecord appends r (to the batch while batching) and starts a
// compaction when the appended records outgrow the live ones. The caller
// holds gs.mu.
func (b *Broker) appendOffsetRecord(r *offsetRecord) {
	s := b.store
	if s.batching {
		s.batch = r.appendBinary(s.batch)
		s.ends = append(s.ends, len(s.batch))
		return
	}
	s.scratch = r.appendBinary(s.scratch[:0])
	if err := s.offsets.Append(s.scratch); err != nil {
		b.log.Error("persisting a committed offset failed: it is lost on restart", "group", r.Group, "topic", r.Topic, "partition", r.Partition, "err", err)
		return
	}
	if cap(s.scratch) > 64<<10 {
		s.scratch = nil // one large record does not keep its buffer
	}
	b.appended(1)
}

// appended counts n written records and starts a compaction when the
// appended records outgrow the live ones. The caller holds gs.mu.
func (b *Broker) appended(n int) {
	s := b.store
	b.groups.met.offsetsLogSize.Set(float64(s.offsets.Size()))
	s.offsetAppends += n
	if s.compacting || s.offsetAppends < max(offsetsCompactEvery, 2*s.offsetLive) {
		return
	}
	s.compacting = true
	s.compactions.Add(1)
	go func() {
		defer s.compactions.Done()
		defer func() {
			if p := recover(); p != nil {
				b.log.Error("offsets.log compaction panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			b.groups.mu.Lock()
			s.compacting = false
			b.groups.mu.Unlock()
		}()
		if err := b.compactOffsets(); err != nil && !errors.Is(err, storage.ErrClosed) {
			b.log.Warn("compacting offsets.log failed", "err", err)
		}
	}()
}

// errCoordinatorClosed stops a compaction when the broker closes.
var errCoordinatorClosed = errors.New("group coordinator closed")

// compactOffsets rewrites offsets.log with the live offsets. It takes
// gs.mu once to list the groups and then once per group, to encode its
// offsets; commits meanwhile are carried over by the MetaRewrite.
func (b *Broker) compactOffsets() (err error) {
	s, gs := b.store, b.groups
	start := time.Now()
	rw, err := s.offsets.BeginRewrite()
	if err != nil {
		return fmt.Errorf("compact offsets: %w", err)
	}
	committing := false
	defer func() {
		if !committing {
			rw.Abort()
		}
	}()
	gs.mu.Lock()
	list := make([]*group, 0, len(gs.all))
	for _, g := range gs.all {
		list = append(list, g)
	}
	s.offsetAppends = 0
	gs.mu.Unlock()
	var buf []byte
	var ends []int
	live := 0
	for _, g := range list {
		buf, ends = buf[:0], ends[:0]
		gs.mu.Lock()
		if gs.closed {
			gs.mu.Unlock()
			return errCoordinatorClosed
		}
		if gs.all[g.name] == g {
			for t, ps := range g.offsets {
				for p, c := range ps {
					r := offsetRecord{Group: g.name, Topic: t, Partition: p, Offset: c.offset, Epoch: c.leaderEpoch, Metadata: c.metadata, AtMillis: c.at.UnixMilli()}
					buf = r.appendBinary(buf)
					ends = append(ends, len(buf))
				}
			}
		}
		gs.mu.Unlock()
		from := 0
		for _, end := range ends {
			if err := rw.Add(buf[from:end]); err != nil {
				return fmt.Errorf("compact offsets: %w", err)
			}
			from = end
		}
		live += len(ends)
	}
	committing = true
	if err := rw.Commit(); err != nil {
		return fmt.Errorf("compact offsets: %w", err)
	}
	gs.mu.Lock()
	s.offsetLive = live
	gs.mu.Unlock()
	size := s.offsets.Size()
	gs.met.offsetsLogSize.Set(float64(size))
	b.log.Debug("offsets.log compacted", "offsets", live, "bytes", size, "took", time.Since(start))
	return nil
}

// expireOffsets deletes the committed offsets that offsets.retention.minutes
// no longer keeps, as Kafka's GroupMetadata.removeExpiredOffsets does:
//   - a group with a protocol type that is Empty: all its offsets, once the
//     retention has passed since it became Empty;
//   - a group without protocol type (it only ever committed, e.g. with
//     generation -1, or its type was lost in a restart): each offset once
//     the retention has passed since its commit;
//   - a Stable "consumer" group: offsets of topics no member subscribes to,
//     by commit time.
//
// A group left without offsets and members is deleted. It takes gs.mu per
// group, so a sweep over many groups does not stall the others' requests.
func (gs *groups) expireOffsets(now time.Time) int {
	ret := gs.lim.OffsetsRetention
	if ret < 0 {
		return 0
	}
	gs.mu.Lock()
	list := make([]*group, 0, len(gs.all))
	for _, g := range gs.all {
		list = append(list, g)
	}
	gs.mu.Unlock()
	expired := 0
	for _, g := range list {
		gs.do(func(*outbox) {
			if gs.closed || gs.all[g.name] != g {
				return
			}
			expired += g.expireOffsets(now, ret)
		})
	}
	if expired > 0 {
		gs.met.offsetsExpired.Add(expired)
		gs.b.log.Info("expired committed offsets", "offsets", expired, "retention", ret)
	}
	return expired
}

// expireOffsets applies the retention to g. The caller holds gs.mu.
func (g *group) expireOffsets(now time.Time, ret time.Duration) int {
	empty := g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0
	var old func(t string, c committedOffset) bool
	switch {
	case empty && g.protocolType != "":
		if now.Sub(g.emptySince) < ret {
			return 0
		}
		old = func(string, committedOffset) bool { return true }
	case empty || g.protocolType == "":
		old = func(_ string, c committedOffset) bool { return now.Sub(c.at) >= ret }
	case g.protocolType == "consumer" && g.state == groupStable:
		subscribed, ok := g.subscribedTopics()
		if !ok {
			return 0
		}
		old = func(t string, c committedOffset) bool { return !subscribed[t] && now.Sub(c.at) >= ret }
	default:
		return 0
	}
	type key struct {
		topic     string
		partition int32
	}
	var gone []key
	for t, ps := range g.offsets {
		for p, c := range ps {
			if old(t, c) {
				gone = append(gone, key{t, p})
			}
		}
	}
	if len(gone) == 0 {
		return 0
	}
	if len(gone) == g.nOffsets && empty {
		g.drop()
		g.gs.b.persistGroupDelete(g.name)
		return len(gone)
	}
	g.gs.b.offsetBatch(func() {
		for _, k := range gone {
			g.deleteOffset(k.topic, k.partition)
			g.gs.b.persistOffset(g.name, k.topic, k.partition, nil)
		}
	})
	g.forgetIfUnused()
	return len(gone)
}

// sweepOffsets is one expiry round (every OffsetsRetentionCheck, started by
// Open, stopped by Close); a panic is logged, not fatal.
func (gs *groups) sweepOffsets() {
	defer func() {
		if p := recover(); p != nil {
			gs.b.log.Error("offset expiry panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	gs.expireOffsets(gs.b.now())
}

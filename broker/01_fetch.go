package broker

// Fetch: versions 4-12 (record batch v2 only; topics by name). A fetch that
// finds fewer than min_bytes waits up to max_wait_ms without holding a
// worker: it is parked on its partitions, woken by Produce or by its timer
// (like Kafka's purgatory), and answered from whichever goroutine wakes it.
// max_bytes and partition_max_bytes are honoured and capped by
// --max-fetch-bytes, but the first batch found is returned whole even when it
// is larger, as Kafka does so consumers always progress. Fetch sessions
// (KIP-227) are not kept: every response has session id 0, which clients
// take as "use full fetches".
//
// A partition named twice in one request is served once, in the place it
// was first named (Kafka keys a fetch's partitions by topic-partition too),
// so the work of a fetch and of each of its retries is bounded by the
// distinct partitions that exist, not by what the request repeats. At most
// --max-waiting-fetches fetches wait at a time; one more is answered at once
// with what is there. A produce wakes each waiting fetch at most once (a
// flag, not a goroutine per produce), and the goroutine that retries it
// recovers a panic: the fetch is answered UNKNOWN_SERVER_ERROR and the
// process lives on.

import (
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
	"github.com/floodgate/floodgate/storage"
)

// fetchWaiter is one fetch waiting for data.
type fetchWaiter struct {
	b       *Broker
	req     *kmsg.FetchRequest
	respond Responder
	files   bool // the answer may leave records in files (Client.Files)
	done    atomic.Bool
	timer   *time.Timer
	mu      sync.Mutex // serialises retries
	parts   []*partition
	// pending is set while a retry goroutine is started and has not yet
	// begun looking: further wakes then start none.
	pending atomic.Bool
}

// fetchWaits bounds and counts the waiting fetches.
type fetchWaits struct {
	max     int64 // 0: no limit
	n       atomic.Int64
	refused *metrics.Counter
	panics  *metrics.Counter
}

// init sets the limit and registers the metrics in set, the waiting count
// as a gauge read from n.
func (fw *fetchWaits) init(max int64, set *metrics.Set) {
	fw.max = max
	fw.refused = set.NewCounter(`floodgate_fetch_wait_refused_total`)
	fw.panics = set.NewCounter(`floodgate_fetch_waiter_panics_total`)
	set.NewGauge("floodgate_fetch_waiting", func() float64 { return float64(fw.n.Load()) })
}

// admit takes a waiting slot, or reports that the limit is reached.
func (fw *fetchWaits) admit() bool {
	if n := fw.n.Add(1); fw.max > 0 && n > fw.max {
		fw.n.Add(-1)
		return false
	}
	return true
}

func init() { registerReq(4, 12, (*Broker).handleFetch) }

func (b *Broker) handleFetch(req *kmsg.FetchRequest, cl *Client, respond Responder) {
	if req.Version >= 7 && req.SessionID != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.SetVersion(req.Version)
		resp.ErrorCode = kafka.ErrFetchSessionIDNotFound
		respond(resp)
		return
	}
	dedupeFetch(req)
	files := cl != nil && cl.Files
	resp, n := b.fetchOnce(req, files)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if n >= int64(req.MinBytes) || wait <= 0 || n < 0 {
		respond(resp)
		return
	}
	if !b.waits.admit() {
		b.waits.refused.Inc()
		b.warnings.Warn("max-waiting-fetches", "fetch answered without waiting: too many waiting fetches",
			"limit", "max-waiting-fetches", "configured", b.waits.max)
		respond(resp)
		return
	}
	wait = min(wait, b.cfg.MaxFetchWait)
	releaseFiles(resp) // looked again when the wait ends
	w := &fetchWaiter{b: b, req: req, respond: respond, files: files}
	for _, rt := range req.Topics {
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			if p := t.partitionOf(rp.Partition); p != nil {
				w.parts = append(w.parts, p)
			}
		}
	}
	w.timer = time.AfterFunc(wait, w.expire)
	w.retry()
}

// wake is called by a partition (under its lock) when data arrives. It
// starts a retry unless one is started and has not begun looking yet: that
// one will see the new data.
func (w *fetchWaiter) wake() {
	if !w.done.Load() && w.pending.CompareAndSwap(false, true) {
		go w.retry()
	}
}

// retry registers on the partitions, then looks again, so that data arriving
// between the look and the registration is never missed.
func (w *fetchWaiter) retry() {
	defer w.recoverPanic()
	w.mu.Lock()
	defer w.mu.Unlock()
	// From here on a wake starts another retry: this one may have looked
	// already when the data it signals arrives.
	w.pending.Store(false)
	if w.done.Load() {
		return
	}
	for _, p := range w.parts {
		p.mu.Lock()
		p.waiters[w] = struct{}{}
		p.mu.Unlock()
	}
	resp, n := w.b.fetchOnce(w.req, w.files)
	if n >= int64(w.req.MinBytes) || n < 0 {
		w.finish(resp)
		return
	}
	releaseFiles(resp)
}

func (w *fetchWaiter) expire() {
	defer w.recoverPanic()
	w.mu.Lock()
	defer w.mu.Unlock()
	resp, _ := w.b.fetchOnce(w.req, w.files)
	w.finish(resp)
}

// recoverPanic keeps a panic of a waiter's goroutine (reading the log, or
// the responder: a REST answer is built there) from killing the process:
// it is logged and counted, and a fetch not yet answered is answered
// UNKNOWN_SERVER_ERROR, which releases what its request holds. A waiter
// whose responder panicked was answered (finish marks it done first).
func (w *fetchWaiter) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	w.b.waits.panics.Inc()
	w.b.log.Error("fetch waiter panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	if w.done.CompareAndSwap(false, true) {
		w.timer.Stop()
		w.unregister()
		w.respond(kafka.ErrorResponse(w.req, kafka.ErrUnknownServerError))
	}
}

// unregister removes the waiter from its partitions and frees its slot.
func (w *fetchWaiter) unregister() {
	for _, p := range w.parts {
		p.mu.Lock()
		delete(p.waiters, w)
		p.mu.Unlock()
	}
	w.b.waits.n.Add(-1)
}

// dedupeFetch keeps the first mention of each topic-partition of req (a
// topic named twice has its partitions merged into its first mention), so
// that a request repeating one partition costs what naming it once does.
// smallFetch is the size up to which a fetch is checked for repeats by
// comparing pairs (no allocation) before the map-based pass.
const smallFetch = 64

// repeatsSmall reports whether a fetch of at most smallFetch partitions
// names a topic or a partition twice.
func repeatsSmall(req *kmsg.FetchRequest) bool {
	for i, t := range req.Topics {
		for _, u := range req.Topics[i+1:] {
			if t.Topic == u.Topic {
				return true
			}
		}
		for j, p := range t.Partitions {
			for _, q := range t.Partitions[j+1:] {
				if p.Partition == q.Partition {
					return true
				}
			}
		}
	}
	return false
}

func dedupeFetch(req *kmsg.FetchRequest) {
	type tp struct {
		topic     string
		partition int32
	}
	total := 0
	for _, t := range req.Topics {
		total += len(t.Partitions)
	}
	if total < 2 || total <= smallFetch && !repeatsSmall(req) {
		return // the common case: nothing repeated, nothing allocated
	}
	seen := make(map[tp]struct{}, min(total, 1024))
	topicAt := make(map[string]int, min(len(req.Topics), 1024))
	out := req.Topics[:0]
	for _, t := range req.Topics {
		src := t.Partitions
		i, ok := topicAt[t.Topic]
		if !ok {
			i = len(out)
			topicAt[t.Topic] = i
			t.Partitions = src[:0] // compacted in place: writes trail reads
			out = append(out, t)
		}
		for _, p := range src {
			k := tp{t.Topic, p.Partition}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			out[i].Partitions = append(out[i].Partitions, p)
		}
	}
	clear(req.Topics[len(out):])
	req.Topics = out
	// A waiting fetch keeps its request: let the arrays that held the
	// repeats go.
	if total > 2*kept(out)+16 {
		for i := range out {
			out[i].Partitions = slices.Clone(out[i].Partitions)
		}
		req.Topics = slices.Clone(out)
	}
}

func kept(topics []kmsg.FetchRequestTopic) int {
	n := 0
	for _, t := range topics {
		n += len(t.Partitions)
	}
	return n
}

// finish answers once and unregisters. The caller holds w.mu.
func (w *fetchWaiter) finish(resp kmsg.Response) {
	if !w.done.CompareAndSwap(false, true) {
		releaseFiles(resp)
		return
	}
	w.timer.Stop()
	w.unregister()
	w.respond(resp)
}

// fetchOnce builds the response from what the log holds now. It returns the
// record bytes found, or -1 when a partition has an error worth answering at
// once (unknown topic, offset out of range). With files set, records on
// disk are left in their segment files: the answer is then a
// *kafka.FileFetchResponse holding them open (see releaseFiles), which only
// a writer that sends files may be given.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest, files bool) (kmsg.Response, int64) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SetVersion(req.Version)
	budget := b.cfg.MaxFetchBytes
	if req.Version >= 3 && int64(req.MaxBytes) < budget && req.MaxBytes > 0 {
		budget = int64(req.MaxBytes)
	}
	files = files && req.Version >= 4 && req.Version <= 12 // what kafka.AppendFileFetchResponse writes
	var secs []kafka.PartitionSection
	var total int64
	urgent := false
	for ti, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		t := b.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.PreferredReadReplica = -1
			p := t.partitionOf(rp.Partition)
			if p == nil {
				sp.ErrorCode = kafka.ErrUnknownTopicOrPartition
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
				urgent = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			limit := int64(rp.PartitionMaxBytes)
			if rem := budget - total; limit > rem {
				limit = rem
			}
			n, sec := p.read(rp.FetchOffset, limit, total == 0, files, &sp)
			if sec != nil {
				secs = append(secs, kafka.PartitionSection{Topic: ti, Partition: len(st.Partitions), Section: sec})
			}
			if sp.ErrorCode != kafka.ErrNone {
				urgent = true
			}
			total += n
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// Kafka answers an empty records field, never a null one: clients on
	// non-flexible Fetch versions (sarama configured below Kafka 2.7, i.e.
	// Fetch v4-v11) fail to decode a null records field.
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].RecordBatches == nil {
				resp.Topics[i].Partitions[j].RecordBatches = []byte{}
			}
		}
	}
	var out kmsg.Response = resp
	if len(secs) > 0 {
		out = &kafka.FileFetchResponse{FetchResponse: resp, Sections: secs}
	}
	if urgent {
		return out, -1
	}
	return out, total
}

// releaseFiles lets go of the files an answer that will not be sent holds.
func releaseFiles(resp kmsg.Response) {
	if ff, ok := resp.(*kafka.FileFetchResponse); ok {
		ff.Release()
	}
}

// sectionLog is a partition log that can leave records in its files.
type sectionLog interface {
	readSection(offset, limit int64, first bool, upTo int64) (*storage.Section, bool, error)
}

// read fills sp with batches from offset, up to limit bytes (but at least
// one whole batch when first is set). It returns the bytes returned, and
// with files set and the log on disk, the section of the segment file that
// holds them (sp.RecordBatches is then empty). The partition lock is held
// only to read the watermarks: a disk log is read with pread into a buffer
// sized by the request (or not read at all for a section), so a consumer
// catching up neither blocks producers nor pulls the log into memory.
func (p *partition) read(offset, limit int64, first, files bool, sp *kmsg.FetchResponseTopicPartition) (int64, kafka.FileSection) {
	p.mu.Lock()
	next, start, lg := p.next, p.logStart, p.log
	p.mu.Unlock()
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = next, next, start
	if err := offline(lg); err != nil {
		sp.ErrorCode = kafka.ErrKafkaStorageError
		return 0, nil
	}
	if offset < start || offset > next {
		sp.ErrorCode = kafka.ErrOffsetOutOfRange
		return 0, nil
	}
	if offset == next {
		return 0, nil
	}
	if sl, ok := lg.(sectionLog); ok && files {
		sec, ok, err := sl.readSection(offset, limit, first, next)
		if err != nil {
			p.topic.storageError("fetch", p.index, err)
			sp.ErrorCode = kafka.ErrKafkaStorageError
			return 0, nil
		}
		if ok {
			if sec == nil {
				return 0, nil
			}
			fd, off, n := sec.Span()
			if n >= inlineSectionBytes {
				return n, sec
			}
			// A few KB (a consumer following the tail): one pread costs
			// less than a sendfile and a cut in the answer's writev.
			data, err := readSection(fd, off, n)
			sec.Release()
			if err != nil {
				p.topic.storageError("fetch", p.index, err)
				sp.ErrorCode = kafka.ErrKafkaStorageError
				return 0, nil
			}
			sp.RecordBatches = data
			return n, nil
		}
		// Refused (too many sections held) or damaged: read by copy.
	}
	data, err := lg.read(offset, limit, first)
	if err != nil {
		p.topic.storageError("fetch", p.index, err)
		sp.ErrorCode = kafka.ErrKafkaStorageError
		return 0, nil
	}
	data = cutAtOffset(data, next)
	sp.RecordBatches = data
	return int64(len(data)), nil
}

// inlineSectionBytes is the size below which a partition's records are
// read into the answer rather than sent from the file.
const inlineSectionBytes = 4096

// readSection reads a small section of a segment file.
func readSection(fd int, off, n int64) ([]byte, error) {
	b := make([]byte, n)
	for got := 0; got < len(b); {
		k, err := unix.Pread(fd, b[got:], off+int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read section at %d: %w", off, err)
		}
		if k == 0 {
			return nil, fmt.Errorf("read section at %d: %w", off, io.ErrUnexpectedEOF)
		}
		got += k
	}
	return b, nil
}

// cutAtOffset drops the batches at or above next (appended after the high
// watermark was read), so a response never runs past its high watermark.
func cutAtOffset(data []byte, next int64) []byte {
	pos := 0
	for pos+recordbatch.HeaderSize <= len(data) {
		if recordbatch.BaseOffset(data[pos:]) >= next {
			break
		}
		pos += int(recordbatch.Size(data[pos:]))
	}
	return data[:min(pos, len(data))]
}

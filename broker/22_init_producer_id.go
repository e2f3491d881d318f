package broker

// InitProducerId: versions 0-5, for idempotent producers only: a
// transactional id gets INVALID_REQUEST, as floodgate has no transaction
// coordinator. Producer
// ids count up from 1000; a producer re-initialising with its id and epoch
// (KIP-360) gets the next epoch. Handing out an id costs nothing: sequence
// state exists only once a producer appends, so an InitProducerId storm
// holds no memory.
//
// Producer states (one per producer id and partition) expire after
// --producer-id-expiration-ms without an append, as Kafka's
// producer.id.expiration.ms, and there are at most --max-producer-states of
// them: beyond it the least recently appending one is forgotten. Refusing
// new producers instead would let one client that churns producer ids lock
// every new idempotent producer out; forgetting an idle one costs that
// producer only its duplicate detection: its next batch (sequence > 0) gets
// OUT_OF_ORDER_SEQUENCE_NUMBER, and franz-go, the Java client and
// librdkafka then re-initialise (KIP-360, the next epoch) and go on.

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/codec/recordbatch"
)

// producerIDs hands out producer ids.
type producerIDs struct {
	mu   sync.Mutex
	next int64
}

// recentBatches is how many batches per producer are remembered for
// duplicate detection, as Kafka does (max.in.flight = 5).
const recentBatches = 5

// producerState is one producer's sequence state in one partition. The
// sequence fields are guarded by the partition's mutex, elem and
// lastAppend by the producerStates mutex.
type producerState struct {
	epoch   int16
	lastSeq int32
	recent  [recentBatches]seqRange
	n       int

	pid        int64
	part       *partition
	elem       *list.Element // nil: not in the table (new, or evicted)
	lastAppend time.Time
}

// Defaults of the producer state bounds.
const (
	defaultProducerIDExpiration = 24 * time.Hour
	defaultMaxProducerStates    = 200000
)

// producerStates bounds and expires the producer states of all partitions,
// in the order of their last append. A state leaves the table under the
// table's mutex and its partition's map later, in sweep, under the
// partition's: the table never takes a partition lock while held, and
// touch is called with one partition lock held, so the lock order is
// always partition, then table.
type producerStates struct {
	now    func() time.Time
	expiry time.Duration
	max    int

	mu      sync.Mutex
	lru     list.List        // *producerState, least recently appended first
	victims []*producerState // out of the table, still in a partition's map
	// hasVictims lets sweep, called on every produce, skip the lock when
	// there is nothing to sweep.
	hasVictims atomic.Bool

	expired, evicted *metrics.Counter
}

func newProducerStates(now func() time.Time, expiry time.Duration, maxStates int, set *metrics.Set) *producerStates {
	if expiry <= 0 {
		expiry = defaultProducerIDExpiration
	}
	if maxStates <= 0 {
		maxStates = defaultMaxProducerStates
	}
	t := &producerStates{now: now, expiry: expiry, max: maxStates}
	if set == nil {
		set = metrics.NewSet()
	}
	t.expired = set.NewCounter(`floodgate_producer_states_removed_total{reason="expired"}`)
	t.evicted = set.NewCounter(`floodgate_producer_states_removed_total{reason="max_producer_states"}`)
	set.NewGauge("floodgate_producer_states", func() float64 { return float64(t.len()) })
	return t
}

func (t *producerStates) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// touch records an append by st now, adding st to the table if it is not
// in it, and moves expired states and those over the bound out of the
// table (sweep removes them from their partitions). The caller holds
// st.part.mu.
func (t *producerStates) touch(st *producerState) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	st.lastAppend = now
	if st.elem == nil {
		st.elem = t.lru.PushBack(st)
	} else {
		t.lru.MoveToBack(st.elem)
	}
	for e := t.lru.Front(); e != nil; e = t.lru.Front() {
		old := e.Value.(*producerState)
		switch {
		case now.Sub(old.lastAppend) >= t.expiry:
			t.expired.Inc()
		case t.lru.Len() > t.max:
			t.evicted.Inc()
		default:
			return
		}
		t.lru.Remove(e)
		old.elem = nil
		t.victims = append(t.victims, old)
		t.hasVictims.Store(true)
	}
}

// forget takes the producer states of a deleted partition out of the
// table, so that neither they nor the partition they point to outlive it.
// The caller holds p.mu.
func (t *producerStates) forget(p *partition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, st := range p.producers {
		if st.elem != nil {
			t.lru.Remove(st.elem)
			st.elem = nil
		}
		delete(p.producers, pid)
	}
}

// sweep deletes the states touch moved out of the table from their
// partitions' maps, unless they appended again since. The caller holds no
// partition lock.
func (t *producerStates) sweep() {
	if !t.hasVictims.Load() {
		return
	}
	t.mu.Lock()
	t.hasVictims.Store(false)
	victims := t.victims
	t.victims = nil
	t.mu.Unlock()
	for _, v := range victims {
		p := v.part
		p.mu.Lock()
		t.mu.Lock()
		if v.elem == nil && p.producers[v.pid] == v {
			delete(p.producers, v.pid)
		}
		t.mu.Unlock()
		p.mu.Unlock()
	}
}

type seqRange struct {
	first, last int32
	base        int64
}

func init() { register(0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse, _ *Client, respond Responder) {
	if req.TransactionalID != nil {
		resp.ErrorCode = kafka.ErrInvalidRequest
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		respond(resp)
		return
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
		resp.ProducerID = req.ProducerID
		resp.ProducerEpoch = req.ProducerEpoch + 1
		if resp.ProducerEpoch < 0 { // wrapped: a new id
			resp.ProducerID, resp.ProducerEpoch = b.producers.nextID(), 0
		}
		respond(resp)
		return
	}
	resp.ProducerID, resp.ProducerEpoch = b.producers.nextID(), 0
	respond(resp)
	b.states.sweep()
}

func (p *producerIDs) nextID() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		p.next = 1000
	}
	p.next++
	return p.next
}

// checkSequence checks an idempotent batch. It reports a duplicate (with its
// original base offset) or the error code to answer. The caller holds p.mu.
func (p *partition) checkSequence(h *recordbatch.Header) (dup bool, base int64, code int16) {
	if h.ProducerID < 0 {
		return false, 0, kafka.ErrNone
	}
	st, ok := p.producers[h.ProducerID]
	if !ok || h.ProducerEpoch > st.epoch {
		if h.BaseSequence != 0 {
			return false, 0, kafka.ErrOutOfOrderSequence
		}
		return false, 0, kafka.ErrNone
	}
	if h.ProducerEpoch < st.epoch {
		return false, 0, kafka.ErrInvalidProducerEpoch
	}
	last := h.BaseSequence + h.LastOffsetDelta
	for i := 0; i < st.n; i++ {
		r := st.recent[i]
		if r.first == h.BaseSequence && r.last == last {
			return true, r.base, kafka.ErrNone
		}
	}
	if h.BaseSequence != nextSeq(st.lastSeq) {
		return false, 0, kafka.ErrOutOfOrderSequence
	}
	return false, 0, kafka.ErrNone
}

// recordSequence remembers an appended idempotent batch. The caller holds p.mu.
func (p *partition) recordSequence(h *recordbatch.Header, base, _ int64) {
	if h.ProducerID < 0 {
		return
	}
	st, ok := p.producers[h.ProducerID]
	if !ok || h.ProducerEpoch > st.epoch {
		if ok {
			st.epoch, st.n = h.ProducerEpoch, 0
		} else {
			st = &producerState{epoch: h.ProducerEpoch, pid: h.ProducerID, part: p}
			p.producers[h.ProducerID] = st
		}
	}
	if p.topic.states != nil {
		p.topic.states.touch(st)
	}
	st.lastSeq = h.BaseSequence + h.LastOffsetDelta
	r := seqRange{first: h.BaseSequence, last: st.lastSeq, base: base}
	if st.n < recentBatches {
		st.recent[st.n] = r
		st.n++
		return
	}
	copy(st.recent[:], st.recent[1:])
	st.recent[recentBatches-1] = r
}

// nextSeq is the sequence after s; sequences wrap at MaxInt32 as in Kafka.
func nextSeq(s int32) int32 {
	if s == 1<<31-1 {
		return 0
	}
	return s + 1
}

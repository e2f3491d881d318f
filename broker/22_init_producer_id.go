package broker

// InitProducerId: versions 0-5, for idempotent producers only: a
// transactional id gets INVALID_REQUEST, as floodgate has no transaction
// coordinator. Producer
// ids count up from 1000; a producer re-initialising with its id and epoch
// (KIP-360) gets the next epoch.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// producerIDs hands out producer ids.
type producerIDs struct {
	mu   sync.Mutex
	next int64
}

// recentBatches is how many batches per producer are remembered for
// duplicate detection, as Kafka does (max.in.flight = 5).
const recentBatches = 5

// producerState is one producer's sequence state in one partition.
type producerState struct {
	epoch   int16
	lastSeq int32
	recent  [recentBatches]seqRange
	n       int
}

type seqRange struct {
	first, last int32
	base        int64
}

func (b *Broker) handleInitProducerID(kreq kmsg.Request, _ *Client, respond Responder) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(req.Version)
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
func (p *partition) checkSequence(h *batchHeader) (dup bool, base int64, code int16) {
	if h.producerID < 0 {
		return false, 0, kafka.ErrNone
	}
	st, ok := p.producers[h.producerID]
	if !ok || h.producerEpoch > st.epoch {
		if h.baseSequence != 0 {
			return false, 0, kafka.ErrOutOfOrderSequence
		}
		return false, 0, kafka.ErrNone
	}
	if h.producerEpoch < st.epoch {
		return false, 0, kafka.ErrInvalidProducerEpoch
	}
	last := h.baseSequence + h.lastOffsetDelta
	for i := 0; i < st.n; i++ {
		r := st.recent[i]
		if r.first == h.baseSequence && r.last == last {
			return true, r.base, kafka.ErrNone
		}
	}
	if h.baseSequence != nextSeq(st.lastSeq) {
		return false, 0, kafka.ErrOutOfOrderSequence
	}
	return false, 0, kafka.ErrNone
}

// recordSequence remembers an appended idempotent batch. The caller holds p.mu.
func (p *partition) recordSequence(h *batchHeader, base, _ int64) {
	if h.producerID < 0 {
		return
	}
	st, ok := p.producers[h.producerID]
	if !ok || h.producerEpoch > st.epoch {
		st = &producerState{epoch: h.producerEpoch}
		p.producers[h.producerID] = st
	}
	st.lastSeq = h.baseSequence + h.lastOffsetDelta
	r := seqRange{first: h.baseSequence, last: st.lastSeq, base: base}
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

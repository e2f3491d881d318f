package loop

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// kafkaRequest is one Kafka request from dispatch to response: the pool's
// job, the handler's responder and the budget it holds, in one allocation
// (plus the frame it owns).
type kafkaRequest struct {
	c        *conn
	seq      uint64
	hdr      kafka.Header
	frame    []byte        // after the length prefix: header and body
	charge   limits.Charge // the frame's bytes, held until the request is answered
	req      kmsg.Request  // decoded, kept to answer with an error in its shape
	throttle time.Duration
	reject   bool
	quota    []byte // the client's byte-quota key (Fetch with --fetch-byte-rate)
	start    time.Time
	// parkedAt is when the handler returned without answering a Fetch
	// (unix nanos; 0: not parked): the request's latency ends there, so
	// the long-poll wait for data is not counted as serving time.
	parkedAt atomic.Int64
	// answered makes the answer happen once, whichever comes first: the
	// handler's respond (from any goroutine, possibly late) or the
	// panic recovery.
	answered atomic.Bool
	// frameMu orders releasing the frame between the answer (any
	// goroutine) and detach (the worker, when the handler keeps waiting).
	frameMu sync.Mutex
	// pooled is the pool buffer frame lives in (framepool.go), nil when
	// the frame was allocated; guarded by frameMu. refs counts who may
	// still read the frame: the handler's call (run) and the answer; the
	// last to let go returns the buffer. Paths that drop a request without
	// its answer never let go of theirs, so its frame goes to the GC.
	pooled *[]byte
	refs   atomic.Int32
	// rest are the frame's pieces after frame when it was kept in the
	// pieces it arrived in (ChunkedRawKafkaHandler), restPooled their pool
	// buffers (nil entries: allocated); both guarded by frameMu and
	// returned with pooled.
	rest       [][]byte
	restPooled []*[]byte
	// assemble: the frame is a request other than Produce kept in pooled
	// pieces (frame, then rest), which run copies into one buffer of its
	// own before anything reads past its header.
	assemble bool
}

// holdPooled records that the request's frame lives in pool buffer p (nil:
// allocated), held by the handler's call and by the answer.
func (r *kafkaRequest) holdPooled(p *[]byte) {
	if p == nil {
		return
	}
	r.pooled = p
	r.refs.Store(2)
}

// holdPieces records a frame kept in pieces: fc's, then last (whose pool
// buffer is lastPooled), held like holdPooled's when any is pooled.
func (r *kafkaRequest) holdPieces(fc *frameChunks, last []byte, lastPooled *[]byte) {
	r.frame, r.pooled = fc.bufs[0], fc.pooled[0]
	r.rest = append(fc.bufs[1:], last)
	r.restPooled = append(fc.pooled[1:], lastPooled)
	pooled := r.pooled != nil
	for _, p := range r.restPooled {
		pooled = pooled || p != nil
	}
	if pooled {
		r.refs.Store(2)
	}
}

// unref lets go of one hold on a pooled frame; the last returns the
// buffer to the pool. Nothing may read the frame, nor the decoded request
// (whose strings alias it), after its last hold is let go.
func (r *kafkaRequest) unref() {
	if r.refs.Load() == 0 || r.refs.Add(-1) != 0 {
		return
	}
	r.frameMu.Lock()
	p, rest := r.pooled, r.restPooled
	r.pooled, r.frame, r.req = nil, nil, nil
	r.rest, r.restPooled = nil, nil
	r.frameMu.Unlock()
	r.c.loop.s.frames.put(p)
	for _, q := range rest {
		r.c.loop.s.frames.put(q)
	}
}

// keepFrame gives a pooled frame to the GC instead of the pool: its
// request is dropped or detached while a handler may still hold it.
func (r *kafkaRequest) keepFrame() {
	r.frameMu.Lock()
	r.pooled, r.restPooled = nil, nil
	r.frameMu.Unlock()
}

// assembleFrame copies a frame kept in pooled pieces into one buffer of its
// length and returns the pieces to the pools. It runs on the worker, not
// the event loop: the new buffer is fresh memory, and its page faults (225
// for 900 KiB; a fifth of the server's CPU under a JoinGroup flood in this
// project's VMs, where a fault is costly) stalled every connection of the
// loop, which now only reads into pool buffers already faulted in. The
// charge shrinks to the buffer.
func (r *kafkaRequest) assembleFrame() {
	whole := make([]byte, 0, r.hdr.Length)
	whole = append(whole, r.frame...)
	for _, b := range r.rest {
		whole = append(whole, b...)
	}
	r.frameMu.Lock()
	pooled, rest := r.pooled, r.restPooled
	r.frame, r.pooled, r.rest, r.restPooled = whole, nil, nil, nil
	r.frameMu.Unlock()
	r.refs.Store(0) // the frame is the GC's: nothing to return any more
	frames := &r.c.loop.s.frames
	frames.put(pooled)
	for _, p := range rest {
		frames.put(p)
	}
	r.assemble = false
	r.hdr.ClientID = clientID(whole)    // it pointed into the first piece
	_ = r.charge.Set(int64(cap(whole))) // no more than the pieces held
}

// run serves the request on a pool worker: decode, handle, encode.
func (r *kafkaRequest) run() {
	c, s, h := r.c, r.c.loop.s, &r.hdr
	r.start = time.Now()
	if r.assemble {
		r.assembleFrame()
	}
	defer r.unref() // the handler's call is over (after the recovery below)
	defer func() {
		if p := recover(); p != nil {
			r.keepFrame() // whatever the handler left running may still read it
			s.met.panics.Inc()
			s.log.Error("request panicked; closing its connection", "api", kmsg.NameForKey(h.APIKey),
				"client_ip", c.addr(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if r.claim() {
				r.charge.Release()
				c.complete(r.seq, nil)
			}
			c.closeAsync(causePanic)
		}
	}()
	s.met.requests.inc(h.APIKey)
	if s.cfg.SASL != nil && r.serveSASL() {
		return
	}
	memOver := r.overProcessMemory()
	if rh := s.raw; rh != nil && !r.reject && !memOver {
		cl := ClientConn{ID: c.id, Tag: c.tag, Addr: c.addr(), User: c.user(), TLS: c.tlsOf() != nil, TLSSubject: c.tlsSubject()}
		if r.rest != nil {
			s.rawChunks.ServeRawChunks(cl, h, r.frame, r.rest, r.respondRaw)
			return
		}
		if h.APIKey == 1 {
			cl.FetchRoom = c.fetchRoom()
			if sh := s.splice; sh != nil && !cl.TLS {
				sh.ServeRawSplice(cl, h, r.frame, r)
				return
			}
		}
		rh.ServeRaw(cl, h, r.frame, r.respondRaw)
		return
	}
	if r.rest != nil {
		// A frame in pieces refused (--throttle-mode reject) or over the
		// process's memory: answered per partition by a skimmer fed the
		// pieces, never joined into a copy the budget did not charge.
		r.refusePieces(memOver)
		return
	}
	req, err := kafka.DecodeRequestLimited(h, r.frame[h.Size:], kafka.DecodeLimits{
		MaxPartitions: s.lim().MaxPartitionsPerRequest, MaxNonProduceSize: int(s.lim().MaxNonProduceRequestSize)})
	var refused *kafka.RefusedError
	if errors.As(err, &refused) {
		r.refuse(refused)
		return
	}
	if err != nil {
		s.met.malformed.Inc()
		s.warn.Warn("malformed:"+c.addr(), "malformed request body; closing connection", "api", kmsg.NameForKey(h.APIKey),
			"version", h.APIVersion, "client_ip", c.addr(), "error", err.Error())
		if r.claim() {
			r.charge.Release()
			c.complete(r.seq, nil)
		}
		c.closeAsync(causeMalformed)
		return
	}
	r.req = req
	if memOver {
		r.refuseForProcessMemory(req)
		return
	}
	if r.reject {
		if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
			r.respond(nil)
			return
		}
		resp, ok := kafka.RefusalResponse(req, kafka.ErrThrottlingQuotaExceeded)
		if !ok {
			r.refuse(&kafka.RefusedError{Limit: "throttle-mode", Close: true})
			return
		}
		r.respond(resp)
		return
	}
	if f, ok := req.(*kmsg.FetchRequest); ok {
		c.fitFetch(f)
	}
	if ch := s.client; ch != nil {
		ch.ServeKafkaFrom(ClientConn{ID: c.id, Tag: c.tag, Addr: c.addr(), User: c.user(), ClientID: string(h.ClientID),
			TLS: c.tlsOf() != nil, TLSSubject: c.tlsSubject()}, req, r.respond)
	} else if t := c.tlsOf(); t != nil && s.tlsKafka != nil {
		s.tlsKafka.ServeKafkaTLS(req, string(h.ClientID), c.addr(), t.subject, r.respond)
	} else if s.files != nil && c.tlsOf() == nil {
		// Plaintext only: a TLS answer must pass through the record
		// layer, so it never leaves its records in the segment files
		// (also with a handler that has no TLS path of its own).
		s.files.ServeKafkaFiles(req, string(h.ClientID), c.addr(), r.respond)
	} else {
		s.cfg.Kafka.ServeKafka(req, string(h.ClientID), c.addr(), r.respond)
	}
	if h.APIKey == 1 && !r.answered.Load() {
		r.parkedAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	if waitsInGroup(h.APIKey) {
		r.detach()
	}
}

// fitFetch lowers a Fetch's byte limit to what the IP may still hold of
// the budget (and what the budget has left), so the answer is built to
// fit rather than built and refused. At least one batch is still
// returned, as Kafka does.
func (c *conn) fitFetch(f *kmsg.FetchRequest) {
	room := c.fetchRoom()
	if f.MaxBytes <= 0 || int64(f.MaxBytes) > room {
		f.MaxBytes = int32(min(room, 1<<31-1))
	}
}

// fetchRoom returns the most a Fetch answer may be for the memory budget:
// what the connection's IP may still hold and what the budget has left,
// at least 1 (Kafka returns one batch whatever the limit says).
func (c *conn) fetchRoom() int64 {
	return max(c.loop.s.budget.Room(c.share), 1)
}

func (r *kafkaRequest) owner() *conn { return r.c }

// abandon drops the request of a closed connection.
func (r *kafkaRequest) abandon() {
	if r.claim() {
		r.keepFrame() // the handler may still be reading it
		r.charge.Release()
		r.frame = nil
		r.c.complete(r.seq, nil)
	}
}

// refuse answers a request the decode guard refused (counted, logged at
// a bounded rate), or closes the connection when its API cannot say so.
func (r *kafkaRequest) refuse(e *kafka.RefusedError) {
	c, s, h := r.c, r.c.loop.s, &r.hdr
	s.met.counter(`floodgate_requests_refused_total{limit="` + e.Limit + `"}`).Inc()
	s.warn.Warn("limit:"+e.Limit, "request refused", "limit", e.Limit, "configured", e.Max, "actual", e.Value,
		"client_ip", c.addr(), "api", kmsg.NameForKey(h.APIKey))
	if e.Close {
		if r.claim() {
			r.charge.Release()
			c.complete(r.seq, nil)
		}
		c.closeAsync(causeRefusedNoErrorField)
		return
	}
	r.respond(e.Response)
}

// claim reports whether the caller is the one to answer the request.
func (r *kafkaRequest) claim() bool { return r.answered.CompareAndSwap(false, true) }

// releaseFrame returns the frame's charge and drops the frame; it returns
// the decoded request (nil once detached), for an answer in its shape.
func (r *kafkaRequest) releaseFrame() kmsg.Request {
	r.frameMu.Lock()
	defer r.frameMu.Unlock()
	r.charge.Release()
	r.frame = nil
	return r.req
}

// detach lets go of the frame of a request its handler keeps waiting
// (JoinGroup until the rebalance, SyncGroup until the leader's
// assignment): the group coordinator copied what it keeps and bounds it
// with its own limits (--group-max-member-metadata-bytes and the others),
// so the frame's charge and bytes need not wait with it — a client that
// leaves its joins waiting and goes away holds nothing of the budget.
func (r *kafkaRequest) detach() {
	r.frameMu.Lock()
	defer r.frameMu.Unlock()
	if r.answered.Load() {
		return
	}
	r.charge.Release()
	r.frame, r.req, r.rest = nil, nil, nil
	r.pooled, r.restPooled = nil, nil // the waiting handler keeps its request: never reused
}

// waitsInGroup reports the APIs whose handler keeps the request waiting on
// the group coordinator.
func waitsInGroup(key int16) bool { return key == 11 || key == 14 } // JoinGroup, SyncGroup

// done releases the frame and records the latency of the request; it
// returns the decoded request while it is still held.
func (r *kafkaRequest) done() kmsg.Request {
	req := r.releaseFrame()
	end := time.Now()
	if p := r.parkedAt.Load(); p != 0 {
		end = time.Unix(0, p)
	}
	r.c.loop.s.met.observeLatency(r.hdr.APIKey, end.Sub(r.start))
	return req
}

// respond encodes a decoded response (nil: none due) in request order. A
// Fetch answer whose records stay in files is encoded without them (its
// charge is the header bytes only) and its sections queued to be sent.
func (r *kafkaRequest) respond(resp kmsg.Response) {
	if !r.claim() {
		releaseFiles(resp)
		return // answered already (the request panicked after responding)
	}
	// resp may alias the frame (a Produce answer's topic names do): the
	// frame goes back to the pool only once resp is encoded.
	defer r.unref()
	req := r.done()
	c := r.c
	if resp == nil {
		c.complete(r.seq, nil)
		return
	}
	if bt := r.chargeFetchBytes(resp); bt > r.throttle {
		r.throttle = bt
	}
	if r.throttle > 0 {
		kafka.SetThrottle(resp, int32(r.throttle.Milliseconds()))
	}
	buf := c.loop.s.bufs.get()
	var files *fileAnswer
	if ff, ok := resp.(*kafka.FileFetchResponse); ok && c.tlsOf() != nil {
		// Sections cannot be sealed into TLS records (and would crash the
		// loop trying): a handler answered a TLS request from files.
		ff.Release()
		c.loop.s.log.Error("fetch answer from files for a TLS connection; answered as a server error", "client_ip", c.addr())
		resp = kafka.ErrorResponse(req, kafka.ErrUnknownServerError)
		*buf = kafka.AppendResponse(*buf, &r.hdr, resp)
	} else if ok {
		var cuts []int
		var err error
		*buf, cuts, err = kafka.AppendFileFetchResponse(*buf, &r.hdr, ff, nil)
		resp = ff.FetchResponse
		if err != nil {
			// Cannot happen for what the broker builds; answered as a
			// server error rather than with a wrong frame.
			ff.Release()
			c.loop.s.log.Error("fetch answer from files not encodable", "error", err.Error(), "client_ip", c.addr())
			resp = kafka.ErrorResponse(req, kafka.ErrUnknownServerError)
			*buf = kafka.AppendResponse((*buf)[:0], &r.hdr, resp)
		} else {
			files = &fileAnswer{cuts: cuts, secs: ff.Sections}
		}
	} else {
		*buf = kafka.AppendResponse(*buf, &r.hdr, resp)
	}
	if err := c.chargeOut(buf); err != nil && req != nil {
		// The answer does not fit what the IP (or everyone) may hold:
		// answer with a retriable error in the request's shape instead.
		files.release()
		files = nil
		c.loop.s.met.counter(`floodgate_responses_refused_total{reason="memory"}`).Inc()
		c.loop.s.warn.Warn("limit:memory:response", "response refused: "+err.Error(), "limit", limits.RequestMemoryBytes,
			"response_bytes", len(*buf), "ip_holds", c.share.Held(), "client_ip", c.addr(), "api", kmsg.NameForKey(r.hdr.APIKey))
		resp = kafka.ErrorResponse(req, kafka.ErrRequestTimedOut)
		if r.throttle > 0 {
			kafka.SetThrottle(resp, int32(r.throttle.Milliseconds()))
		}
		*buf = kafka.AppendResponse((*buf)[:0], &r.hdr, resp)
		c.forceOut(buf)
	} else if err != nil {
		c.forceOut(buf)
	}
	c.loop.s.met.countErrors(r.hdr.APIKey, resp)
	c.completeFiles(r.seq, buf, files)
}

// releaseFiles lets go of the file sections of an answer not written.
func releaseFiles(resp kmsg.Response) {
	if ff, ok := resp.(*kafka.FileFetchResponse); ok {
		ff.Release()
	}
}

// respondRaw queues a whole response frame from a raw handler, which hands
// it over (it must not touch it afterwards).
func (r *kafkaRequest) respondRaw(resp []byte) {
	if !r.claim() {
		return
	}
	defer r.unref() // the handler is done with the frame (RawKafkaHandler)
	r.done()
	if resp == nil {
		r.c.complete(r.seq, nil)
		return
	}
	r.chargeFetchBytesRaw(resp)
	if r.throttle > 0 {
		if d, err := kafka.DecodeResponse(&r.hdr, resp); err == nil {
			kafka.SetThrottle(d, int32(r.throttle.Milliseconds()))
			buf := r.c.loop.s.bufs.get()
			*buf = kafka.AppendResponse(*buf, &r.hdr, d)
			r.c.forceOut(buf)
			r.c.complete(r.seq, buf)
			return
		}
	}
	// The handler gave up the frame: it is written as it is, no copy. The
	// upstream already built it, so it is accounted as it is.
	r.c.forceOut(&resp)
	r.c.complete(r.seq, &resp)
}

package loop

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// kafkaRequest is one Kafka request from dispatch to response: the pool's
// job, the handler's responder and the budget it holds, in one allocation
// (plus the frame it owns).
type kafkaRequest struct {
	c        *conn
	seq      uint64
	hdr      kafka.Header
	frame    []byte // after the length prefix: header and body
	reserved int64  // budget held for the frame
	throttle time.Duration
	reject   bool
	start    time.Time
	released bool
}

// run serves the request on a pool worker: decode, handle, encode.
func (r *kafkaRequest) run() {
	c, s, h := r.c, r.c.s, &r.hdr
	r.start = time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.met.panics.Inc()
			s.log.Error("request panicked; closing its connection", "api", kmsg.NameForKey(h.APIKey),
				"client_ip", c.ipStr, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			r.release()
			c.complete(r.seq, nil)
			c.closeAsync("panic")
		}
	}()
	if m := s.met.requests[apiIndex(h.APIKey)]; m != nil {
		m.Inc()
	}
	if rh := s.raw; rh != nil && !r.reject {
		rh.ServeRaw(ClientConn{ID: c.id, Tag: c.tag, Addr: c.ipStr}, h, r.frame, r.respondRaw)
		return
	}
	req, err := kafka.DecodeRequestLimited(h, r.frame[h.Size:], kafka.DecodeLimits{
		MaxPartitions: s.cfg.Limits.MaxPartitionsPerRequest, MaxNonProduceSize: int(s.cfg.Limits.MaxNonProduceRequestSize)})
	var refused *kafka.RefusedError
	if errors.As(err, &refused) {
		r.refuse(refused)
		return
	}
	if err != nil {
		s.met.malformed.Inc()
		s.warn.Warn("malformed:"+c.ipStr, "malformed request body; closing connection", "api", kmsg.NameForKey(h.APIKey),
			"version", h.APIVersion, "client_ip", c.ipStr, "error", err.Error())
		r.release()
		c.complete(r.seq, nil)
		c.closeAsync("malformed")
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
	s.cfg.Kafka.ServeKafka(req, string(h.ClientID), c.ipStr, r.respond)
}

func (r *kafkaRequest) owner() *conn { return r.c }

// refuse answers a request the decode guard refused (counted, logged at
// a bounded rate), or closes the connection when its API cannot say so.
func (r *kafkaRequest) refuse(e *kafka.RefusedError) {
	c, s, h := r.c, r.c.s, &r.hdr
	s.met.counter(`floodgate_requests_refused_total{limit="` + e.Limit + `"}`).Inc()
	s.warn.Warn("limit:"+e.Limit, "request refused", "limit", e.Limit, "configured", e.Max, "actual", e.Value,
		"client_ip", c.ipStr, "api", kmsg.NameForKey(h.APIKey))
	if e.Close {
		r.release()
		c.complete(r.seq, nil)
		c.closeAsync("refused_no_error_field")
		return
	}
	r.respond(e.Response)
}

// release returns the frame's budget once.
func (r *kafkaRequest) release() {
	if !r.released {
		r.released = true
		r.c.s.budget.Release(r.reserved)
	}
}

// done records the latency of the request.
func (r *kafkaRequest) done() {
	r.release()
	if m := r.c.s.met.latency[apiIndex(r.hdr.APIKey)]; m != nil {
		m.UpdateDuration(r.start)
	}
}

// respond encodes a decoded response (nil: none due) in request order.
func (r *kafkaRequest) respond(resp kmsg.Response) {
	r.done()
	if resp == nil {
		r.c.complete(r.seq, nil)
		return
	}
	r.c.s.met.countErrors(r.hdr.APIKey, resp)
	if r.throttle > 0 {
		kafka.SetThrottle(resp, int32(r.throttle.Milliseconds()))
	}
	buf := r.c.s.bufs.get()
	*buf = kafka.AppendResponse(*buf, &r.hdr, resp)
	r.c.complete(r.seq, buf)
}

// respondRaw queues a whole response frame from a raw handler, which hands
// it over (it must not touch it afterwards).
func (r *kafkaRequest) respondRaw(resp []byte) {
	r.done()
	if resp == nil {
		r.c.complete(r.seq, nil)
		return
	}
	if r.throttle > 0 {
		if d, err := kafka.DecodeResponse(&r.hdr, resp); err == nil {
			kafka.SetThrottle(d, int32(r.throttle.Milliseconds()))
			buf := r.c.s.bufs.get()
			*buf = kafka.AppendResponse(*buf, &r.hdr, d)
			r.c.complete(r.seq, buf)
			return
		}
	}
	// The handler gave up the frame: it is written as it is, no copy.
	r.c.complete(r.seq, &resp)
}

package loop

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
	"github.com/floodgate/floodgate/limits"
)

// ProcessMemory reports the process memory limit
// (--max-process-memory-bytes, --max-process-memory-percent: resident
// memory against a limit), watched by the HTTP API's gate.
type ProcessMemory interface {
	// MemoryOver reports whether the process is at or over its memory
	// limit, with the limit and the memory last measured.
	MemoryOver() (over bool, limit, used int64)
}

// SetProcessMemory makes the server refuse new Kafka connections and
// answer Kafka requests with a retriable error while p says the process is
// over its memory limit (HTTP requests are refused by the gate itself,
// probes excepted). Call it before Start.
func (s *Server) SetProcessMemory(p ProcessMemory) { s.procMem = p }

// processMemoryOver is MemoryOver of the configured ProcessMemory.
func (s *Server) processMemoryOver() (over bool, limit, used int64) {
	if s.procMem == nil {
		return false, 0, 0
	}
	return s.procMem.MemoryOver()
}

// overProcessMemory reports whether the request is to be refused for the
// process memory limit: a queue of requests is then flushed with answers
// the clients retry after their backoff, rather than served while memory
// grows. ApiVersions is served (it holds nothing).
func (r *kafkaRequest) overProcessMemory() bool {
	if r.hdr.APIKey == apiVersionsKey {
		return false
	}
	over, _, _ := r.c.loop.s.processMemoryOver()
	return over
}

// refuseForProcessMemory answers the decoded request with REQUEST_TIMED_OUT
// (7: retriable in every client, and the memory budget's answer too) in
// its shape.
func (r *kafkaRequest) refuseForProcessMemory(req kmsg.Request) {
	r.countProcessMemoryRefusal()
	if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		r.respond(nil)
		return
	}
	r.respond(kafka.ErrorResponse(req, kafka.ErrRequestTimedOut))
}

// countProcessMemoryRefusal counts and logs (rate-limited) a request
// refused because the process is over --max-process-memory-bytes.
func (r *kafkaRequest) countProcessMemoryRefusal() {
	s, h := r.c.loop.s, &r.hdr
	_, limit, used := s.processMemoryOver()
	s.met.counter(`floodgate_requests_refused_total{reason="process_memory"}`).Inc()
	s.warn.Warn("limit:"+limits.MaxProcessMemoryBytes+":kafka", "request refused: process memory limit reached", "limit", limits.MaxProcessMemoryBytes,
		"configured", limit, "actual", used, "client_ip", r.c.ipStr, "client_id", string(h.ClientID), "api", kmsg.NameForKey(h.APIKey))
}

// refusePieces refuses a Produce frame kept in pieces (only the gateway's
// frames are: ChunkedRawKafkaHandler) that is over the process's memory
// (REQUEST_TIMED_OUT, as refuseForProcessMemory) or over its client's rate
// in --throttle-mode reject (THROTTLING_QUOTA_EXCEEDED): every partition it
// names carries the code, read by a ProduceSkimmer as the pieces pass, so
// the frame is never copied into one buffer. acks=0 gets no answer; a
// frame naming no partition closes the connection, as a refusal does.
func (r *kafkaRequest) refusePieces(memOver bool) {
	s, h := r.c.loop.s, &r.hdr
	code := kafka.ErrThrottlingQuotaExceeded
	if memOver {
		r.countProcessMemoryRefusal()
		code = kafka.ErrRequestTimedOut
	}
	sk := new(kafka.ProduceSkimmer)
	sk.Reset(h.APIVersion, s.lim().MaxPartitionsPerRequest)
	sk.Feed(r.frame[h.Size:])
	for _, b := range r.rest {
		sk.Feed(b)
	}
	if sk.Acks() == 0 {
		r.respond(nil)
		return
	}
	resp, ok := sk.Refusal(code)
	if !ok {
		limit := "throttle-mode"
		if memOver {
			limit = limits.MaxProcessMemoryBytes
		}
		r.refuse(&kafka.RefusedError{Limit: limit, Close: true})
		return
	}
	r.respond(resp)
}

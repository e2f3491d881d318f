package loop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/limits"
)

// HTTPRequest is one complete HTTP request handed to the HTTPHandler.
type HTTPRequest struct {
	// Head is the parsed request head; it belongs to this request alone.
	Head *httpcodec.Request
	// Body is the de-chunked body (still compressed if Content-Encoding says so).
	Body []byte
	// RemoteIP is the client's address: the connection's peer, the client
	// its PROXY header named, or, from a trusted proxy, the client
	// X-Forwarded-For names (xff.go).
	RemoteIP netip.Addr
	// Received is when the head was complete.
	Received time.Time
	// Loop is the index of the event loop that read the request, in
	// [0, Server.EventLoops()): per-worker limits count by it.
	Loop int
	// Share is the client IP's share of the memory budget: what the
	// handler allocates for the request is charged to it too.
	Share *limits.Share
	// User is the user the handler authenticated (HTTP Basic), set by
	// the handler itself; "" for anonymous.
	User string
	// TLS says the request came over the HTTPS listener (the links an
	// answer gives keep the scheme).
	TLS bool
}

// HTTPResponse is what a handler answers.
type HTTPResponse struct {
	// Status is the HTTP status code.
	Status int
	// ContentType is the Content-Type header ("" for none).
	ContentType string
	// Header lists extra header fields (name, value).
	Header [][2]string
	// Body is the response body.
	Body []byte
	// Close asks for the connection to be closed after this response.
	Close bool
	// NoBody sends the headers (with the body's Content-Length) but not
	// the body: the answer to HEAD.
	NoBody bool

	// wire is the response encoded by PrepareHTTPResponse (keep-alive,
	// with the body), head the length of its head; nil: not prepared.
	wire []byte
	head int
}

// PrepareHTTPResponse encodes resp once and returns it: a response shared
// by every request (a probe's answer) is then copied as bytes instead of
// formatted per request. resp must not change afterwards, and a copy of it
// carries the same encoding: build a new response rather than change a
// copy.
func PrepareHTTPResponse(resp *HTTPResponse) *HTTPResponse {
	resp.wire = nil
	wire := appendHTTPResponse(nil, resp, false, false)
	resp.wire, resp.head = wire, len(wire)-len(resp.Body)
	return resp
}

// HTTPHandler serves HTTP requests on a pool worker; respond must be
// called exactly once, from any goroutine.
type HTTPHandler interface {
	ServeHTTP(r *HTTPRequest, respond func(*HTTPResponse))
}

// InlineHTTPHandler is an HTTPHandler whose cheap routes can be answered on
// the event loop itself, without the hop to a pool worker and back (a job,
// a channel hand-off and a wake-up of the loop per request): routes that
// never block, wait or do I/O, and whose CPU is small and bounded (probes,
// refusals). The loop asks it first when none of the connection's
// earlier requests is still unanswered, so answers stay in request order.
type InlineHTTPHandler interface {
	HTTPHandler
	// ServeInline answers r at once and reports true, or reports false
	// and r goes to ServeHTTP on the pool. r and what it points to are
	// valid only during the call; resp is only read, and may be shared
	// between calls (a preformatted answer).
	ServeInline(r *HTTPRequest) (resp *HTTPResponse, ok bool)
}

// HTTPLimits are the HTTP limits enforced by the event loop itself, before
// a request reaches the worker pool.
type HTTPLimits struct {
	// Codec are the parser's header and body limits. Codec.MaxBodyBytes
	// must be the largest body any route accepts; BodyLimit narrows it.
	Codec httpcodec.Limits
	// HeaderTimeout answers 408 and closes a connection whose request head
	// is not complete in time (slowloris).
	HeaderTimeout time.Duration
	// MaxBodyBuffer bounds the body buffer allocated up front for one
	// request (0: 64 KiB); it grows only as body bytes arrive.
	MaxBodyBuffer int64
	// Linger bounds the lingering close after a closing answer
	// (--http-linger-timeout; 0: 2 s).
	Linger time.Duration
	// BodyLimit returns the body limit of a request path (a --route's
	// max-body-size), applied to Content-Length before any body byte is
	// read; nil or a non-positive answer means Codec.MaxBodyBytes. It is
	// called on the event loop and must not block.
	BodyLimit func(path []byte) int64
}

type httpPhase uint8

const (
	phaseHead httpPhase = iota
	phaseBody
	phaseClosing
)

// httpConnState is the HTTP parser state of one connection.
type httpConnState struct {
	phase httpPhase
	// partial is a head that did not arrive in one read, moved off the
	// loop's parser (loopState.head) to continue here; nil until the
	// connection first sends one, kept for its next ones.
	partial *httpcodec.HeadParser
	// req is the request being read: the loop's (loopState.headReq) while
	// one read is handled, the connection's own when it outlives the read
	// (a partial head, a body still arriving); a pooled request takes it.
	req       *httpcodec.Request
	body      httpcodec.BodyDecoder
	bodyBuf   []byte
	headStart time.Time
	deadline  int64         // head deadline (unix nanos) while in phaseHead
	charge    limits.Charge // the body buffer's bytes
	loopIdx   int
	lim       httpcodec.Limits // codec limits of the current body
	// watched: the loop's head watch holds an entry for this connection
	// (one at most; it is renewed when it expires on a later deadline).
	watched bool
	// resume: partial holds the head in progress (it did not arrive in
	// one read).
	resume bool
}

// onHTTP is the HTTP connection's traffic handler: parse heads and bodies
// as bytes arrive, refuse at the first crossed limit, dispatch whole
// requests to the pool.
func (c *conn) onHTTP(gc gnet.Conn, now time.Time) gnet.Action {
	s := c.loop.s
	h := c.http
	if h == nil {
		h = &httpConnState{loopIdx: s.loopIndex(c.loop)}
		c.http = h
		c.startHead(now)
	}
	in := input{c: c, gc: gc}
	for {
		switch h.phase {
		case phaseClosing:
			in.discard(in.avail())
			return gnet.None
		case phaseHead:
			if reason := c.httpSaturated(); reason != "" {
				return c.park(gc, reason)
			}
			avail := in.avail()
			if avail == 0 {
				return gnet.None
			}
			buf := in.peek(avail)
			p := h.partial
			if !h.resume {
				// A new head: parsed by the loop's parser into the loop's
				// request (in cache), not the connection's.
				p = &c.loop.head
				p.Reset(&s.httpLim().Codec, &c.loop.headReq)
			}
			n, done, err := p.Feed(buf)
			if err != nil {
				c.refuseHTTP(err)
				continue
			}
			if !done {
				if !h.resume {
					c.keepPartialHead()
				}
				return gnet.None
			}
			if !h.resume {
				h.req = &c.loop.headReq
			}
			h.resume = false
			in.discard(n)
			s.met.bytesIn.Add(n)
			if !c.beginBody() {
				continue
			}
			if h.body.Done() && h.bodyBuf == nil {
				// No body (a GET, a probe): what phaseBody would do with
				// nothing to read is only the dispatch.
				c.dispatchHTTP(now)
			}
		case phaseBody:
			if h.req == &c.loop.headReq {
				// The body may arrive over several reads: the request
				// becomes the connection's.
				h.req = c.ownRequest(h.req)
			}
			avail := in.avail()
			if avail == 0 && !h.body.Done() {
				return gnet.None
			}
			b := in.peek(avail)
			consumed, out, done, err := h.body.Feed(b, c.growBody(h.bodyBuf, len(b)))
			h.bodyBuf = out
			in.discard(consumed)
			s.met.bytesIn.Add(consumed)
			c.xfer.recv += int64(consumed)
			if err != nil {
				c.refuseHTTP(err)
				continue
			}
			// The body is charged as it grows, never by its announced
			// length: a client that announces 10 MiB and sends one byte
			// holds one buffer step.
			if err := h.charge.Set(int64(cap(h.bodyBuf))); err != nil {
				c.refuseHTTP(err)
				continue
			}
			if !done {
				return gnet.None
			}
			c.xfer.end()
			c.dispatchHTTP(now)
		}
	}
}

// startHead begins waiting for a request head. The Request is reused
// unless the last one was handed to the pool with its request.
func (c *conn) startHead(now time.Time) {
	h := c.http
	h.phase = phaseHead
	h.resume = false
	c.dropLoopRequest()
	h.headStart = now
	h.bodyBuf = nil
	if t := c.loop.s.httpLim().HeaderTimeout; t > 0 {
		h.deadline = now.Add(t).UnixNano()
		if !h.watched {
			h.watched = true
			c.loop.watchHead(c, h.deadline)
		}
	}
}

// keepPartialHead moves the head in progress from the loop's parser to
// the connection's, which the next reads resume (the loop's parses other
// connections' heads meanwhile). Only heads split over reads pay for
// memory of their own.
func (c *conn) keepPartialHead() {
	h := c.http
	if h.partial == nil {
		h.partial = new(httpcodec.HeadParser)
	}
	if h.req == nil || h.req == &c.loop.headReq {
		h.req = new(httpcodec.Request)
	}
	c.loop.head.MoveTo(h.partial, h.req)
	h.resume = true
}

// ownRequest returns a copy of the loop's request (loopState.headReq) in
// memory of the connection's own, for a request that outlives this read.
func (c *conn) ownRequest(req *httpcodec.Request) *httpcodec.Request {
	own := new(httpcodec.Request)
	req.CopyTo(own)
	return own
}

// dropLoopRequest forgets the loop's request once this connection is done
// with it (answered, or refused and closing): the next read of any of the
// loop's connections parses into it.
func (c *conn) dropLoopRequest() {
	if h := c.http; h != nil && h.req == &c.loop.headReq {
		h.req = nil
	}
}

// httpSaturated names the limit that says to stop reading an HTTP
// connection, or "". A full worker queue is not one: the request is
// answered 503 at dispatch instead.
func (c *conn) httpSaturated() string {
	switch {
	case c.pending()+len(c.out) >= c.loop.s.lim().MaxInflight:
		return "max_inflight_requests"
	case c.loop.s.budget.NearLimit():
		return "memory"
	}
	return ""
}

// beginBody prepares the body of a complete head; false when refused.
func (c *conn) beginBody() bool {
	h := c.http
	hl := c.loop.s.httpLim()
	h.deadline = 0
	h.phase = phaseBody
	h.lim = hl.Codec
	if hl.BodyLimit != nil {
		if l := hl.BodyLimit(h.req.Path); l > 0 {
			h.lim.MaxBodyBytes = l
		}
	}
	// Content-Length over the route's limit: 413 before any body byte.
	if h.req.ContentLength > 0 && h.lim.MaxBodyBytes > 0 && h.req.ContentLength > h.lim.MaxBodyBytes {
		c.refuseHTTP(&httpcodec.LimitError{Limit: httpcodec.LimitBodyBytes, Configured: h.lim.MaxBodyBytes,
			Actual: h.req.ContentLength, Status: httpcodec.StatusRequestEntityTooLarge, Reason: httpcodec.ReasonBodyTooLarge})
		return false
	}
	h.body.Reset(h.req, &h.lim)
	h.charge = limits.NewCharge(c.loop.s.budget, c.share)
	if !h.body.Done() {
		c.beginTransfer(time.Now().UnixNano())
	}
	if h.req.ContentLength > 0 {
		first := min(h.req.ContentLength, bodyStep)
		if hl.MaxBodyBuffer > 0 {
			first = min(first, hl.MaxBodyBuffer)
		}
		if err := h.charge.Grow(first); err != nil {
			c.refuseHTTP(err)
			return false
		}
		h.bodyBuf = make([]byte, 0, first)
	}
	if h.req.ExpectContinue && !h.body.Done() {
		seq := c.reserveSeq()
		buf := c.loop.s.bufs.get()
		*buf = append(*buf, "HTTP/1.1 100 Continue\r\n\r\n"...)
		c.complete(seq, buf)
	}
	return true
}

// bodyStep is the first body buffer of a request with a Content-Length,
// and how much more room is made at a time: the buffer (and its charge)
// grows with the bytes that arrive, never ahead of them by more than this
// or a doubling.
const bodyStep = 64 << 10

// growBody returns buf with room for n more bytes, grown by doubling (at
// least bodyStep), capped at the body buffer limit when the length is
// known, so the body decoder's appends do not reallocate unaccounted.
func (c *conn) growBody(buf []byte, n int) []byte {
	req := c.http.req
	cl := req.ContentLength
	switch {
	case cl >= 0: // bytes past the body belong to the next request
		n = int(min(int64(n), max(cl-int64(len(buf)), 0)))
	case !req.Chunked: // no body at all: what follows is the next request
		n = 0
	}
	if cap(buf)-len(buf) >= n {
		return buf
	}
	want := max(2*cap(buf), len(buf)+n, bodyStep)
	if cl > 0 {
		want = int(min(int64(want), cl))
	}
	grown := make([]byte, len(buf), want)
	copy(grown, buf)
	return grown
}

// dispatchHTTP answers a complete request on the loop when its handler
// can (ServeInline), else hands it to the pool.
func (c *conn) dispatchHTTP(now time.Time) {
	s := c.loop.s
	h := c.http
	keepAlive := h.req.KeepAlive
	if c.serveInline(keepAlive) {
		if keepAlive {
			c.startHead(now)
		} else {
			h.phase = phaseClosing
			c.dropLoopRequest()
		}
		return
	}
	if h.req == &c.loop.headReq {
		h.req = c.ownRequest(h.req) // the worker answers after this read
	}
	r := &HTTPRequest{Head: h.req, Body: h.bodyBuf, RemoteIP: c.requestIP(h.req), Received: h.headStart, Loop: h.loopIdx, Share: c.share,
		TLS: c.tlsOf() != nil}
	seq := c.reserveSeq()
	j := &httpJob{c: c, seq: seq, r: r, keepAlive: keepAlive}
	h.charge.Move(&j.charge, h.charge.Held())
	h.req = nil // the job owns it now
	if keepAlive {
		c.startHead(now)
	} else {
		h.phase = phaseClosing
	}
	if !c.submit(j) {
		// The worker queue (shared with Kafka) is full: answer 503 now
		// rather than hold the request.
		c.idle()
		j.charge.Release()
		s.cfg.Metrics.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="queue"}`).Inc() // deprecated
		s.cfg.Metrics.GetOrCreateCounter(`floodgate_http_requests_refused_total{reason="queue"}`).Inc()
		s.warn.Warn("limit:max-queued-requests", "http request refused: worker queue full", "limit", "max-queued-requests",
			"configured", s.lim().MaxQueued, "actual", s.pool.depth(), "client_ip", c.addr())
		h.deadline = 0
		h.phase = phaseClosing
		s.cfg.Metrics.GetOrCreateCounter(refusedSeries(503)).Inc()
		c.completeHTTP(seq, &HTTPResponse{Status: 503, ContentType: "application/json", Close: true,
			Header: [][2]string{{"Retry-After", "1"}},
			Body:   LimitErrorBody("max-queued-requests", int64(s.lim().MaxQueued), int64(s.pool.depth()), "worker queue full")})
	}
}

// serveInline answers the request just read on the event loop, if the
// handler can (see InlineHTTPHandler) and every earlier request of the
// connection is answered: an inline answer never overtakes one still in
// the pool. The answer joins the output queue directly (everything before
// it is there already), charged like any other; true when answered.
func (c *conn) serveInline(keepAlive bool) bool {
	ih := c.loop.s.inline
	if ih == nil || !c.answered() {
		return false
	}
	h := c.http
	// The loop's request, not the connection's: ServeInline runs here and
	// now, so one per loop serves every connection (and keeps ~120 B per
	// connection out of the memory each request touches).
	r := &c.loop.inline
	*r = HTTPRequest{Head: h.req, Body: h.bodyBuf, RemoteIP: c.requestIP(h.req), Received: h.headStart, Loop: h.loopIdx, Share: c.share,
		TLS: c.tlsOf() != nil}
	// Counted in flight while it is served, as a request in the pool is
	// (the API's in-flight limit counts this request already).
	c.loop.s.inflight.Add(1)
	resp, ok := ih.ServeInline(r)
	c.loop.s.inflight.Add(-1)
	*r = HTTPRequest{}
	if !ok {
		return false
	}
	h.charge.Release()
	h.bodyBuf = nil
	closeAfter := resp.Close || !keepAlive
	buf := c.encodeHTTP(resp, closeAfter, h.req.Method == "HEAD")
	if closeAfter {
		// The close needs a sequence number: the connection closes once
		// the answer with that number is written.
		seq := c.reserveSeq()
		c.closeAfterWrite(seq)
		c.store(seq, buf)
		return true
	}
	start := len(c.out)
	c.out = append(c.out, *buf)
	c.outBufs = append(c.outBufs, buf)
	c.sealFrom(start)
	return true
}

// refusedSeries names the floodgate_http_requests_total series of a
// request the event loop refused before routing it; constant strings, so
// no name is built per request.
func refusedSeries(status int) string {
	switch status {
	case 400:
		return `floodgate_http_requests_total{route="refused",code="400"}`
	case 408:
		return `floodgate_http_requests_total{route="refused",code="408"}`
	case 413:
		return `floodgate_http_requests_total{route="refused",code="413"}`
	case 415:
		return `floodgate_http_requests_total{route="refused",code="415"}`
	case 431:
		return `floodgate_http_requests_total{route="refused",code="431"}`
	case 501:
		return `floodgate_http_requests_total{route="refused",code="501"}`
	case 503:
		return `floodgate_http_requests_total{route="refused",code="503"}`
	case 505:
		return `floodgate_http_requests_total{route="refused",code="505"}`
	}
	return `floodgate_http_requests_total{route="refused",code="other"}`
}

// InFlight returns the requests (Kafka and HTTP) read and not yet answered.
func (s *Server) InFlight() int64 { return s.inflight.Load() }

// EventLoops returns the number of event loops.
func (s *Server) EventLoops() int { return s.cfg.EventLoops }

// loopIndex returns l's position among the event loops (0 if unknown).
func (s *Server) loopIndex(l *loopState) int {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	for i, x := range s.loops {
		if x == l {
			return i
		}
	}
	return 0
}

// httpJob is one HTTP request queued for the pool.
type httpJob struct {
	c         *conn
	seq       uint64
	r         *HTTPRequest
	charge    limits.Charge // the body's bytes, held until the answer
	keepAlive bool
	answered  atomic.Bool // the answer happens once: handler or panic recovery
}

func (j *httpJob) run() { j.c.serveHTTP(j) }

// abandon drops the request of a closed connection.
func (j *httpJob) abandon() {
	if j.answered.CompareAndSwap(false, true) {
		j.charge.Release()
		j.c.complete(j.seq, nil)
	}
}

func (j *httpJob) owner() *conn { return j.c }

// serveHTTP runs on a pool worker.
func (c *conn) serveHTTP(j *httpJob) {
	s := c.loop.s
	r := j.r
	defer func() {
		if p := recover(); p != nil {
			s.met.panics.Inc()
			s.log.Error("http handler panicked", "path", string(r.Head.Path), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if j.answered.CompareAndSwap(false, true) {
				j.charge.Release()
				c.completeHTTP(j.seq, &HTTPResponse{Status: 500, ContentType: "application/json",
					Body: []byte(`{"error":"internal error"}` + "\n"), Close: true})
			}
		}
	}()
	if s.cfg.HTTP == nil {
		j.answered.Store(true)
		j.charge.Release()
		c.completeHTTP(j.seq, &HTTPResponse{Status: 404, Close: !j.keepAlive})
		return
	}
	s.cfg.HTTP.ServeHTTP(r, func(resp *HTTPResponse) {
		if !j.answered.CompareAndSwap(false, true) {
			return
		}
		j.charge.Release()
		// resp is not changed: a handler may answer with a shared one.
		c.completeHTTPAs(j.seq, resp, resp.Close || !j.keepAlive, resp.NoBody || r.Head.Method == "HEAD")
	})
}

// completeHTTP encodes resp as request seq's answer, charged to the IP's
// share of the budget; an answer that does not fit is replaced by a 503
// naming the limit.
func (c *conn) completeHTTP(seq uint64, resp *HTTPResponse) {
	c.completeHTTPAs(seq, resp, resp.Close, resp.NoBody)
}

// completeHTTPAs is completeHTTP with the connection and body choices
// made by the loop (resp is not changed).
func (c *conn) completeHTTPAs(seq uint64, resp *HTTPResponse, closeAfter, noBody bool) {
	buf := c.encodeHTTP(resp, closeAfter, noBody)
	if closeAfter {
		// Before complete: once the response is queued the loop may write
		// it at once, and must already know to close afterwards.
		c.closeAfterWrite(seq)
	}
	c.complete(seq, buf)
}

// encodeHTTP encodes resp (with Connection: close when closeAfter, without
// its body when noBody) into a pooled buffer charged to the IP's share of
// the budget; an answer that does not fit is replaced by a 503 naming the
// limit.
func (c *conn) encodeHTTP(resp *HTTPResponse, closeAfter, noBody bool) *[]byte {
	buf := c.loop.s.bufs.get()
	*buf = appendHTTPResponse(*buf, resp, closeAfter, noBody)
	if err := c.chargeOut(buf); err != nil {
		limit, configured, actual := c.memoryLimitOf(err)
		c.loop.s.met.counter(`floodgate_responses_refused_total{reason="memory"}`).Inc()
		c.loop.s.warn.Warn("limit:memory:http-response", "http response refused: "+err.Error(), "limit", limit,
			"configured", configured, "actual", actual, "response_bytes", len(*buf), "client_ip", c.addr())
		refusal := &HTTPResponse{Status: 503, ContentType: "application/json",
			Header: [][2]string{{"Retry-After", "1"}},
			Body:   LimitErrorBody(limit, configured, actual, "response does not fit the memory budget: "+err.Error())}
		*buf = appendHTTPResponse((*buf)[:0], refusal, closeAfter, false)
		c.forceOut(buf)
	}
	return buf
}

// closeAfterWrite closes the connection once response seq is written.
func (c *conn) closeAfterWrite(seq uint64) {
	c.mu.Lock()
	if c.closeAfter == 0 || seq+1 < c.closeAfter {
		c.closeAfter = seq + 1
	}
	c.mu.Unlock()
}

// refuseHTTP answers a request refused by the codec (or the budget) and
// closes the connection after the answer: the rest of the stream cannot be
// trusted to be aligned on a request.
func (c *conn) refuseHTTP(err error) {
	s := c.loop.s
	h := c.http
	status, limit, configured, actual, reason := 400, "malformed", int64(0), int64(0), err.Error()
	var le *httpcodec.LimitError
	switch {
	case errors.As(err, &le):
		status, limit, configured, actual, reason = le.Status, le.Limit, le.Configured, le.Actual, le.Reason
		if limit == "" {
			limit = "malformed"
		}
	case errors.Is(err, limits.ErrBudgetExhausted), errors.Is(err, limits.ErrShareExhausted):
		status = 503
		limit, configured, actual = c.memoryLimitOf(err)
	}
	s.met.httpRefused(status, limit)
	s.cfg.Metrics.GetOrCreateCounter(refusedSeries(status)).Inc()
	s.warn.Warn("http:"+limit, "http request refused", "limit", limit, "status", status,
		"configured", configured, "actual", actual, "client_ip", c.addr(), "reason", reason)
	h.charge.Release()
	h.bodyBuf = nil
	c.xfer.end()
	h.deadline = 0
	h.phase = phaseClosing
	h.resume = false
	c.dropLoopRequest()
	resp := &HTTPResponse{Status: status, ContentType: "application/json", Close: true,
		Body: LimitErrorBody(limit, configured, actual, reason)}
	if status == 503 {
		resp.Header = append(resp.Header, [2]string{"Retry-After", "1"})
	}
	seq := c.reserveSeq()
	c.completeHTTP(seq, resp)
}

// memoryLimitOf names the memory limit err (from a charge) tripped, with
// its configured and actual values.
func (c *conn) memoryLimitOf(err error) (limit string, configured, actual int64) {
	b := c.loop.s.budget
	if errors.Is(err, limits.ErrShareExhausted) {
		return limits.RequestMemoryPerIPPercent, b.PerClient(), c.share.Held()
	}
	return limits.RequestMemoryBytes, b.Limit(), b.Used()
}

// LimitErrorBody is the JSON body of every refusal: which limit, its
// configured value and, where known, the actual value.
func LimitErrorBody(limit string, configured, actual int64, reason string) []byte {
	v := struct {
		Error      string `json:"error"`
		Limit      string `json:"limit"`
		Configured int64  `json:"configured,omitempty"`
		Actual     int64  `json:"actual,omitempty"`
	}{reason, limit, configured, actual}
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

// AppendHTTPResponse appends resp as an HTTP/1.1 response.
func AppendHTTPResponse(dst []byte, resp *HTTPResponse) []byte {
	return appendHTTPResponse(dst, resp, resp.Close, resp.NoBody)
}

// appendHTTPResponse appends resp with the connection and body choices
// made by the loop, leaving resp itself untouched (it may be shared).
func appendHTTPResponse(dst []byte, resp *HTTPResponse, closeAfter, noBody bool) []byte {
	if resp.wire != nil && !closeAfter {
		if noBody {
			return append(dst, resp.wire[:resp.head]...)
		}
		return append(dst, resp.wire...)
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(resp.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(resp.Status)...)
	dst = append(dst, "\r\nServer: floodgate\r\n"...)
	if resp.ContentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, resp.ContentType...)
		dst = append(dst, "\r\n"...)
	}
	for _, h := range resp.Header {
		dst = append(dst, h[0]...)
		dst = append(dst, ": "...)
		dst = append(dst, h[1]...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(resp.Body)), 10)
	if closeAfter {
		dst = append(dst, "\r\nConnection: close"...)
	}
	dst = append(dst, "\r\n\r\n"...)
	if noBody {
		return dst
	}
	return append(dst, resp.Body...)
}

// HTTPLimitsFrom builds the loop's part of the HTTP limits from their
// configuration. c must not change afterwards.
func HTTPLimitsFrom(c *limits.HTTPConfig) HTTPLimits {
	hl := HTTPLimits{
		Codec: httpcodec.Limits{
			MaxHeaderBytes:      c.MaxHeaderBytes,
			MaxHeaderCount:      c.MaxHeaderCount,
			MaxHeaderNameBytes:  c.MaxHeaderNameBytes,
			MaxHeaderValueBytes: c.MaxHeaderValueBytes,
			MaxBodyBytes:        c.MaxRouteBodyBytes(),
		},
		HeaderTimeout: c.HeaderReadTimeout,
		MaxBodyBuffer: c.MaxBodyBufferBytes,
		Linger:        c.LingerTimeout,
	}
	if hl.Codec.MaxBodyBytes == 0 {
		hl.Codec.MaxBodyBytes = -1 // 0 means "default" to the codec; here it means off
	}
	if len(c.Routes) > 0 {
		hl.BodyLimit = c.BodyLimit
	}
	return hl
}

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

	httpcodec "github.com/floodgate/floodgate/codec/http"
	"github.com/floodgate/floodgate/limits"
)

// HTTPRequest is one complete HTTP request handed to the HTTPHandler.
type HTTPRequest struct {
	// Head is the parsed request head; it belongs to this request alone.
	Head *httpcodec.Request
	// Body is the de-chunked body (still compressed if Content-Encoding says so).
	Body []byte
	// RemoteIP is the client's address.
	RemoteIP netip.Addr
	// Received is when the head was complete.
	Received time.Time
	// Loop is the index of the event loop that read the request, in
	// [0, Server.EventLoops()): per-worker limits count by it.
	Loop int
	// Share is the client IP's share of the memory budget: what the
	// handler allocates for the request is charged to it too.
	Share *limits.Share
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
}

// HTTPHandler serves HTTP requests on a pool worker; respond must be
// called exactly once, from any goroutine.
type HTTPHandler interface {
	ServeHTTP(r *HTTPRequest, respond func(*HTTPResponse))
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
	phase     httpPhase
	parser    httpcodec.HeadParser
	req       *httpcodec.Request
	body      httpcodec.BodyDecoder
	bodyBuf   []byte
	headStart time.Time
	deadline  int64         // head deadline (unix nanos) while in phaseHead
	charge    limits.Charge // the body buffer's bytes
	loopIdx   int
	lim       httpcodec.Limits // codec limits of the current body
}

// onHTTP is the HTTP connection's traffic handler: parse heads and bodies
// as bytes arrive, refuse at the first crossed limit, dispatch whole
// requests to the pool.
func (c *conn) onHTTP(gc gnet.Conn) gnet.Action {
	s := c.s
	h := c.http
	if h == nil {
		h = &httpConnState{loopIdx: s.loopIndex(c.loop)}
		c.http = h
		c.startHead(time.Now())
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
			n, done, err := h.parser.Feed(buf)
			if err != nil {
				c.refuseHTTP(err)
				continue
			}
			if !done {
				return gnet.None
			}
			in.discard(n)
			s.met.bytesIn.Add(n)
			if !c.beginBody() {
				continue
			}
		case phaseBody:
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
			c.dispatchHTTP()
		}
	}
}

// startHead begins waiting for a request head.
func (c *conn) startHead(now time.Time) {
	h := c.http
	h.phase = phaseHead
	h.req = new(httpcodec.Request)
	h.parser.Reset(&c.s.cfg.HTTPLimits.Codec, h.req)
	h.headStart = now
	h.bodyBuf = nil
	if t := c.s.cfg.HTTPLimits.HeaderTimeout; t > 0 {
		h.deadline = now.Add(t).UnixNano()
		c.loop.watchHead(c, h.deadline)
	}
}

// httpSaturated names the limit that says to stop reading an HTTP
// connection, or "". A full worker queue is not one: the request is
// answered 503 at dispatch instead.
func (c *conn) httpSaturated() string {
	switch {
	case c.pending() >= c.s.cfg.Limits.MaxInflight:
		return "max_inflight_requests"
	case c.s.budget.NearLimit():
		return "memory"
	}
	return ""
}

// beginBody prepares the body of a complete head; false when refused.
func (c *conn) beginBody() bool {
	h := c.http
	hl := &c.s.cfg.HTTPLimits
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
	h.charge = limits.NewCharge(c.s.budget, c.share)
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
		buf := c.s.bufs.get()
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
	cl := c.http.req.ContentLength
	if cl > 0 { // bytes past the body belong to the next request
		n = int(min(int64(n), max(cl-int64(len(buf)), 0)))
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

// dispatchHTTP hands a complete request to the pool.
func (c *conn) dispatchHTTP() {
	s := c.s
	h := c.http
	r := &HTTPRequest{Head: h.req, Body: h.bodyBuf, RemoteIP: c.ip, Received: h.headStart, Loop: h.loopIdx, Share: c.share}
	keepAlive := h.req.KeepAlive
	seq := c.reserveSeq()
	j := &httpJob{c: c, seq: seq, r: r, keepAlive: keepAlive}
	h.charge.Move(&j.charge, h.charge.Held())
	if keepAlive {
		c.startHead(time.Now())
	} else {
		h.phase = phaseClosing
	}
	if !c.submit(j) {
		// The worker queue (shared with Kafka) is full: answer 503 now
		// rather than hold the request.
		c.idle()
		j.charge.Release()
		s.cfg.Metrics.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="queue"}`).Inc()
		s.warn.Warn("limit:max-queued-requests", "http request refused: worker queue full", "limit", "max-queued-requests",
			"configured", s.cfg.Limits.MaxQueued, "actual", s.pool.depth(), "client_ip", c.ipStr)
		h.deadline = 0
		h.phase = phaseClosing
		s.cfg.Metrics.GetOrCreateCounter(refusedSeries(503)).Inc()
		c.completeHTTP(seq, &HTTPResponse{Status: 503, ContentType: "application/json", Close: true,
			Header: [][2]string{{"Retry-After", "1"}},
			Body:   LimitErrorBody("max-queued-requests", int64(s.cfg.Limits.MaxQueued), int64(s.pool.depth()), "worker queue full")})
	}
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
	s := c.s
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
		if !j.keepAlive {
			resp.Close = true
		}
		if r.Head.Method == "HEAD" {
			resp.NoBody = true
		}
		c.completeHTTP(j.seq, resp)
	})
}

// completeHTTP encodes resp as request seq's answer, charged to the IP's
// share of the budget; an answer that does not fit is replaced by a 503
// naming the limit.
func (c *conn) completeHTTP(seq uint64, resp *HTTPResponse) {
	buf := c.s.bufs.get()
	*buf = AppendHTTPResponse(*buf, resp)
	if err := c.chargeOut(buf); err != nil {
		limit, configured, actual := c.memoryLimitOf(err)
		c.s.met.counter(`floodgate_responses_refused_total{reason="memory"}`).Inc()
		c.s.warn.Warn("limit:memory:http-response", "http response refused: "+err.Error(), "limit", limit,
			"configured", configured, "actual", actual, "response_bytes", len(*buf), "client_ip", c.ipStr)
		resp = &HTTPResponse{Status: 503, ContentType: "application/json", Close: resp.Close,
			Header: [][2]string{{"Retry-After", "1"}},
			Body:   LimitErrorBody(limit, configured, actual, "response does not fit the memory budget: "+err.Error())}
		*buf = AppendHTTPResponse((*buf)[:0], resp)
		c.forceOut(buf)
	}
	if resp.Close {
		// Before complete: once the response is queued the loop may write
		// it at once, and must already know to close afterwards.
		c.closeAfterWrite(seq)
	}
	c.complete(seq, buf)
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
	s := c.s
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
		"configured", configured, "actual", actual, "client_ip", c.ipStr, "reason", reason)
	h.charge.Release()
	h.bodyBuf = nil
	c.xfer.end()
	h.deadline = 0
	h.phase = phaseClosing
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
	b := c.s.budget
	if errors.Is(err, limits.ErrShareExhausted) {
		return "memory-limit-per-ip-percent", b.PerClient(), c.share.Held()
	}
	return "memory-limit-bytes", b.Limit(), b.Used()
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
	if resp.Close {
		dst = append(dst, "\r\nConnection: close"...)
	}
	dst = append(dst, "\r\n\r\n"...)
	if resp.NoBody {
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
	}
	if hl.Codec.MaxBodyBytes == 0 {
		hl.Codec.MaxBodyBytes = -1 // 0 means "default" to the codec; here it means off
	}
	if len(c.Routes) > 0 {
		hl.BodyLimit = c.BodyLimit
	}
	return hl
}

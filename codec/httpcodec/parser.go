package httpcodec

import "bytes"

// headState is the position of the HeadParser within the request head.
type headState uint8

const (
	stMethod    headState = iota // in the method token
	stTarget                     // in the request-target
	stVersion                    // in "HTTP/x.y"
	stReqLineLF                  // CR seen after the version
	stLineStart                  // at the first byte of a header line
	stName                       // in a header name
	stValueLead                  // whitespace after the colon
	stValue                      // in a header value
	stValueLF                    // CR seen after a value
	stEndLF                      // CR seen on the empty line
	stDone                       // head complete
)

// HeadParser is a resumable request-head parser. It keeps its place between
// calls, so feeding a head in k pieces costs O(len(head)) in total, not
// O(k·len(head)).
//
// Usage: Reset it with the limits and the Request to fill, then call Feed
// with everything buffered so far for this head; each call's buf must start
// with the bytes passed to the previous call (the event loop may move or
// grow its buffer in between, the contents must stay). Bytes past the end of
// the head (body, pipelined requests) may be present and are ignored.
//
// Every limit and every syntax rule is checked on the bytes seen so far, so
// Feed fails as soon as the input proves the request must be refused; after
// an error Feed keeps returning the same error until Reset.
//
// The parser is deliberately stricter than net/http. It refuses (400 unless
// noted): bare LF or bare CR as line terminators; obs-fold and whitespace
// before the first header; whitespace between a header name and its colon;
// an empty line before the request line; anything but exactly one SP between
// request-line parts; request targets with bytes outside RFC 3986
// (including '#', '"', '<', '>', '\', '^', '`', '{', '|', '}', non-ASCII) or
// invalid percent-encoding, also in the query; asterisk-form except for
// OPTIONS, authority-form except for CONNECT and CONNECT with anything else;
// absolute-form other than http/https, with userinfo, IP literal or empty
// host; HTTP versions other than 1.0 and 1.1 (505); HTTP/1.1 without Host;
// a Host header with bytes outside reg-name/IP-literal/port; both
// Content-Length and Transfer-Encoding; Content-Length values that differ
// byte-wise; more than one Transfer-Encoding field; Transfer-Encoding in
// HTTP/1.0; a final transfer coding other than chunked, or chunked twice
// (400); other codings before a final chunked (501); more than one
// Content-Encoding field (415).
type HeadParser struct {
	lim Limits
	req *Request
	err error

	st  headState
	pos int // bytes of the head consumed so far

	methodEnd int
	targetEnd int
	major     int
	minor     int

	pathS, pathE   int
	queryS, queryE int
	authS, authE   int // authority from the target; authS < 0 if none

	nameStart, nameEnd int
	valStart, valEnd   int // valEnd is just past the last non-OWS byte
	count              int

	hostSeen       bool
	hostS, hostE   int
	clSeen         bool
	clS, clE       int
	cl             int64
	teSeen         bool
	chunked        bool
	connClose      bool
	connKeepAlive  bool
	expectContinue bool
	ceSeen         bool
	ceS, ceE       int
}

// Reset prepares p to parse a new head into req using lim (nil means
// DefaultLimits). req is Reset too.
func (p *HeadParser) Reset(lim *Limits, req *Request) {
	req.Reset()
	*p = HeadParser{lim: lim.resolved(), req: req, authS: -1}
}

// Feed parses the head in buf. It returns n > 0 and done once the head is
// complete: n is the head length (request line, headers, CRLFCRLF) and the
// Request is filled. It returns n == 0, done == false, err == nil when more
// bytes are needed, and a *LimitError when the request must be refused.
func (p *HeadParser) Feed(buf []byte) (n int, done bool, err error) {
	if p.err != nil {
		return 0, false, p.err
	}
	if p.st == stDone {
		return p.pos, true, nil
	}
	if p.req == nil {
		p.err = malformed("httpcodec: HeadParser used without Reset")
		return 0, false, p.err
	}
	n, done, err = p.feed(buf)
	if err != nil {
		p.err = err
	}
	return n, done, err
}

func (p *HeadParser) feed(buf []byte) (int, bool, error) {
	end := len(buf)
	maxHead := p.lim.MaxHeaderBytes
	if maxHead > 0 && end > maxHead {
		end = maxHead
	}
	i := p.pos
	for i < end {
		switch p.st {
		case stMethod:
			for i < end && isTchar(buf[i]) {
				i++
			}
			if i == end {
				break
			}
			switch c := buf[i]; {
			case i == 0 && (c == '\r' || c == '\n'):
				return 0, false, malformed(ReasonLeadingEmptyLine)
			case c != ' ' || i == 0:
				return 0, false, malformed(ReasonInvalidMethod)
			}
			p.methodEnd = i
			p.st = stTarget
			i++
		case stTarget:
			for i < end && isTargetChar(buf[i]) {
				i++
			}
			if i == end {
				break
			}
			switch c := buf[i]; {
			case c == '\r' || c == '\n' || (c == ' ' && i == p.methodEnd+1):
				return 0, false, malformed(ReasonMalformedRequestLine)
			case c != ' ':
				return 0, false, malformed(ReasonInvalidTarget)
			}
			p.targetEnd = i
			if err := p.classifyTarget(buf); err != nil {
				return 0, false, err
			}
			p.st = stVersion
			i++
		case stVersion:
			const proto = "HTTP/"
			vs := p.targetEnd + 1
			for ; i < end; i++ {
				k, c := i-vs, buf[i]
				ok := false
				switch {
				case k < len(proto):
					ok = c == proto[k]
				case k == 5 || k == 7:
					ok = isDigit(c)
				case k == 6:
					ok = c == '.'
				case k == 8:
					// The byte after the version must end the line.
					if c == '\n' {
						return 0, false, malformed(ReasonBareLF)
					}
					if c != '\r' {
						return 0, false, malformed(ReasonMalformedVersion)
					}
					p.major, p.minor = int(buf[vs+5]-'0'), int(buf[vs+7]-'0')
					if p.major != 1 || p.minor > 1 {
						return 0, false, &LimitError{Status: StatusHTTPVersionNotSupported, Reason: ReasonUnsupportedVersion}
					}
					p.st = stReqLineLF
					ok = true
				}
				if !ok {
					return 0, false, malformed(ReasonMalformedVersion)
				}
				if p.st != stVersion {
					i++
					break
				}
			}
		case stReqLineLF, stValueLF:
			if buf[i] != '\n' {
				return 0, false, malformed(ReasonBareCR)
			}
			p.st = stLineStart
			i++
		case stLineStart:
			switch c := buf[i]; {
			case c == '\r':
				p.st = stEndLF
				i++
			case c == '\n':
				return 0, false, malformed(ReasonBareLF)
			case isOWS(c):
				return 0, false, malformed(ReasonObsFold)
			case c == ':':
				return 0, false, malformed(ReasonEmptyHeaderName)
			case isTchar(c):
				p.count++
				if m := p.lim.MaxHeaderCount; m > 0 && p.count > m {
					return 0, false, exceeded(StatusRequestHeaderFieldsTooLarge, LimitHeaderCount, ReasonTooManyHeaders, int64(m), int64(p.count))
				}
				p.nameStart = i
				p.st = stName
			default:
				return 0, false, malformed(ReasonInvalidHeaderName)
			}
		case stName:
			for i < end && isTchar(buf[i]) {
				i++
			}
			if m := p.lim.MaxHeaderNameBytes; m > 0 && i-p.nameStart > m {
				return 0, false, exceeded(StatusRequestHeaderFieldsTooLarge, LimitHeaderNameBytes, ReasonHeaderNameTooLong, int64(m), int64(i-p.nameStart))
			}
			if i == end {
				break
			}
			switch buf[i] {
			case ':':
				p.nameEnd = i
				p.st = stValueLead
				i++
			case ' ', '\t':
				return 0, false, malformed(ReasonSpaceBeforeColon)
			case '\r', '\n':
				return 0, false, malformed(ReasonMissingColon)
			default:
				return 0, false, malformed(ReasonInvalidHeaderName)
			}
		case stValueLead:
			for i < end && isOWS(buf[i]) {
				i++
			}
			if i == end {
				break
			}
			p.valStart, p.valEnd = i, i
			p.st = stValue
		case stValue:
			ve := p.valEnd
			for i < end {
				if c := buf[i]; isVchar(c) {
					i++
					ve = i
				} else if isOWS(c) {
					i++
				} else {
					break
				}
			}
			p.valEnd = ve
			if m := p.lim.MaxHeaderValueBytes; m > 0 && p.valEnd-p.valStart > m {
				return 0, false, exceeded(StatusRequestHeaderFieldsTooLarge, LimitHeaderValueBytes, ReasonHeaderValueTooLong, int64(m), int64(p.valEnd-p.valStart))
			}
			if i == end {
				break
			}
			switch buf[i] {
			case '\r':
				if err := p.header(buf); err != nil {
					return 0, false, err
				}
				p.st = stValueLF
				i++
			case '\n':
				return 0, false, malformed(ReasonBareLF)
			default:
				return 0, false, malformed(ReasonInvalidHeaderValue)
			}
		case stEndLF:
			if buf[i] != '\n' {
				return 0, false, malformed(ReasonBareCR)
			}
			i++
			p.pos = i
			if err := p.finish(buf[:i]); err != nil {
				return 0, false, err
			}
			p.st = stDone
			return i, true, nil
		}
	}
	p.pos = i
	if end < len(buf) {
		return 0, false, exceeded(StatusRequestHeaderFieldsTooLarge, LimitHeaderBytes, ReasonHeadTooLarge, int64(maxHead), int64(len(buf)))
	}
	return 0, false, nil
}

// classifyTarget validates the complete request-target buf[methodEnd+1 :
// targetEnd] against the method and records path, query and authority.
func (p *HeadParser) classifyTarget(buf []byte) error {
	ts := p.methodEnd + 1
	t := buf[ts:p.targetEnd]
	method := buf[:p.methodEnd]
	for j := 0; j < len(t); j++ {
		if t[j] == '%' {
			if j+2 >= len(t) || !isHex(t[j+1]) || !isHex(t[j+2]) {
				return malformed(ReasonInvalidPercent)
			}
		}
	}
	isConnect := string(method) == "CONNECT"
	switch {
	case isConnect:
		// authority-form: host ":" port, port required.
		if !validAuthority(t, true) {
			if t[0] == '/' || t[0] == '*' {
				return malformed(ReasonInvalidTargetForm)
			}
			return malformed(ReasonInvalidAuthority)
		}
		p.authS, p.authE = ts, p.targetEnd
		p.pathS, p.pathE, p.queryS, p.queryE = ts, ts, ts, ts
		return nil
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return malformed(ReasonInvalidTargetForm)
		}
		p.pathS, p.pathE, p.queryS, p.queryE = ts, p.targetEnd, p.targetEnd, p.targetEnd
		return nil
	case t[0] == '/':
		p.splitPathQuery(ts, p.targetEnd, buf)
		return nil
	}
	// absolute-form: ("http" / "https") "://" authority path-abempty [ "?" query ]
	var rest int
	switch {
	case len(t) >= 7 && equalFold(t[:7], "http://"):
		rest = 7
	case len(t) >= 8 && equalFold(t[:8], "https://"):
		rest = 8
	default:
		return malformed(ReasonInvalidTargetForm)
	}
	as := ts + rest
	ae := as
	for ae < p.targetEnd && buf[ae] != '/' && buf[ae] != '?' {
		ae++
	}
	if !validAuthority(buf[as:ae], false) {
		return malformed(ReasonInvalidAuthority)
	}
	p.authS, p.authE = as, ae
	p.splitPathQuery(ae, p.targetEnd, buf)
	return nil
}

// splitPathQuery records buf[s:e] as path [ "?" query ].
func (p *HeadParser) splitPathQuery(s, e int, buf []byte) {
	q := bytes.IndexByte(buf[s:e], '?')
	if q < 0 {
		p.pathS, p.pathE, p.queryS, p.queryE = s, e, e, e
		return
	}
	p.pathS, p.pathE, p.queryS, p.queryE = s, s+q, s+q+1, e
}

// validAuthority reports whether a is reg-name [ ":" port ] with a non-empty
// reg-name and no userinfo, IP literal or percent-encoding.
func validAuthority(a []byte, needPort bool) bool {
	host, port, hasPort := bytes.Cut(a, []byte{':'})
	if len(host) == 0 || (needPort && (!hasPort || len(port) == 0)) {
		return false
	}
	for _, c := range host {
		if !isRegNameChar(c) {
			return false
		}
	}
	for _, c := range port {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// header records and interprets the header line just completed.
func (p *HeadParser) header(buf []byte) error {
	p.req.spans = append(p.req.spans, hdrSpan{p.nameStart, p.nameEnd, p.valStart, p.valEnd})
	name := buf[p.nameStart:p.nameEnd]
	val := buf[p.valStart:p.valEnd]
	switch len(name) {
	case 4:
		if !equalFold(name, "host") {
			return nil
		}
		if p.hostSeen {
			return malformed(ReasonMultipleHost)
		}
		for _, c := range val {
			if !isHostChar(c) {
				return malformed(ReasonInvalidHost)
			}
		}
		p.hostSeen, p.hostS, p.hostE = true, p.valStart, p.valEnd
	case 6:
		if equalFold(name, "expect") && equalFold(val, "100-continue") && p.minor == 1 {
			p.expectContinue = true
		}
	case 10:
		if equalFold(name, "connection") {
			p.connClose = p.connClose || listContainsToken(val, "close")
			p.connKeepAlive = p.connKeepAlive || listContainsToken(val, "keep-alive")
		}
	case 14:
		if !equalFold(name, "content-length") {
			return nil
		}
		return p.contentLength(buf, val)
	case 16:
		if !equalFold(name, "content-encoding") {
			return nil
		}
		if p.ceSeen {
			return &LimitError{Limit: LimitContentEncoding, Status: StatusUnsupportedMediaType, Reason: ReasonMultipleCE}
		}
		p.ceSeen, p.ceS, p.ceE = true, p.valStart, p.valEnd
	case 17:
		if !equalFold(name, "transfer-encoding") {
			return nil
		}
		return p.transferEncoding(val)
	}
	return nil
}

// contentLength interprets one Content-Length field value.
func (p *HeadParser) contentLength(buf, val []byte) error {
	if p.teSeen {
		return malformed(ReasonCLAndTE)
	}
	if p.clSeen {
		if !bytes.Equal(buf[p.clS:p.clE], val) {
			return malformed(ReasonMultipleCL)
		}
		return nil
	}
	if len(val) == 0 {
		return malformed(ReasonInvalidCL)
	}
	var n int64
	for _, c := range val {
		if !isDigit(c) {
			return malformed(ReasonInvalidCL)
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return malformed(ReasonInvalidCL)
		}
		n = n*10 + d
	}
	p.clSeen, p.clS, p.clE, p.cl = true, p.valStart, p.valEnd, n
	if m := p.lim.MaxBodyBytes; m > 0 && p.cl > m {
		return exceeded(StatusRequestEntityTooLarge, LimitBodyBytes, ReasonBodyTooLarge, m, p.cl)
	}
	return nil
}

// transferEncoding interprets the Transfer-Encoding field value.
func (p *HeadParser) transferEncoding(val []byte) error {
	switch {
	case p.minor == 0:
		return malformed(ReasonTEHTTP10)
	case p.clSeen:
		return malformed(ReasonCLAndTE)
	case p.teSeen:
		return malformed(ReasonMultipleTE)
	}
	p.teSeen = true
	if equalFold(val, "chunked") {
		p.chunked = true
		return nil
	}
	// A list: the final coding must be chunked, applied once (RFC 9112
	// 6.1); other codings are well-formed but not implemented.
	last := val
	if i := bytes.LastIndexByte(val, ','); i >= 0 {
		last = val[i+1:]
	}
	if !equalFold(trimOWS(last), "chunked") {
		return malformed(ReasonTENotChunked)
	}
	rest := val[:len(val)-len(last)-1]
	for {
		elem, after, more := bytes.Cut(rest, []byte{','})
		elem = trimOWS(elem)
		if len(elem) == 0 || equalFold(elem, "chunked") {
			return malformed(ReasonTENotChunked)
		}
		if !more {
			break
		}
		rest = after
	}
	return &LimitError{Status: StatusNotImplemented, Reason: ReasonTEUnsupported}
}

// finish validates the complete head and fills the Request.
func (p *HeadParser) finish(head []byte) error {
	if p.minor == 1 && !p.hostSeen {
		return malformed(ReasonMissingHost)
	}
	r := p.req
	r.raw = append(r.raw[:0], head...)
	raw := r.raw
	r.Method = internMethod(raw[:p.methodEnd])
	r.Target = raw[p.methodEnd+1 : p.targetEnd]
	r.Path = raw[p.pathS:p.pathE]
	r.RawQuery = raw[p.queryS:p.queryE]
	r.ProtoMajor, r.ProtoMinor = p.major, p.minor
	switch {
	case p.authS >= 0:
		r.Host = raw[p.authS:p.authE]
	case p.hostSeen:
		r.Host = raw[p.hostS:p.hostE]
	}
	r.Headers = r.Headers[:0]
	for _, s := range r.spans {
		r.Headers = append(r.Headers, HeaderField{Name: raw[s.ns:s.ne], Value: raw[s.vs:s.ve]})
	}
	r.ContentLength = -1
	if p.clSeen {
		r.ContentLength = p.cl
	}
	r.Chunked = p.chunked
	if p.minor == 1 {
		r.KeepAlive = !p.connClose
	} else {
		r.KeepAlive = p.connKeepAlive && !p.connClose
	}
	r.ExpectContinue = p.expectContinue
	if p.ceSeen {
		r.ContentEncoding = internCoding(raw[p.ceS:p.ceE])
	}
	return nil
}

// ParseHead parses the request head at the start of buf into req, rescanning
// buf from the start on every call (use HeadParser to resume instead). It
// returns n > 0, the head length, when the head is complete; n == 0 and a nil
// error when more bytes are needed; a *LimitError when the request must be
// refused. lim nil means DefaultLimits.
func ParseHead(buf []byte, lim *Limits, req *Request) (n int, err error) {
	var p HeadParser
	p.Reset(lim, req)
	n, done, err := p.feed(buf)
	if !done {
		return 0, err
	}
	return n, nil
}

// internMethod returns m as a string, without allocating for common methods.
func internMethod(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return string(m)
}

// internCoding returns the content coding v as a string, lower-cased and
// without allocating for the codings this package decodes.
func internCoding(v []byte) string {
	for _, c := range [...]string{"gzip", "deflate", "br", "zstd", "identity", "x-gzip"} {
		if equalFold(v, c) {
			return c
		}
	}
	return string(v)
}

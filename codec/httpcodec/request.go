package httpcodec

// HeaderField is one header line as received: Name keeps the sender's
// casing, Value has leading and trailing whitespace removed. Both alias the
// owning Request's buffer.
type HeaderField struct {
	Name  []byte
	Value []byte
}

// Request is a parsed request head. The byte-slice fields alias a private
// copy of the head owned by the Request: they stay valid until the next
// Reset or parse into the same Request, and never alias the caller's buffer.
// A Request is meant to be reused across the requests of a connection;
// after warm-up, parsing into it does not allocate.
type Request struct {
	// Method is the request method. Common methods are interned; an
	// unusual method costs one allocation.
	Method string
	// Target is the raw request-target exactly as sent.
	Target []byte
	// Path is the raw (still percent-encoded) path of Target; empty for
	// authority-form (CONNECT) targets, "*" for asterisk-form.
	Path []byte
	// RawQuery is the raw query of Target, without the '?'.
	RawQuery []byte
	// ProtoMajor and ProtoMinor are the HTTP version: 1.0 or 1.1.
	ProtoMajor, ProtoMinor int
	// Headers lists the header fields in arrival order.
	Headers []HeaderField
	// Host is the authority of an absolute-form or authority-form target,
	// else the Host header value (possibly empty).
	Host []byte
	// ContentLength is the Content-Length value, or -1 if none was sent.
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked.
	Chunked bool
	// KeepAlive reports whether the connection may be reused afterwards:
	// HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
	// "Connection: keep-alive" and without "close".
	KeepAlive bool
	// ExpectContinue reports "Expect: 100-continue" on an HTTP/1.1 request.
	ExpectContinue bool
	// ContentEncoding is the Content-Encoding value ("" if none). Common
	// codings are interned and lower-cased.
	ContentEncoding string

	raw   []byte    // private copy of the head
	spans []hdrSpan // header offsets into the head, filled while scanning
}

// hdrSpan locates one header field within the head.
type hdrSpan struct{ ns, ne, vs, ve int }

// Reset clears r for reuse, keeping its buffers.
func (r *Request) Reset() {
	raw, spans, hdrs := r.raw[:0], r.spans[:0], r.Headers[:0]
	*r = Request{raw: raw, spans: spans, Headers: hdrs, ContentLength: -1}
}

// HeaderBytes returns the value of the first header field named name (ASCII
// case-insensitive), or nil. It does not allocate.
func (r *Request) HeaderBytes(name string) []byte {
	for i := range r.Headers {
		if equalFold(r.Headers[i].Name, name) {
			return r.Headers[i].Value
		}
	}
	return nil
}

// Header returns the value of the first header field named name (ASCII
// case-insensitive), or "". It allocates the returned string; use
// HeaderBytes on hot paths.
func (r *Request) Header(name string) string {
	return string(r.HeaderBytes(name))
}

// HeaderValues calls fn for every header field named name, in order, and
// stops early if fn returns false.
func (r *Request) HeaderValues(name string, fn func(value []byte) bool) {
	for i := range r.Headers {
		if equalFold(r.Headers[i].Name, name) && !fn(r.Headers[i].Value) {
			return
		}
	}
}

// equalFold reports whether b equals s under ASCII case folding.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// lower folds an ASCII upper-case letter to lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

package httpcodec

// A server with many connections parses every head with one HeadParser
// and Request per event loop, whose memory stays in the CPU cache, instead
// of each connection's own (cold at a thousand connections: the parser and
// the request were a cache miss per line touched). The two methods below
// hand the state over to memory of the connection's own when it has to
// outlive the read that produced it: a head that is not complete yet
// (MoveTo), a request that waits for its body or goes to a worker
// (CopyTo).

// MoveTo continues p's head in dst, with req as its Request: dst resumes
// exactly where p stopped (the same bytes must be fed again, from the
// start of the head, as with Feed), and p may be Reset for another head.
// req receives what p's Request holds so far (only header offsets before
// the head is complete); its buffers are reused.
func (p *HeadParser) MoveTo(dst *HeadParser, req *Request) {
	req.Reset()
	if p.req != nil {
		req.spans = append(req.spans, p.req.spans...)
	}
	*dst = *p
	dst.req = req
}

// CopyTo makes dst a copy of the complete request r that shares no memory
// with it: dst's byte slices alias dst's own copy of the head (its buffers
// are reused), so r may be reset or parsed into afterwards.
func (r *Request) CopyTo(dst *Request) {
	raw := append(dst.raw[:0], r.raw...)
	hdrs, spans := dst.Headers[:0], dst.spans[:0]
	*dst = *r
	dst.raw, dst.spans = raw, spans // spans are the parser's, not the request's
	dst.Target = rebase(r.raw, raw, r.Target)
	dst.Path = rebase(r.raw, raw, r.Path)
	dst.RawQuery = rebase(r.raw, raw, r.RawQuery)
	dst.Host = rebase(r.raw, raw, r.Host)
	for _, h := range r.Headers {
		hdrs = append(hdrs, HeaderField{Name: rebase(r.raw, raw, h.Name), Value: rebase(r.raw, raw, h.Value)})
	}
	dst.Headers = hdrs
}

// rebase returns the part of to at the place b has in from (b is nil or a
// subslice of from; finish makes every field one).
func rebase(from, to, b []byte) []byte {
	if b == nil {
		return nil
	}
	off := cap(from) - cap(b)
	return to[off : off+len(b)]
}

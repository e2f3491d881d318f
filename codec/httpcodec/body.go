package httpcodec

// bodyMode is how a request body is framed.
type bodyMode uint8

const (
	bodyNone    bodyMode = iota // no body
	bodyLength                  // Content-Length framing
	bodyChunked                 // chunked transfer coding
)

// chunkState is the position of a BodyDecoder within chunked framing.
type chunkState uint8

const (
	csSize     chunkState = iota // first hex digit of a chunk size
	csSizeMore                   // further hex digits
	csSizeOWS                    // whitespace after the size
	csExt                        // in chunk extensions (ignored)
	csSizeLF                     // CR seen after the chunk-size line
	csData                       // in chunk data
	csDataCR                     // expecting CR after chunk data
	csDataLF                     // expecting LF after chunk data
	csTrStart                    // at the start of a trailer line
	csTrName                     // in a trailer field name
	csTrValue                    // in a trailer field value
	csTrLF                       // CR seen after a trailer line
	csEndLF                      // CR seen on the final empty line
	csDone                       // body complete
)

// maxChunkOverhead bounds framing bytes in excess of what the data
// justifies, the way net/http does: each chunk may cost 16 bytes plus twice
// its data size in framing; beyond that, 16 KiB of slack.
const maxChunkOverhead = 16 << 10

// BodyDecoder incrementally decodes a request body framed by Content-Length
// or by the chunked transfer coding. Chunk extensions are ignored; trailer
// fields are validated like header lines, then discarded. The decoded total
// is checked against MaxBodyBytes as sizes are announced, so an oversized
// body is refused before its bytes arrive.
//
// Unlike HeadParser, Feed takes only the bytes not yet consumed: the decoder
// keeps all state itself, including a partial chunk-size line, so it
// consumes everything it is given until the body ends.
type BodyDecoder struct {
	mode      bodyMode
	st        chunkState
	remaining int64 // bytes left in the body (length) or the chunk (chunked)
	total     int64 // decoded bytes so far
	maxBody   int64
	maxTrail  int
	lineLen   int   // bytes of the current chunk-size or trailer line
	excess    int64 // framing overhead not yet justified by data
	trailer   int   // bytes of the trailer section
	err       error
}

// Reset prepares d for the body of req under lim (nil means DefaultLimits).
// A request without Content-Length and not chunked has an empty body.
func (d *BodyDecoder) Reset(req *Request, lim *Limits) {
	l := lim.resolved()
	*d = BodyDecoder{maxBody: l.MaxBodyBytes, maxTrail: l.MaxHeaderBytes}
	switch {
	case req.Chunked:
		d.mode = bodyChunked
	case req.ContentLength > 0:
		d.mode, d.remaining = bodyLength, req.ContentLength
		if d.maxBody > 0 && req.ContentLength > d.maxBody {
			// Normally refused by the head parser already; repeated here
			// in case the decoder is given tighter limits.
			d.err = exceeded(StatusRequestEntityTooLarge, LimitBodyBytes, ReasonBodyTooLarge, d.maxBody, req.ContentLength)
		}
	default:
		d.st = csDone
	}
}

// Done reports whether the whole body has been decoded.
func (d *BodyDecoder) Done() bool { return d.st == csDone }

// Decoded returns the number of body bytes decoded so far.
func (d *BodyDecoder) Decoded() int64 { return d.total }

// Feed decodes as much of buf as it can, appending body bytes to dst. It
// returns how many bytes of buf it consumed (all of buf unless the body
// ended inside it), dst with the decoded bytes appended, whether the body is
// complete, and a *LimitError if the body must be refused.
func (d *BodyDecoder) Feed(buf, dst []byte) (consumed int, out []byte, done bool, err error) {
	if d.err != nil {
		return 0, dst, false, d.err
	}
	if d.st == csDone {
		return 0, dst, true, nil
	}
	if d.mode == bodyLength {
		var n int
		n, dst = d.take(buf, dst)
		if d.remaining == 0 {
			d.st = csDone
		}
		return n, dst, d.st == csDone, nil
	}
	consumed, dst, err = d.chunked(buf, dst)
	if err != nil {
		d.err = err
		return consumed, dst, false, err
	}
	return consumed, dst, d.st == csDone, nil
}

// take moves the body bytes at the start of buf, at most d.remaining, to
// dst and counts them; it returns how many it took.
func (d *BodyDecoder) take(buf, dst []byte) (int, []byte) {
	n := len(buf)
	if int64(n) > d.remaining {
		n = int(d.remaining)
	}
	d.remaining -= int64(n)
	d.total += int64(n)
	return n, append(dst, buf[:n]...)
}

// afterSize takes a byte that follows a chunk size or the whitespace
// after it: more whitespace, or the CR that ends the line.
func (d *BodyDecoder) afterSize(c byte) error {
	switch {
	case isOWS(c):
		d.st = csSizeOWS
	case c == '\r':
		d.st = csSizeLF
	case c == '\n':
		return malformed(ReasonBareLF)
	default:
		return malformed(ReasonChunkSize)
	}
	return nil
}

// lineEnd describes the states that accept exactly one byte, the CR or LF
// that ends chunk data or a trailer line: that byte, the state it leads to,
// and why any other byte is refused.
var lineEnd = [...]struct {
	want   byte
	next   chunkState
	reason string
}{
	csDataCR: {'\r', csDataLF, ReasonChunkDataCRLF},
	csDataLF: {'\n', csSize, ReasonChunkDataCRLF},
	csTrLF:   {'\n', csTrStart, ReasonBareCR},
	csEndLF:  {'\n', csDone, ReasonBareCR},
}

// chunked runs the chunked-framing state machine over buf.
func (d *BodyDecoder) chunked(buf, dst []byte) (int, []byte, error) {
	i := 0
	for i < len(buf) && d.st != csDone {
		c := buf[i]
		switch d.st {
		case csSize, csSizeMore:
			v, ok := hexVal(c)
			if ok {
				// net/http refuses more than 16 digits, leading zeros
				// included; so do we. lineLen counts the digits so far.
				if d.lineLen >= 16 || d.remaining > (1<<63-1)>>4 {
					return i, dst, malformed(ReasonChunkSizeOverflow)
				}
				d.remaining = d.remaining<<4 | int64(v)
				d.st = csSizeMore
				break
			}
			if d.st == csSize {
				return i, dst, malformed(ReasonChunkSize)
			}
			if c == ';' {
				d.st = csExt
			} else if err := d.afterSize(c); err != nil {
				return i, dst, err
			}
			if err := d.announce(); err != nil {
				return i, dst, err
			}
		case csSizeOWS:
			if err := d.afterSize(c); err != nil {
				return i, dst, err
			}
		case csExt:
			switch {
			case c == '\r':
				d.st = csSizeLF
			case c == '\n':
				return i, dst, malformed(ReasonBareLF)
			case !isVchar(c) && !isOWS(c):
				return i, dst, malformed(ReasonChunkExtension)
			}
		case csSizeLF:
			if c != '\n' {
				return i, dst, malformed(ReasonBareCR)
			}
			// The line is complete: account for its overhead.
			d.excess += int64(d.lineLen) + 1 + 2 - 16 - 2*d.remaining
			if d.excess < 0 {
				d.excess = 0
			}
			if d.excess > maxChunkOverhead {
				return i, dst, malformed(ReasonChunkOverhead)
			}
			d.lineLen = 0
			if d.remaining == 0 {
				d.st = csTrStart
			} else {
				d.st = csData
			}
		case csData:
			var n int
			n, dst = d.take(buf[i:], dst)
			i += n
			if d.remaining == 0 {
				d.st = csDataCR
			}
			continue
		case csDataCR, csDataLF, csTrLF, csEndLF:
			e := lineEnd[d.st]
			if c != e.want {
				return i, dst, malformed(e.reason)
			}
			d.st = e.next
		case csTrStart:
			switch {
			case c == '\r':
				d.st = csEndLF
			case c == '\n':
				return i, dst, malformed(ReasonBareLF)
			case isOWS(c):
				return i, dst, malformed(ReasonObsFold)
			case c == ':':
				return i, dst, malformed(ReasonEmptyHeaderName)
			case isTchar(c):
				d.st = csTrName
			default:
				return i, dst, malformed(ReasonInvalidHeaderName)
			}
		case csTrName:
			switch {
			case isTchar(c):
			case c == ':':
				d.st = csTrValue
			case isOWS(c):
				return i, dst, malformed(ReasonSpaceBeforeColon)
			case c == '\r' || c == '\n':
				return i, dst, malformed(ReasonMissingColon)
			default:
				return i, dst, malformed(ReasonInvalidHeaderName)
			}
		case csTrValue:
			switch {
			case isVchar(c) || isOWS(c):
			case c == '\r':
				d.st = csTrLF
			case c == '\n':
				return i, dst, malformed(ReasonBareLF)
			default:
				return i, dst, malformed(ReasonInvalidHeaderValue)
			}
		}
		i++
		if err := d.count(); err != nil {
			return i, dst, err
		}
	}
	return i, dst, nil
}

// count accounts one framing byte against the line and trailer limits.
func (d *BodyDecoder) count() error {
	switch d.st {
	case csSizeMore, csSizeOWS, csExt, csSizeLF:
		d.lineLen++
		if d.lineLen > MaxChunkLineBytes {
			return exceeded(StatusBadRequest, LimitChunkLineBytes, ReasonChunkLineTooLong, MaxChunkLineBytes, int64(d.lineLen))
		}
	case csTrName, csTrValue, csTrLF, csTrStart, csEndLF, csDone:
		d.trailer++
		if d.maxTrail > 0 && d.trailer > d.maxTrail {
			return exceeded(StatusRequestHeaderFieldsTooLarge, LimitHeaderBytes, ReasonTrailerTooLarge, int64(d.maxTrail), int64(d.trailer))
		}
	}
	return nil
}

// announce checks a just-completed chunk size against MaxBodyBytes, so an
// oversized chunk is refused before its data arrives.
func (d *BodyDecoder) announce() error {
	if d.maxBody > 0 && d.remaining > d.maxBody-d.total {
		return exceeded(StatusRequestEntityTooLarge, LimitBodyBytes, ReasonBodyTooLarge, d.maxBody, d.total+d.remaining)
	}
	return nil
}

// hexVal decodes one hex digit.
func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Package httpcodec is floodgate's HTTP/1.1 wire codec for the gnet event
// loop: an incremental, allocation-free request-head parser, a streaming
// body decoder (Content-Length and chunked framing) and size/ratio-limited
// Content-Encoding decoders.
//
// Every limit is checked as bytes arrive, so the event loop can answer
// 431/413/400 without reading further. The parser is deliberately stricter
// than net/http where leniency has historically enabled request smuggling;
// see HeadParser for the list.
package httpcodec

import (
	"fmt"
	"time"
)

// Status codes carried by LimitError.
const (
	StatusBadRequest                  = 400
	StatusRequestTimeout              = 408
	StatusRequestEntityTooLarge       = 413
	StatusUnsupportedMediaType        = 415
	StatusRequestHeaderFieldsTooLarge = 431
	StatusNotImplemented              = 501
	StatusHTTPVersionNotSupported     = 505
)

// Limit names, matching the command-line flag that configures each limit.
const (
	LimitHeaderBytes        = "max-header-size-bytes"
	LimitHeaderCount        = "max-header-count"
	LimitHeaderNameBytes    = "max-header-name-bytes"
	LimitHeaderValueBytes   = "max-header-value-bytes"
	LimitBodyBytes          = "max-body-size-bytes"
	LimitDecompressedBytes  = "max-decompressed-size-bytes"
	LimitDecompressionRatio = "max-decompression-ratio"
	LimitChunkLineBytes     = "max-chunk-line-bytes"
	LimitContentEncoding    = "content-encoding"
)

// MaxChunkLineBytes bounds a chunk-size line (size plus extensions, without
// the CRLF) and every trailer line; it is not configurable.
const MaxChunkLineBytes = 1024

// Limits bounds what a single request may make the server buffer or decode.
// A zero field takes its value from DefaultLimits; a negative field disables
// that limit. A nil *Limits means DefaultLimits.
type Limits struct {
	// MaxHeaderBytes bounds the request head: request line, header lines
	// and the terminating empty line, CRLFs included. It also bounds the
	// trailer section of a chunked body.
	MaxHeaderBytes int
	// MaxHeaderCount bounds the number of header fields.
	MaxHeaderCount int
	// MaxHeaderNameBytes bounds the length of one header field name.
	MaxHeaderNameBytes int
	// MaxHeaderValueBytes bounds the length of one header field value,
	// leading and trailing whitespace excluded.
	MaxHeaderValueBytes int
	// MaxBodyBytes bounds the decoded (de-chunked, not decompressed) body.
	MaxBodyBytes int64
}

// DefaultLimits returns the limits used for zero fields and nil *Limits.
func DefaultLimits() Limits {
	return Limits{
		MaxHeaderBytes:      8192,
		MaxHeaderCount:      100,
		MaxHeaderNameBytes:  256,
		MaxHeaderValueBytes: 4096,
		MaxBodyBytes:        10 << 20,
	}
}

// resolved returns l with zero fields replaced by defaults and negative
// fields replaced by 0, which the codec reads as "unlimited".
func (l *Limits) resolved() Limits {
	if l == nil {
		return DefaultLimits()
	}
	r := *l
	if r.MaxHeaderBytes > 0 && r.MaxHeaderCount > 0 && r.MaxHeaderNameBytes > 0 && r.MaxHeaderValueBytes > 0 && r.MaxBodyBytes > 0 {
		// Every limit set: nothing to resolve. The parser and the body
		// decoder are reset with every request of a keep-alive connection.
		return r
	}
	d := DefaultLimits()
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	r.MaxHeaderBytes = pick(r.MaxHeaderBytes, d.MaxHeaderBytes)
	r.MaxHeaderCount = pick(r.MaxHeaderCount, d.MaxHeaderCount)
	r.MaxHeaderNameBytes = pick(r.MaxHeaderNameBytes, d.MaxHeaderNameBytes)
	r.MaxHeaderValueBytes = pick(r.MaxHeaderValueBytes, d.MaxHeaderValueBytes)
	switch {
	case r.MaxBodyBytes == 0:
		r.MaxBodyBytes = d.MaxBodyBytes
	case r.MaxBodyBytes < 0:
		r.MaxBodyBytes = 0
	}
	return r
}

// LimitError reports a request the server must refuse, with the HTTP status
// to answer. It covers both configured limits (Limit names the flag) and
// malformed input (Limit is empty, Status is 400, 501 or 505 and Reason is
// one of the Reason* constants).
type LimitError struct {
	// Limit is the flag name of the crossed limit, or "" for malformed input.
	Limit string
	// Configured is the configured value of the limit (0 for malformed input).
	Configured int64
	// Actual is the value observed so far, a lower bound when the input is
	// still incomplete.
	Actual int64
	// Status is the HTTP status code to answer with.
	Status int
	// Reason is a short, fixed, human-readable description.
	Reason string
}

// Error implements error.
func (e *LimitError) Error() string {
	if e.Limit == "" {
		return fmt.Sprintf("httpcodec: %d: %s", e.Status, e.Reason)
	}
	return fmt.Sprintf("httpcodec: %d: %s (%s: configured %d, got %d)",
		e.Status, e.Reason, e.Limit, e.Configured, e.Actual)
}

// Is reports whether target is a *LimitError with the same Status and, where
// set in target, the same Limit and Reason, so that
// errors.Is(err, &LimitError{Status: 431}) works.
func (e *LimitError) Is(target error) bool {
	t, ok := target.(*LimitError)
	if !ok {
		return false
	}
	return (t.Status == 0 || t.Status == e.Status) &&
		(t.Limit == "" || t.Limit == e.Limit) &&
		(t.Reason == "" || t.Reason == e.Reason)
}

// Reasons for malformed or refused input. Tests and callers compare against
// these; they never change at run time.
const (
	ReasonLeadingEmptyLine     = "empty line before request line"
	ReasonInvalidMethod        = "invalid character in method"
	ReasonMalformedRequestLine = "malformed request line"
	ReasonInvalidTarget        = "invalid character in request target"
	ReasonInvalidPercent       = "invalid percent-encoding in request target"
	ReasonInvalidTargetForm    = "request target form not allowed for method"
	ReasonInvalidAuthority     = "invalid authority in request target"
	ReasonMalformedVersion     = "malformed HTTP version"
	ReasonUnsupportedVersion   = "unsupported HTTP version"
	ReasonBareLF               = "bare LF line terminator"
	ReasonBareCR               = "bare CR"
	ReasonObsFold              = "obsolete line folding or leading whitespace"
	ReasonEmptyHeaderName      = "empty header name"
	ReasonInvalidHeaderName    = "invalid character in header name"
	ReasonSpaceBeforeColon     = "whitespace between header name and colon"
	ReasonMissingColon         = "header line without colon"
	ReasonInvalidHeaderValue   = "invalid character in header value"
	ReasonMissingHost          = "HTTP/1.1 request without Host"
	ReasonMultipleHost         = "multiple Host headers"
	ReasonInvalidHost          = "invalid Host header"
	ReasonInvalidCL            = "invalid Content-Length"
	ReasonMultipleCL           = "multiple differing Content-Length values"
	ReasonCLAndTE              = "both Content-Length and Transfer-Encoding"
	ReasonMultipleTE           = "multiple Transfer-Encoding headers"
	ReasonTENotChunked         = "final transfer coding is not chunked"
	ReasonTEUnsupported        = "unsupported transfer coding"
	ReasonTEHTTP10             = "Transfer-Encoding in HTTP/1.0 request"
	ReasonMultipleCE           = "multiple Content-Encoding headers"
	ReasonHeadTooLarge         = "request head too large"
	ReasonTooManyHeaders       = "too many header fields"
	ReasonHeaderNameTooLong    = "header name too long"
	ReasonHeaderValueTooLong   = "header value too long"
	ReasonBodyTooLarge         = "request body too large"
	ReasonChunkSize            = "invalid chunk size"
	ReasonChunkSizeOverflow    = "chunk size too large"
	ReasonChunkExtension       = "invalid chunk extension"
	ReasonChunkLineTooLong     = "chunk-size line too long"
	ReasonChunkDataCRLF        = "chunk data not followed by CRLF"
	ReasonChunkOverhead        = "too much chunked framing overhead"
	ReasonTrailerTooLarge      = "trailer section too large"
	ReasonUnsupportedEncoding  = "unsupported content encoding"
	ReasonDecompressedTooLarge = "decompressed body too large"
	ReasonRatioTooHigh         = "decompression ratio too high"
	ReasonTimeout              = "timed out reading request"
)

// malformed returns the 400 error for reason.
func malformed(reason string) *LimitError {
	return &LimitError{Status: StatusBadRequest, Reason: reason}
}

// exceeded returns the error for a crossed configured limit.
func exceeded(status int, limit, reason string, configured, actual int64) *LimitError {
	return &LimitError{Limit: limit, Configured: configured, Actual: actual, Status: status, Reason: reason}
}

// TimeoutError returns the 408 error the event loop answers with when a
// request head or body does not arrive within the configured time. limit is
// the flag name (for example "header-read-timeout").
func TimeoutError(limit string, configured, elapsed time.Duration) *LimitError {
	return &LimitError{
		Limit:      limit,
		Configured: configured.Milliseconds(),
		Actual:     elapsed.Milliseconds(),
		Status:     StatusRequestTimeout,
		Reason:     ReasonTimeout,
	}
}

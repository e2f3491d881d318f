package httpcodec

import (
	"strings"
	"testing"
)

// chunkedReq is a head announcing a chunked body.
const chunkedReq = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestBodyDecoderAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		body string
		rest string // bytes after the body, left unconsumed
	}{
		{"content length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloNEXT", "hello", "NEXT"},
		{"content length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nNEXT", "", "NEXT"},
		{"no framing means empty body", "GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT", "", "NEXT"},
		{"chunked", chunkedReq + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", "hello world", "NEXT"},
		{"chunked upper-case hex and leading zeros", chunkedReq + "000A\r\n0123456789\r\n0\r\n\r\n", "0123456789", ""},
		{"chunk extensions ignored", chunkedReq + "5;name=value;x=\"q d\"\r\nhello\r\n0;last\r\n\r\n", "hello", ""},
		{"whitespace after chunk size", chunkedReq + "5 \t\r\nhello\r\n0\r\n\r\n", "hello", ""},
		{"trailers consumed and discarded", chunkedReq + "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\nNEXT", "hello", "NEXT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			for _, cuts := range [][]int{nil, byteCuts(len(in))} {
				o := parseSplit(in, nil, cuts)
				if o.err != nil || !o.complete {
					t.Fatalf("cuts=%d: complete=%v err=%v", len(cuts), o.complete, o.err)
				}
				eq(t, string(o.body), tt.body)
				eq(t, string(in[o.consumed:]), tt.rest)
			}
		})
	}
}

func TestBodyDecoderRejects(t *testing.T) {
	small := &Limits{MaxBodyBytes: 10, MaxHeaderBytes: 100}
	tests := []struct {
		name   string
		body   string
		lim    *Limits
		status int
		limit  string
		reason string
	}{
		{"chunk size announced over max-body-size-bytes before data", "b\r\n", small, 413, LimitBodyBytes, ReasonBodyTooLarge},
		{"decoded total over max-body-size-bytes", "5\r\nhello\r\n6\r\n", small, 413, LimitBodyBytes, ReasonBodyTooLarge},
		{"empty chunk size", "\r\n", nil, 400, "", ReasonChunkSize},
		{"non-hex chunk size", "g\r\n", nil, 400, "", ReasonChunkSize},
		{"negative chunk size", "-1\r\n", nil, 400, "", ReasonChunkSize},
		{"17 hex digits", "00000000000000001\r\n", nil, 400, "", ReasonChunkSizeOverflow},
		{"chunk size overflows int64", "8000000000000000\r\n", &Limits{MaxBodyBytes: -1}, 400, "", ReasonChunkSizeOverflow},
		{"whitespace before chunk extension", "5 ;x\r\n", nil, 400, "", ReasonChunkSize},
		{"control byte in chunk extension", "5;\x01\r\n", nil, 400, "", ReasonChunkExtension},
		{"chunk-size line over max-chunk-line-bytes", "5;" + strings.Repeat("x", MaxChunkLineBytes), nil, 400, LimitChunkLineBytes, ReasonChunkLineTooLong},
		{"bare LF after chunk size", "5\nhello\r\n", nil, 400, "", ReasonBareLF},
		{"bare LF after extension", "5;x\nhello\r\n", nil, 400, "", ReasonBareLF},
		{"bare CR after chunk size", "5\rhello\r\n", nil, 400, "", ReasonBareCR},
		{"chunk data longer than size", "5\r\nhello!\r\n", nil, 400, "", ReasonChunkDataCRLF},
		{"chunk data followed by bare LF", "5\r\nhello\n0\r\n\r\n", nil, 400, "", ReasonChunkDataCRLF},
		{"bare LF ends trailer section", "0\r\n\n", nil, 400, "", ReasonBareLF},
		{"bare LF after trailer", "0\r\nX: y\n\r\n", nil, 400, "", ReasonBareLF},
		{"obs-fold in trailer", "0\r\nX: y\r\n z\r\n\r\n", nil, 400, "", ReasonObsFold},
		{"space before colon in trailer", "0\r\nX : y\r\n\r\n", nil, 400, "", ReasonSpaceBeforeColon},
		{"trailer without colon", "0\r\nXy\r\n\r\n", nil, 400, "", ReasonMissingColon},
		{"control byte in trailer value", "0\r\nX: \x00\r\n\r\n", nil, 400, "", ReasonInvalidHeaderValue},
		{"trailer section over max-header-size-bytes", "0\r\nX: " + strings.Repeat("y", 200), small, 431, LimitHeaderBytes, ReasonTrailerTooLarge},
		{"too much framing overhead", strings.Repeat("1;"+strings.Repeat("e", 1000)+"\r\nx\r\n", 20), nil, 400, "", ReasonChunkOverhead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(chunkedReq + tt.body)
			for _, cuts := range [][]int{nil, byteCuts(len(in))} {
				o := parseSplit(in, tt.lim, cuts)
				if o.err == nil {
					t.Fatalf("cuts=%d: no error (complete=%v)", len(cuts), o.complete)
				}
				if o.err.Status != tt.status || o.err.Limit != tt.limit || o.err.Reason != tt.reason {
					t.Fatalf("cuts=%d: got %v, want %d %q %q", len(cuts), o.err, tt.status, tt.limit, tt.reason)
				}
			}
		})
	}
}

func TestBodyDecoderContentLengthOverLimit(t *testing.T) {
	// A Content-Length body is bounded by the head check; the decoder
	// never returns more than Content-Length bytes.
	var (
		r Request
		d BodyDecoder
	)
	if _, err := ParseHead([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"), nil, &r); err != nil {
		t.Fatal(err)
	}
	d.Reset(&r, nil)
	c, out, done, err := d.Feed([]byte("abcdef"), nil)
	if c != 3 || string(out) != "abc" || !done || err != nil {
		t.Fatalf("Feed = %d %q %v %v", c, out, done, err)
	}
	if c, _, done, _ := d.Feed([]byte("def"), nil); c != 0 || !done {
		t.Fatal("Feed after done must consume nothing")
	}
	eq(t, d.Decoded(), int64(3))

	d.Reset(&r, &Limits{MaxBodyBytes: 2})
	if _, _, _, err := d.Feed([]byte("abc"), nil); asLimitError(err) == nil || asLimitError(err).Status != 413 {
		t.Fatalf("tighter decoder limit not enforced: %v", err)
	}
}

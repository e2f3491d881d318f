package httpcodec

import (
	"errors"
	"strings"
	"testing"
)

// crlf turns "\n" into "\r\n" so test inputs stay readable.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseHeadAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		check func(t *testing.T, r *Request)
	}{
		{"simple GET", crlf("GET /a/b?x=1&y=2 HTTP/1.1\nHost: example.com\nUser-Agent: t\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.Method, "GET")
			eq(t, string(r.Target), "/a/b?x=1&y=2")
			eq(t, string(r.Path), "/a/b")
			eq(t, string(r.RawQuery), "x=1&y=2")
			eq(t, string(r.Host), "example.com")
			eq(t, r.ContentLength, int64(-1))
			eq(t, r.KeepAlive, true)
			eq(t, r.Header("user-agent"), "t")
			eq(t, r.ProtoMinor, 1)
		}},
		{"HTTP/1.1 Connection close", crlf("GET / HTTP/1.1\nHost: a\nConnection: foo, Close\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.KeepAlive, false)
		}},
		{"HTTP/1.0 defaults to close without Host", crlf("GET / HTTP/1.0\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.KeepAlive, false)
			eq(t, r.ProtoMinor, 0)
			eq(t, string(r.Host), "")
		}},
		{"HTTP/1.0 keep-alive", crlf("GET / HTTP/1.0\nConnection: Keep-Alive\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.KeepAlive, true)
		}},
		{"HTTP/1.0 keep-alive and close", crlf("GET / HTTP/1.0\nConnection: keep-alive\nConnection: close\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.KeepAlive, false)
		}},
		{"content length and whitespace trimmed", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: \t 42 \t\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.ContentLength, int64(42))
		}},
		{"identical duplicate content length", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 5\ncontent-length: 5\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.ContentLength, int64(5))
		}},
		{"chunked case-insensitive", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: Chunked\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.Chunked, true)
			eq(t, r.ContentLength, int64(-1))
		}},
		{"expect continue", crlf("PUT / HTTP/1.1\nHost: a\nExpect: 100-Continue\nContent-Length: 1\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.ExpectContinue, true)
		}},
		{"expect ignored in HTTP/1.0", crlf("PUT / HTTP/1.0\nExpect: 100-continue\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.ExpectContinue, false)
		}},
		{"content encoding interned lower-case", crlf("POST / HTTP/1.1\nHost: a\nContent-Encoding: GZIP\n\n"), func(t *testing.T, r *Request) {
			eq(t, r.ContentEncoding, "gzip")
		}},
		{"absolute form takes host from target", crlf("GET http://Example.com:8080/p?q HTTP/1.1\nHost: other\n\n"), func(t *testing.T, r *Request) {
			eq(t, string(r.Host), "Example.com:8080")
			eq(t, string(r.Path), "/p")
			eq(t, string(r.RawQuery), "q")
		}},
		{"connect authority form", crlf("CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\n"), func(t *testing.T, r *Request) {
			eq(t, string(r.Host), "example.com:443")
			eq(t, string(r.Path), "")
		}},
		{"options asterisk", crlf("OPTIONS * HTTP/1.1\nHost: a\n\n"), func(t *testing.T, r *Request) {
			eq(t, string(r.Path), "*")
		}},
		{"value obs-text and inner spaces kept", []byte("GET / HTTP/1.1\r\nHost: a\r\nX: a \xff b  \r\n\r\n"), func(t *testing.T, r *Request) {
			eq(t, r.Header("x"), "a \xff b")
		}},
		{"empty value", crlf("GET / HTTP/1.1\nHost: a\nX:\n\n"), func(t *testing.T, r *Request) {
			eq(t, len(r.Headers), 2)
			eq(t, r.Header("X"), "")
		}},
		{"unusual method token", crlf("M-SEARCH /x HTTP/1.1\nHost: a\n\n"), nil},
		{"bytes after head ignored", crlf("GET / HTTP/1.1\nHost: a\n\nGARBAGE\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			n, err := ParseHead(tt.in, nil, &r)
			if err != nil || n == 0 {
				t.Fatalf("ParseHead = %d, %v; want success", n, err)
			}
			if want := strings.Index(string(tt.in), "\r\n\r\n") + 4; n != want {
				t.Fatalf("n = %d, want %d", n, want)
			}
			if tt.check != nil {
				tt.check(t, &r)
			}
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseHeadRejects(t *testing.T) {
	small := &Limits{MaxHeaderBytes: 200, MaxHeaderCount: 3, MaxHeaderNameBytes: 10, MaxHeaderValueBytes: 20, MaxBodyBytes: 100}
	tests := []struct {
		name   string
		in     []byte
		lim    *Limits
		status int
		limit  string
		reason string
	}{
		// Limits, reported before the head is complete.
		{"head over max-header-size-bytes without end of head", []byte("GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 9000)), &Limits{MaxHeaderValueBytes: -1}, 431, LimitHeaderBytes, ReasonHeadTooLarge},
		{"complete head over max-header-size-bytes", crlf("GET / HTTP/1.1\nHost: a\nX-Long: " + strings.Repeat("b", 150) + "\n\n"), &Limits{MaxHeaderBytes: 100, MaxHeaderValueBytes: -1}, 431, LimitHeaderBytes, ReasonHeadTooLarge},
		{"header count over max-header-count", crlf("GET / HTTP/1.1\nHost: a\nA: 1\nB: 2\nC: 3"), small, 431, LimitHeaderCount, ReasonTooManyHeaders},
		{"header name over max-header-name-bytes while incomplete", []byte("GET / HTTP/1.1\r\nHost: a\r\nXXXXXXXXXXX"), small, 431, LimitHeaderNameBytes, ReasonHeaderNameTooLong},
		{"header value over max-header-value-bytes while incomplete", []byte("GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 21)), small, 431, LimitHeaderValueBytes, ReasonHeaderValueTooLong},
		{"content length over max-body-size-bytes decided on header", []byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n"), &Limits{MaxBodyBytes: 100}, 413, LimitBodyBytes, ReasonBodyTooLarge},
		// Request line.
		{"empty line before request line", crlf("\nGET / HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonLeadingEmptyLine},
		{"invalid token char in method", crlf("G(T / HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidMethod},
		{"double space in request line", crlf("GET  / HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonMalformedRequestLine},
		{"missing version", crlf("GET /\nHost: a\n\n"), nil, 400, "", ReasonMalformedRequestLine},
		{"fragment in target", crlf("GET /a#b HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidTarget},
		{"non-ASCII in target", []byte("GET /\xc3\xbc HTTP/1.1\r\nHost: a\r\n\r\n"), nil, 400, "", ReasonInvalidTarget},
		{"invalid percent-encoding in path", crlf("GET /a%zz HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidPercent},
		{"invalid percent-encoding in query", crlf("GET /a?b=%4 HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidPercent},
		{"asterisk form for GET", crlf("GET * HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidTargetForm},
		{"authority form for GET", crlf("GET example.com:80 HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidTargetForm},
		{"connect with path", crlf("CONNECT /x HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidTargetForm},
		{"connect without port", crlf("CONNECT example.com HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidAuthority},
		{"absolute form with userinfo", crlf("GET http://u@a/ HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidAuthority},
		{"absolute form with empty host", crlf("GET http:///p HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidAuthority},
		{"absolute form other scheme", crlf("GET ftp://a/ HTTP/1.1\nHost: a\n\n"), nil, 400, "", ReasonInvalidTargetForm},
		{"lower-case protocol name", crlf("GET / http/1.1\nHost: a\n\n"), nil, 400, "", ReasonMalformedVersion},
		{"two-digit minor version", crlf("GET / HTTP/1.10\nHost: a\n\n"), nil, 400, "", ReasonMalformedVersion},
		{"HTTP/2.0 unsupported version", crlf("GET / HTTP/2.0\nHost: a\n\n"), nil, 505, "", ReasonUnsupportedVersion},
		{"HTTP/1.2 unsupported version", crlf("GET / HTTP/1.2\nHost: a\n\n"), nil, 505, "", ReasonUnsupportedVersion},
		{"HTTP/0.9 unsupported version", crlf("GET / HTTP/0.9\n\n"), nil, 505, "", ReasonUnsupportedVersion},
		// Line terminators and folding.
		{"bare LF after request line", []byte("GET / HTTP/1.1\nHost: a\r\n\r\n"), nil, 400, "", ReasonBareLF},
		{"bare LF after header", []byte("GET / HTTP/1.1\r\nHost: a\n\r\n"), nil, 400, "", ReasonBareLF},
		{"bare LF as end of head", []byte("GET / HTTP/1.1\r\nHost: a\r\n\n"), nil, 400, "", ReasonBareLF},
		{"bare CR after request line", []byte("GET / HTTP/1.1\rHost: a\r\n\r\n"), nil, 400, "", ReasonBareCR},
		{"bare CR inside value", []byte("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), nil, 400, "", ReasonBareCR},
		{"bare CR at end of head", []byte("GET / HTTP/1.1\r\nHost: a\r\n\rX"), nil, 400, "", ReasonBareCR},
		{"obs-fold continuation line", crlf("GET / HTTP/1.1\nHost: a\nX: a\n b\n\n"), nil, 400, "", ReasonObsFold},
		{"tab obs-fold continuation line", crlf("GET / HTTP/1.1\nHost: a\nX: a\n\tb\n\n"), nil, 400, "", ReasonObsFold},
		{"whitespace before first header", crlf("GET / HTTP/1.1\n Host: a\n\n"), nil, 400, "", ReasonObsFold},
		// Header syntax.
		{"space between header name and colon", crlf("GET / HTTP/1.1\nHost : a\n\n"), nil, 400, "", ReasonSpaceBeforeColon},
		{"tab between header name and colon", crlf("GET / HTTP/1.1\nHost\t: a\n\n"), nil, 400, "", ReasonSpaceBeforeColon},
		{"invalid token char in header name", crlf("GET / HTTP/1.1\nHost: a\nX(Y): 1\n\n"), nil, 400, "", ReasonInvalidHeaderName},
		{"empty header name", crlf("GET / HTTP/1.1\nHost: a\n: 1\n\n"), nil, 400, "", ReasonEmptyHeaderName},
		{"header line without colon", crlf("GET / HTTP/1.1\nHost: a\nNoColon\n\n"), nil, 400, "", ReasonMissingColon},
		{"control char in header value", []byte("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), nil, 400, "", ReasonInvalidHeaderValue},
		{"DEL in header value", []byte("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), nil, 400, "", ReasonInvalidHeaderValue},
		// Host.
		{"HTTP/1.1 without Host", crlf("GET / HTTP/1.1\nX: 1\n\n"), nil, 400, "", ReasonMissingHost},
		{"multiple Host headers", crlf("GET / HTTP/1.1\nHost: a\nhost: a\n\n"), nil, 400, "", ReasonMultipleHost},
		{"Host with space", crlf("GET / HTTP/1.1\nHost: a b\n\n"), nil, 400, "", ReasonInvalidHost},
		{"Host with slash", crlf("GET / HTTP/1.1\nHost: a/b\n\n"), nil, 400, "", ReasonInvalidHost},
		// Framing (request smuggling).
		{"content length and transfer encoding", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 3\nTransfer-Encoding: chunked\n\n"), nil, 400, "", ReasonCLAndTE},
		{"transfer encoding and content length", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n"), nil, 400, "", ReasonCLAndTE},
		{"multiple differing content length", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 4\n\n"), nil, 400, "", ReasonMultipleCL},
		{"content length equal value different bytes", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 3\nContent-Length: 03\n\n"), nil, 400, "", ReasonMultipleCL},
		{"content length list", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 3, 3\n\n"), nil, 400, "", ReasonInvalidCL},
		{"content length sign", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: +3\n\n"), nil, 400, "", ReasonInvalidCL},
		{"content length empty", crlf("POST / HTTP/1.1\nHost: a\nContent-Length:\n\n"), nil, 400, "", ReasonInvalidCL},
		{"content length overflow", crlf("POST / HTTP/1.1\nHost: a\nContent-Length: 9223372036854775808\n\n"), &Limits{MaxBodyBytes: -1}, 400, "", ReasonInvalidCL},
		{"transfer encoding gzip only", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n"), nil, 400, "", ReasonTENotChunked},
		{"transfer encoding chunked not final", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, gzip\n\n"), nil, 400, "", ReasonTENotChunked},
		{"transfer encoding chunked twice", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, chunked\n\n"), nil, 400, "", ReasonTENotChunked},
		{"transfer encoding empty list element", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: , chunked\n\n"), nil, 400, "", ReasonTENotChunked},
		{"transfer encoding gzip then chunked not implemented", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip, chunked\n\n"), nil, 501, "", ReasonTEUnsupported},
		{"transfer encoding in two fields", crlf("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n"), nil, 400, "", ReasonMultipleTE},
		{"transfer encoding in HTTP/1.0", crlf("POST / HTTP/1.0\nTransfer-Encoding: chunked\n\n"), nil, 400, "", ReasonTEHTTP10},
		{"multiple content encoding fields", crlf("POST / HTTP/1.1\nHost: a\nContent-Encoding: gzip\nContent-Encoding: br\n\n"), nil, 415, LimitContentEncoding, ReasonMultipleCE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "bytewise"} {
				var o outcome
				if mode == "whole" {
					o = parseWhole(tt.in, tt.lim)
				} else {
					o = parseSplit(tt.in, tt.lim, byteCuts(len(tt.in)))
				}
				if o.err == nil {
					t.Fatalf("%s: accepted (complete=%v), want %d %q", mode, o.complete, tt.status, tt.reason)
				}
				if o.err.Status != tt.status || o.err.Limit != tt.limit || o.err.Reason != tt.reason {
					t.Fatalf("%s: got %v, want status %d limit %q reason %q", mode, o.err, tt.status, tt.limit, tt.reason)
				}
				if tt.limit != "" && tt.limit != LimitContentEncoding && (o.err.Configured <= 0 || o.err.Actual <= o.err.Configured) {
					t.Errorf("%s: limit error without configured/actual: %+v", mode, o.err)
				}
			}
		})
	}
}

func TestParseHeadNeedsMore(t *testing.T) {
	full := crlf("GET /x HTTP/1.1\nHost: a\nX: y\n\n")
	for i := 0; i < len(full); i++ {
		var r Request
		n, err := ParseHead(full[:i], nil, &r)
		if n != 0 || err != nil {
			t.Fatalf("prefix %d: ParseHead = %d, %v; want need-more", i, n, err)
		}
	}
}

func TestHeadParserStickyErrorAndDone(t *testing.T) {
	var (
		p HeadParser
		r Request
	)
	p.Reset(nil, &r)
	if _, _, err := p.Feed([]byte("GET / HTTP/1.1\nHost")); err == nil {
		t.Fatal("want bare LF error")
	}
	if _, _, err := p.Feed([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err == nil {
		t.Fatal("error must be sticky until Reset")
	}
	p.Reset(nil, &r)
	in := crlf("GET / HTTP/1.1\nHost: a\n\n")
	n, done, err := p.Feed(in)
	if !done || err != nil || n != len(in) {
		t.Fatalf("Feed = %d, %v, %v", n, done, err)
	}
	if n2, done2, _ := p.Feed(in); n2 != n || !done2 {
		t.Fatal("Feed after done must repeat the result")
	}
}

func TestLimitErrorIsAndZeroLimits(t *testing.T) {
	var r Request
	_, err := ParseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("a", 9000)), &Limits{}, &r)
	if !errors.Is(err, &LimitError{Status: 431}) {
		t.Fatalf("zero Limits must take defaults and refuse with 431, got %v", err)
	}
	if errors.Is(err, &LimitError{Status: 413}) {
		t.Fatal("Is must compare Status")
	}
	if err.Error() == "" {
		t.Fatal("empty Error()")
	}
	// Negative disables: a 9000-byte head passes.
	_, err = ParseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("a", 9000)+"\r\n\r\n"),
		&Limits{MaxHeaderBytes: -1, MaxHeaderValueBytes: -1}, &r)
	if err != nil {
		t.Fatalf("negative limits must disable: %v", err)
	}
}

func TestRequestReuse(t *testing.T) {
	var r Request
	in1 := crlf("POST /first?q HTTP/1.1\nHost: one\nContent-Length: 3\nConnection: close\n\n")
	in2 := crlf("GET /second HTTP/1.0\n\n")
	if _, err := ParseHead(in1, nil, &r); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHead(in2, nil, &r); err != nil {
		t.Fatal(err)
	}
	// Nothing of the first request may survive.
	eq(t, string(r.Path), "/second")
	eq(t, string(r.RawQuery), "")
	eq(t, string(r.Host), "")
	eq(t, r.ContentLength, int64(-1))
	eq(t, len(r.Headers), 0)
	// Fields must not alias the caller's buffer.
	buf := crlf("GET /alias HTTP/1.1\nHost: h\n\n")
	if _, err := ParseHead(buf, nil, &r); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'X'
	}
	eq(t, string(r.Path), "/alias")
	eq(t, r.Header("host"), "h")
}

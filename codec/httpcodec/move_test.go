package httpcodec

import (
	"testing"
)

// clobber is parsed into the source parser and request after a hand-over,
// as another connection's head would be on the same event loop.
var clobber = crlf("PATCH /elsewhere/x?q=1&r=2 HTTP/1.1\nHost: other.example:81\nA: b\nContent-Length: 0\nC: dddddddddddddddd\nE: f\n\n")

// whole parses input in one piece: what any split must reproduce.
func whole(input []byte, lim *Limits) string {
	var o outcome
	n, err := ParseHead(input, lim, &o.req)
	o.err, o.consumed, o.complete = asLimitError(err), n, n > 0
	return o.key()
}

var moveInputs = []struct {
	name  string
	input []byte
	lim   *Limits
}{
	{"headers and query", crlf("GET /a/b%20c?x=1&y=%41 HTTP/1.1\nHost: h.example:8080\nX-One:  v1 \nX-Two: v2\nContent-Length: 3\n\n"), nil},
	{"absolute form, chunked", crlf("POST http://h.example/p?q HTTP/1.1\nHost: h.example\nConnection: keep-alive\nTransfer-Encoding: chunked\n\n"), nil},
	{"Content-Encoding and Expect", crlf("PUT /t HTTP/1.1\nHost: x\nContent-Encoding: GZIP\nExpect: 100-continue\nContent-Length: 10\n\n"), nil},
	{"too many headers after the split", crlf("GET / HTTP/1.1\nHost: x\nA: 1\nB: 2\nC: 3\n\n"), &Limits{MaxHeaderCount: 2}},
	{"bad byte late in the head", crlf("GET / HTTP/1.1\nHost: x\nA: 1\nB\x01: 2\n\n"), nil},
	{"conflicting Content-Length", crlf("POST / HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 4\n\n"), nil},
}

func TestMoveToResumesAHeadSplitAnywhere(t *testing.T) {
	for _, tt := range moveInputs {
		t.Run(tt.name, func(t *testing.T) {
			want := whole(tt.input, tt.lim)
			for k := 1; k < len(tt.input); k++ {
				var (
					shared, moved HeadParser
					sharedReq     Request
					own           Request
				)
				shared.Reset(tt.lim, &sharedReq)
				if _, done, err := shared.Feed(tt.input[:k]); done || err != nil {
					continue // refused or complete before the split: nothing to move
				}
				shared.MoveTo(&moved, &own)
				// The loop's parser and request go on with someone else's head.
				shared.Reset(nil, &sharedReq)
				if _, done, err := shared.Feed(clobber); !done || err != nil {
					t.Fatalf("clobber head: done=%v err=%v", done, err)
				}
				var o outcome
				n, done, err := moved.Feed(tt.input)
				o.err, o.consumed, o.complete = asLimitError(err), n, done
				o.req = own
				if got := o.key(); got != want {
					t.Fatalf("split at %d:\n got  %s\n want %s", k, got, want)
				}
			}
		})
	}
}

func TestCopyToSharesNoMemoryWithTheSource(t *testing.T) {
	for _, tt := range moveInputs {
		t.Run(tt.name, func(t *testing.T) {
			var src Request
			n, err := ParseHead(tt.input, tt.lim, &src)
			if err != nil || n == 0 {
				t.Skip("not a complete head")
			}
			want := outcome{complete: true, consumed: n, req: src}.key()
			// dst held a longer request before: its buffers are reused.
			var dst Request
			if _, err := ParseHead(clobber, nil, &dst); err != nil {
				t.Fatal(err)
			}
			src.CopyTo(&dst)
			if _, err := ParseHead(clobber, nil, &src); err != nil {
				t.Fatal(err)
			}
			if got := (outcome{complete: true, consumed: n, req: dst}).key(); got != want {
				t.Fatalf("copy changed with its source:\n got  %s\n want %s", got, want)
			}
			// And the copy of a copy.
			var again Request
			dst.CopyTo(&again)
			for i := range dst.raw {
				dst.raw[i] = 'z'
			}
			if got := (outcome{complete: true, consumed: n, req: again}).key(); got != want {
				t.Fatalf("copy of a copy:\n got  %s\n want %s", got, want)
			}
		})
	}
}

package httpcodec

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// deliberateStrictness lists every reason for which httpcodec may refuse a
// request that net/http's http.ReadRequest accepts, with the rationale. A
// refusal of something net/http accepts for any reason not listed here is a
// bug (in either direction of intent) and fails the differential tests.
// Configured limits (LimitError.Limit != "") are always allowed to differ:
// ReadRequest has none.
var deliberateStrictness = map[string]string{
	ReasonBareLF:             "RFC 9112 2.2 lets a recipient accept bare LF; accepting it enables smuggling against CRLF-only intermediaries",
	ReasonBareCR:             "RFC 9112 2.2: a bare CR must be rejected or replaced; we reject",
	ReasonObsFold:            "RFC 9112 5.2: obs-fold may be rejected with 400; folding has been used for smuggling",
	ReasonInvalidTarget:      "request-target limited to RFC 3986 characters (no fragment, no raw non-ASCII, no '{', '\"', ...)",
	ReasonInvalidPercent:     "percent-encoding validated in the query too, not only the path",
	ReasonInvalidTargetForm:  "asterisk-form only for OPTIONS, authority-form only (and only) for CONNECT, absolute-form only http/https",
	ReasonInvalidAuthority:   "absolute-form authority without userinfo, IP literal or empty host",
	ReasonUnsupportedVersion: "only HTTP/1.0 and HTTP/1.1 are served (505); ReadRequest parses any HTTP/d.d",
	ReasonMissingHost:        "RFC 9112 3.2: HTTP/1.1 without Host is 400 (net/http's Server checks this after ReadRequest)",
	ReasonInvalidHost:        "Host limited to reg-name/IP-literal/port bytes (net/http's Server checks this after ReadRequest)",
	ReasonCLAndTE:            "RFC 9112 6.1 allows treating Content-Length with Transfer-Encoding as an error; net/http drops Content-Length",
	ReasonTEHTTP10:           "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; net/http ignores the header",
	ReasonMultipleCE:         "only one Content-Encoding field, decoded by NewLimitedDecoder (415)",
	ReasonChunkExtension:     "chunk extensions limited to visible bytes and whitespace",
	ReasonSpaceBeforeColon:   "RFC 9112 5.1 requires 400; net/http keeps \"Name \" (with the space) as a distinct key",
}

// netResult is what net/http makes of an input.
type netResult struct {
	req      *http.Request
	body     []byte
	consumed int
	err      error
}

// readNet parses input with http.ReadRequest and reads the body.
func readNet(input []byte) netResult {
	rd := bytes.NewReader(input)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	var res netResult
	if err == nil {
		res.body, err = io.ReadAll(req.Body)
		res.req = req
	}
	res.err = err
	res.consumed = len(input) - rd.Len() - br.Buffered()
	return res
}

// checkDifferential parses input with httpcodec and net/http and fails t
// when they disagree in a way not covered by deliberateStrictness.
func checkDifferential(t testing.TB, input []byte) outcome {
	t.Helper()
	ours := parseWhole(input, nil)
	nr := readNet(input)
	switch {
	case ours.err != nil:
		if nr.err == nil && ours.err.Limit == "" {
			if _, ok := deliberateStrictness[ours.err.Reason]; !ok {
				t.Fatalf("httpcodec refused (%v) what net/http accepts, and %q is not a deliberate strictness\ninput: %q",
					ours.err, ours.err.Reason, input)
			}
		}
	case !ours.complete:
		if nr.err == nil {
			t.Fatalf("httpcodec wants more bytes, net/http accepted\ninput: %q", input)
		}
	default:
		if nr.err != nil {
			t.Fatalf("httpcodec accepted, net/http refused: %v\ninput: %q", nr.err, input)
		}
		if d := compareNet(&ours, &nr); d != "" {
			t.Fatalf("httpcodec and net/http disagree: %s\ninput: %q", d, input)
		}
	}
	return ours
}

// compareNet describes the first difference between an accepted outcome and
// net/http's reading, or returns "".
func compareNet(o *outcome, nr *netResult) string {
	r, n := &o.req, nr.req
	if r.Method != n.Method {
		return fmt.Sprintf("method %q vs %q", r.Method, n.Method)
	}
	path, err := url.PathUnescape(string(r.Path))
	if err != nil || path != n.URL.Path {
		return fmt.Sprintf("path %q (%v) vs %q", r.Path, err, n.URL.Path)
	}
	if string(r.RawQuery) != n.URL.RawQuery {
		return fmt.Sprintf("query %q vs %q", r.RawQuery, n.URL.RawQuery)
	}
	if string(r.Host) != n.Host {
		return fmt.Sprintf("host %q vs %q", r.Host, n.Host)
	}
	wantCL := r.ContentLength
	switch {
	case r.Chunked:
		wantCL = -1
	case wantCL < 0:
		wantCL = 0
	}
	if wantCL != n.ContentLength {
		return fmt.Sprintf("content length %d (chunked %v) vs %d", r.ContentLength, r.Chunked, n.ContentLength)
	}
	if netChunked := len(n.TransferEncoding) == 1 && n.TransferEncoding[0] == "chunked"; r.Chunked != netChunked {
		return fmt.Sprintf("chunked %v vs %q", r.Chunked, n.TransferEncoding)
	}
	if r.KeepAlive == n.Close {
		return fmt.Sprintf("keep-alive %v vs close %v", r.KeepAlive, n.Close)
	}
	if r.ProtoMajor != n.ProtoMajor || r.ProtoMinor != n.ProtoMinor {
		return fmt.Sprintf("version %d.%d vs %d.%d", r.ProtoMajor, r.ProtoMinor, n.ProtoMajor, n.ProtoMinor)
	}
	for k, vs := range n.Header {
		if got := r.HeaderBytes(k); got == nil || string(got) != vs[0] {
			return fmt.Sprintf("header %q: %q vs %q", k, got, vs[0])
		}
	}
	if !bytes.Equal(o.body, nr.body) {
		return fmt.Sprintf("body %q vs %q", o.body, nr.body)
	}
	if o.consumed != nr.consumed {
		return fmt.Sprintf("consumed %d vs %d", o.consumed, nr.consumed)
	}
	return ""
}

// checkIncremental fails t unless feeding input whole, byte by byte and in
// random pieces gives the same outcome.
func checkIncremental(t testing.TB, input []byte, rng *rand.Rand) {
	t.Helper()
	want := parseWhole(input, nil).key()
	splits := [][]int{byteCuts(len(input))}
	for range 3 {
		splits = append(splits, randomCuts(rng, len(input), 1+rng.IntN(8)))
	}
	for _, cuts := range splits {
		if got := parseSplit(input, nil, cuts).key(); got != want {
			t.Fatalf("split %v changes the outcome:\n got %s\nwant %s\ninput: %q", cuts, got, want, input)
		}
	}
}

// pick returns a random element of xs.
func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// chance reports true with probability p.
func chance(rng *rand.Rand, p float64) bool { return rng.Float64() < p }

// randomCase flips the case of letters in s at random.
func randomCase(rng *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if chance(rng, 0.3) {
			switch {
			case 'a' <= c && c <= 'z':
				b[i] = c - 32
			case 'A' <= c && c <= 'Z':
				b[i] = c + 32
			}
		}
	}
	return string(b)
}

// genRequest generates a request, usually well-formed, sometimes with one
// of the faults the codec must refuse.
func genRequest(rng *rand.Rand) []byte {
	var b bytes.Buffer
	eol := func() string {
		switch {
		case chance(rng, 0.02):
			return "\n"
		case chance(rng, 0.005):
			return "\r"
		}
		return "\r\n"
	}
	method := pick(rng, "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "M-SEARCH")
	if chance(rng, 0.05) {
		method = pick(rng, "CONNECT", "get", "GE(T", "", randomCase(rng, method))
	}
	target := pick(rng, "/", "/a/b", "/a/b?x=1&y=2", "/p%20q", "/p%2Fq?r=%41", "http://example.com/x?y", "HTTP://Ex.com:80",
		"https://a.b/c", "/a?b=c?d", "//double", "/a;b=c,d", "/a@b:c", "/~user/!$&'()*+", "/a?")
	if chance(rng, 0.1) {
		target = pick(rng, "/%zz", "/a?q=%zz", "/a#frag", "*", "http://u@h/", "http:///p", "ftp://a/", "example.com:443",
			"/a b", "/\xc3\xbc", "/{x}", "/a|b")
	}
	switch {
	case method == "OPTIONS" && chance(rng, 0.3):
		target = "*"
	case method == "CONNECT" && chance(rng, 0.7):
		target = pick(rng, "example.com:443", "a:1", "example.com")
	}
	version := pick(rng, "HTTP/1.1", "HTTP/1.1", "HTTP/1.0")
	if chance(rng, 0.05) {
		version = pick(rng, "HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/1.10")
	}
	sep := " "
	if chance(rng, 0.02) {
		sep = "  "
	}
	if chance(rng, 0.01) {
		b.WriteString("\r\n")
	}
	b.WriteString(method + sep + target + " " + version + eol())

	body := make([]byte, rng.IntN(48))
	for i := range body {
		body[i] = pick(rng, byte('a'), 'z', '0', '\r', '\n', ' ', 0, 0xff, '\t')
	}
	var headers []string
	if version != "HTTP/1.0" || chance(rng, 0.3) {
		if chance(rng, 0.95) {
			h := pick(rng, "Host: example.com", "host: a:8080", "HOST: [::1]:80", "Host:", "Host: ex-ample.org")
			if chance(rng, 0.05) {
				h = pick(rng, "Host: a b", "Host: a/b", "Host: x\xff")
			}
			headers = append(headers, h)
		}
	}
	if chance(rng, 0.03) {
		headers = append(headers, "Host: dup")
	}
	pool := []string{"User-Agent: gen/1.0", "Accept: */*", "X-Trim:   spaced out   ", "X-Tab:\tv\t", "X-Obs: caf\xe9",
		"X-Empty:", "x-lower: v", "X-Colon: a:b", "Connection: close", "Connection: keep-alive", "connection: Keep-Alive, foo",
		"Connection: CLOSE", "Connection: upgrade", "Expect: 100-continue", "Content-Encoding: gzip", "Cookie: a=b; c=d",
		"Content-Type: text/plain; charset=utf-8", "Content-Encoding: br"}
	faults := []string{"X-Ctl: a\x01b", "Bad Name: v", "Bad(Name): v", "X-Sp : v", ": nameless", "NoColon", "X-Del: \x7f"}
	for range rng.IntN(8) {
		h := pick(rng, pool...)
		if chance(rng, 0.02) {
			h = pick(rng, faults...)
		}
		headers = append(headers, h)
	}

	chunked := false
	switch x := rng.Float64(); {
	case x < 0.35:
		body = nil
	case x < 0.62:
		headers = append(headers, fmt.Sprintf("Content-Length: %d", len(body)))
	case x < 0.89:
		if version == "HTTP/1.0" && chance(rng, 0.9) {
			body = nil
			break
		}
		headers = append(headers, "Transfer-Encoding: chunked")
		chunked = true
	case x < 0.91:
		headers = append(headers, fmt.Sprintf("Content-Length: %d", len(body)), "Transfer-Encoding: chunked")
		chunked = true
	case x < 0.93:
		headers = append(headers, fmt.Sprintf("Content-Length: %d", len(body)), fmt.Sprintf("content-length: %d", len(body)))
	case x < 0.95:
		headers = append(headers, fmt.Sprintf("Content-Length: %d", len(body)), fmt.Sprintf("Content-Length: %d", len(body)+1))
	case x < 0.96:
		headers = append(headers, "Transfer-Encoding: gzip, chunked")
		chunked = true
	case x < 0.97:
		headers = append(headers, "Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
		chunked = true
	case x < 0.98:
		headers = append(headers, pick(rng, "Content-Length: +1", "Content-Length: 1,1", "Content-Length:", "Content-Length: 0x10"))
	default:
		headers = append(headers, fmt.Sprintf("Content-Length: %d", len(body)+5)) // truncated body
	}
	rng.Shuffle(len(headers), func(i, j int) { headers[i], headers[j] = headers[j], headers[i] })
	for _, h := range headers {
		if chance(rng, 0.1) {
			if name, value, ok := strings.Cut(h, ":"); ok {
				h = randomCase(rng, name) + ":" + value
			}
		}
		b.WriteString(h + eol())
		if chance(rng, 0.02) {
			b.WriteString(pick(rng, " folded", "\tfolded") + eol())
		}
	}
	b.WriteString(eol())

	if chunked {
		writeChunked(&b, rng, body)
	} else {
		b.Write(body)
	}
	if chance(rng, 0.2) {
		b.WriteString("GET /next HTTP/1.1\r\nHost: n\r\n\r\n")
	}
	return b.Bytes()
}

// writeChunked writes body in chunked framing, with optional extensions,
// trailers and, rarely, faults.
func writeChunked(b *bytes.Buffer, rng *rand.Rand, body []byte) {
	eol := func() string {
		if chance(rng, 0.01) {
			return pick(rng, "\n", "\r")
		}
		return "\r\n"
	}
	for len(body) > 0 {
		n := 1 + rng.IntN(len(body))
		size := fmt.Sprintf("%x", n)
		switch {
		case chance(rng, 0.2):
			size = strings.ToUpper(fmt.Sprintf("%03x", n))
		case chance(rng, 0.01):
			size = pick(rng, "-1", "g", "", "00000000000000001")
		}
		b.WriteString(size)
		switch {
		case chance(rng, 0.1):
			b.WriteString(pick(rng, ";a=b", ";ext", `;q="x y"`, ";x=\x01"))
		case chance(rng, 0.05):
			b.WriteString(pick(rng, " ", "\t ", " ;x"))
		}
		b.WriteString(eol())
		data := body[:n]
		if chance(rng, 0.01) {
			data = append(append([]byte(nil), data...), 'X') // too long
		}
		b.Write(data)
		b.WriteString(eol())
		body = body[n:]
	}
	b.WriteString("0" + eol())
	if chance(rng, 0.15) {
		b.WriteString(pick(rng, "X-Trailer: v", "Checksum: abc", "X-Fold: a\r\n b", "Bad Trailer: x", "X-T : v") + eol())
	}
	b.WriteString(eol())
}

func TestDifferentialGenerated(t *testing.T) {
	t.Parallel() // pure computation, nothing process-wide: runs beside TestLimitedDecoderRoundTrip
	rng := rand.New(rand.NewPCG(7, 11))
	accepted, refused, strict := 0, 0, map[string]int{}
	for range 20000 {
		in := genRequest(rng)
		o := checkDifferential(t, in)
		checkIncremental(t, in, rng)
		switch {
		case o.complete:
			accepted++
		case o.err != nil:
			refused++
			if readNet(in).err == nil {
				strict[o.err.Reason]++
			}
		}
	}
	t.Logf("accepted %d, refused %d; refused but accepted by net/http: %v", accepted, refused, strict)
	if accepted < 5000 {
		t.Fatalf("generator too faulty: only %d accepted", accepted)
	}
}

func TestDeliberateStrictnessCases(t *testing.T) {
	// Each documented difference, shown on one input net/http accepts.
	tests := []struct {
		name   string
		in     string
		reason string
	}{
		{"bare LF line terminators", "GET / HTTP/1.1\nHost: a\n\n", ReasonBareLF},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", ReasonObsFold},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ReasonInvalidTarget},
		{"percent in query", "GET /a?%zz HTTP/1.1\r\nHost: a\r\n\r\n", ReasonInvalidPercent},
		{"asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ReasonInvalidTargetForm},
		{"userinfo in absolute form", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", ReasonInvalidAuthority},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", ReasonUnsupportedVersion},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", ReasonMissingHost},
		{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ReasonInvalidHost},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ReasonCLAndTE},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ReasonTEHTTP10},
		{"two Content-Encoding fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Encoding: br\r\n\r\n", ReasonMultipleCE},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-Sp : v\r\n\r\n", ReasonSpaceBeforeColon},
		{"control byte in chunk extension", chunkedReq + "1;\x01\r\nx\r\n0\r\n\r\n", ReasonChunkExtension},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := deliberateStrictness[tt.reason]; !ok {
				t.Fatalf("%q missing from deliberateStrictness", tt.reason)
			}
			if nr := readNet([]byte(tt.in)); nr.err != nil {
				t.Fatalf("net/http refuses too (%v): not a difference", nr.err)
			}
			o := parseWhole([]byte(tt.in), nil)
			if o.err == nil || o.err.Reason != tt.reason {
				t.Fatalf("got %+v, want reason %q", o.err, tt.reason)
			}
		})
	}
}

// fuzzSeeds are hand-written seeds shared by the fuzz targets.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	chunkedReq + "3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
	"GET http://a:1/b?c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
}

func FuzzParseHead(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	rng := rand.New(rand.NewPCG(3, 5))
	for range 40 {
		f.Add(genRequest(rng))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDifferential(t, in)
		checkIncremental(t, in, rand.New(rand.NewPCG(uint64(len(in)), 1)))
	})
}

func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{"0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "a;ext=1\r\n0123456789\r\n0\r\nX: y\r\n\r\n",
		"1 \r\nx\r\n0\r\n\r\n", "1\nx\r\n0\r\n\r\n", "00000000000000001\r\nx\r\n0\r\n\r\n", "2\r\nxyz\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte(chunkedReq), body...)
		checkDifferential(t, in)
		checkIncremental(t, in, rand.New(rand.NewPCG(uint64(len(in)), 2)))
	})
}

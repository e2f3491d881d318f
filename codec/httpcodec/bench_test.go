package httpcodec

import (
	"strings"
	"testing"
)

// typicalGET is a GET with 8 headers, as a browser or SDK sends it.
var typicalGET = []byte("GET /api/v1/topics/orders/records?offset=42&limit=100 HTTP/1.1\r\n" +
	"Host: floodgate.example.com:8080\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmbG9vZGdhdGUifQ.c2lnbmF0dXJl\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Request-Id: 7f1c2a9e-1f0b-4a55-9d43-3c2f5b8a6e10\r\n" +
	"\r\n")

// chunkedPOST is a POST with a 4 KiB body in 16 chunks.
var chunkedPOST = func() []byte {
	var b strings.Builder
	b.WriteString(chunkedReq)
	for range 16 {
		b.WriteString("100\r\n" + strings.Repeat("x", 256) + "\r\n")
	}
	b.WriteString("0\r\n\r\n")
	return []byte(b.String())
}()

func BenchmarkParseHead(b *testing.B) {
	var (
		p HeadParser
		r Request
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGET)))
	for b.Loop() {
		p.Reset(nil, &r)
		if _, done, err := p.Feed(typicalGET); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}

func BenchmarkParseHeadFunc(b *testing.B) {
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGET)))
	for b.Loop() {
		if _, err := ParseHead(typicalGET, nil, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeadIncremental(b *testing.B) {
	// The head arrives in 64-byte reads; the parser resumes each time.
	var (
		p HeadParser
		r Request
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalGET)))
	for b.Loop() {
		p.Reset(nil, &r)
		for end := 64; ; end += 64 {
			end = min(end, len(typicalGET))
			if _, done, err := p.Feed(typicalGET[:end]); done || err != nil {
				break
			}
		}
	}
}

func BenchmarkBodyChunked(b *testing.B) {
	var (
		r   Request
		d   BodyDecoder
		dst = make([]byte, 0, 8192)
	)
	n, err := ParseHead(chunkedPOST, nil, &r)
	if err != nil {
		b.Fatal(err)
	}
	body := chunkedPOST[n:]
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		d.Reset(&r, nil)
		if _, _, done, err := d.Feed(body, dst[:0]); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}

func TestHotPathZeroAlloc(t *testing.T) {
	var (
		p   HeadParser
		r   Request
		d   BodyDecoder
		dst = make([]byte, 0, 8192)
	)
	tests := []struct {
		name string
		fn   func()
	}{
		{"HeadParser.Feed typical GET", func() { p.Reset(nil, &r); p.Feed(typicalGET) }},
		{"ParseHead typical GET", func() { ParseHead(typicalGET, nil, &r) }},
		{"BodyDecoder.Feed chunked", func() {
			n, _ := ParseHead(chunkedPOST, nil, &r)
			d.Reset(&r, nil)
			d.Feed(chunkedPOST[n:], dst[:0])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn() // warm up the reused buffers
			if a := testing.AllocsPerRun(100, tt.fn); a != 0 {
				t.Fatalf("%v allocs per run, want 0", a)
			}
		})
	}
}

package httpcodec

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// RatioFloor is the decompressed size below which the decompression ratio
// is not checked, so that small, highly compressible bodies are accepted.
const RatioFloor = 64 << 10

// ZstdMaxWindow is the largest zstd window (and so decoder history memory)
// accepted: 8 MiB, the limit RFC 9659 sets for the "zstd" content coding.
const ZstdMaxWindow = 8 << 20

// maxStep bounds one underlying Read, so limits are checked at least every
// maxStep decompressed bytes whatever buffer the caller passes.
const maxStep = 32 << 10

// Decoder state, besides the output, that one decoder of each coding may
// allocate: zstd is capped at ZstdMaxWindow (lowmem, one goroutine),
// brotli's ring buffer at its largest window (16 MiB, RFC 7932), DEFLATE
// (gzip, deflate) at a 32 KiB window plus its Huffman tables. With the
// output capped at maxDecompressed by NewLimitedDecoder, one body's worst
// case is maxDecompressed (plus the growth slack of its caller's buffer)
// and DecoderState(encoding).
const (
	zstdState    = ZstdMaxWindow + 1<<20
	brotliState  = 16<<20 + 1<<20
	deflateState = 64 << 10
)

// DecoderState returns the most memory a decoder of the content coding
// encoding holds besides its output, for callers that charge it to a
// memory budget (0 for identity and unknown codings, which allocate none).
func DecoderState(encoding string) int64 {
	switch internCoding(trimOWS([]byte(encoding))) {
	case "gzip", "x-gzip", "deflate":
		return deflateState
	case "zstd":
		return zstdState
	case "br":
		return brotliState
	}
	return 0
}

// NewLimitedDecoder returns a reader of the decoded form of src, which is
// encoded with the content coding encoding ("gzip" or "x-gzip", "deflate",
// "zstd", "br", "identity" or ""; case-insensitive). "deflate" is the
// zlib format (RFC 9110); raw DEFLATE is accepted too, detected by the
// absence of a zlib header.
//
// Reading fails with a *LimitError (413) as soon as more than
// maxDecompressed bytes come out (Limit "max-decompressed-size-bytes"), or,
// once more than RatioFloor bytes came out, as soon as decompressed bytes
// exceed maxRatio times the compressed bytes read from src so far (Limit
// "max-decompression-ratio"). A non-positive maxDecompressed or maxRatio
// disables that check. An unknown coding, or a list of codings, fails at
// once with a *LimitError with Status 415. Corrupt input fails with a
// wrapped decoder error.
//
// Close releases the decoder; it does not close src.
func NewLimitedDecoder(encoding string, src io.Reader, maxDecompressed int64, maxRatio float64) (io.ReadCloser, error) {
	enc := internCoding(trimOWS([]byte(encoding)))
	cr := &countingReader{br: bufio.NewReaderSize(src, 4096)}
	lr := &limitedReader{src: cr, maxOut: maxDecompressed, maxRatio: maxRatio, enc: enc}
	switch enc {
	case "", "identity":
		lr.enc = "identity"
		lr.r = cr
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return nil, fmt.Errorf("httpcodec: %s header: %w", enc, err)
		}
		lr.r, lr.close = zr, zr.Close
	case "deflate":
		if h, err := cr.br.Peek(2); err == nil && isZlibHeader(h[0], h[1]) {
			zr, err := zlib.NewReader(cr)
			if err != nil {
				return nil, fmt.Errorf("httpcodec: deflate header: %w", err)
			}
			lr.r, lr.close = zr, zr.Close
		} else {
			fr := flate.NewReader(cr)
			lr.r, lr.close = fr, fr.Close
		}
	case "zstd":
		zr, err := zstd.NewReader(cr,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(ZstdMaxWindow),
			zstd.WithDecoderMaxMemory(ZstdMaxWindow))
		if err != nil {
			return nil, fmt.Errorf("httpcodec: zstd: %w", err)
		}
		lr.r = zr
		lr.close = func() error { zr.Close(); return nil }
	case "br":
		lr.r = brotli.NewReader(cr)
	default:
		return nil, &LimitError{Limit: LimitContentEncoding, Status: StatusUnsupportedMediaType, Reason: ReasonUnsupportedEncoding}
	}
	return lr, nil
}

// isZlibHeader reports whether b0 b1 is a valid zlib (RFC 1950) header
// announcing DEFLATE with a window of at most 32 KiB.
func isZlibHeader(b0, b1 byte) bool {
	return b0&0x0f == 8 && b0>>4 <= 7 && (uint16(b0)<<8|uint16(b1))%31 == 0
}

// countingReader buffers src and counts the bytes handed to the decoder.
// It implements io.ByteReader, so the DEFLATE-based decoders use it as is
// instead of wrapping it in a read-ahead buffer of their own: the count is
// then the compressed bytes actually consumed, which keeps the ratio check
// exact.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

// Read implements io.Reader.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadByte implements io.ByteReader.
func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// limitedReader enforces the size and ratio limits on a decoder's output.
type limitedReader struct {
	r        io.Reader
	close    func() error
	src      *countingReader
	enc      string
	out      int64
	maxOut   int64
	maxRatio float64
	err      error
}

// Read implements io.Reader.
func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) > maxStep {
		p = p[:maxStep]
	}
	if l.maxOut > 0 {
		// Ask for one byte past the limit so crossing it is detected.
		if rem := l.maxOut - l.out + 1; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := l.r.Read(p)
	l.out += int64(n)
	if l.maxOut > 0 && l.out > l.maxOut {
		n -= int(l.out - l.maxOut)
		l.err = exceeded(StatusRequestEntityTooLarge, LimitDecompressedBytes, ReasonDecompressedTooLarge, l.maxOut, l.out)
		l.out = l.maxOut
		return n, l.err
	}
	if l.maxRatio > 0 && l.out > RatioFloor && float64(l.out) > l.maxRatio*float64(l.src.n) {
		ratio := l.out
		if l.src.n > 0 {
			ratio = l.out / l.src.n
		}
		l.err = exceeded(StatusRequestEntityTooLarge, LimitDecompressionRatio, ReasonRatioTooHigh, int64(l.maxRatio), ratio)
		return n, l.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		l.err = fmt.Errorf("httpcodec: decoding %s body: %w", l.enc, err)
		return n, l.err
	}
	return n, err
}

// Close implements io.Closer.
func (l *limitedReader) Close() error {
	if l.close == nil {
		return nil
	}
	if err := l.close(); err != nil {
		return fmt.Errorf("httpcodec: closing %s decoder: %w", l.enc, err)
	}
	return nil
}

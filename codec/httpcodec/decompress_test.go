package httpcodec

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// encode compresses p with the named coding ("deflate-raw" for headerless
// DEFLATE).
func encode(t testing.TB, coding string, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch coding {
	case "gzip", "x-gzip":
		w, err = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	case "deflate":
		w, err = zlib.NewWriterLevel(&buf, zlib.BestCompression)
	case "deflate-raw":
		w, err = flate.NewWriter(&buf, flate.BestCompression)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	case "br":
		w = brotli.NewWriterLevel(&buf, 5)
	case "identity", "":
		return append([]byte(nil), p...)
	default:
		t.Fatalf("no encoder for %q", coding)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// textish returns n bytes of moderately compressible data.
func textish(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"floodgate ", "kafka ", "http ", "codec ", "limit ", "\n", "0123456789 "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(4) == 0 {
			b.WriteByte(byte('a' + rng.IntN(26)))
		}
	}
	return b.Bytes()[:n]
}

func TestLimitedDecoderRoundTrip(t *testing.T) {
	t.Parallel() // pure computation, nothing process-wide: runs beside TestDifferentialGenerated
	payload := textish(300 << 10)
	for _, coding := range []string{"gzip", "x-gzip", "deflate", "deflate-raw", "zstd", "br", "identity", ""} {
		t.Run("coding "+coding, func(t *testing.T) {
			enc := encode(t, coding, payload)
			name := coding
			if coding == "deflate-raw" {
				name = "deflate"
			}
			for _, tc := range []struct {
				name    string
				max     int64
				wantErr string
			}{
				{"unlimited", 0, ""},
				{"exactly at max-decompressed-size-bytes", int64(len(payload)), ""},
				{"one byte over max-decompressed-size-bytes", int64(len(payload)) - 1, LimitDecompressedBytes},
			} {
				rc, err := NewLimitedDecoder(" "+name+" ", bytes.NewReader(enc), tc.max, 50)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				got, err := io.ReadAll(rc)
				if cerr := rc.Close(); cerr != nil {
					t.Fatalf("%s: Close: %v", tc.name, cerr)
				}
				if tc.wantErr == "" {
					if err != nil || !bytes.Equal(got, payload) {
						t.Fatalf("%s: err=%v, equal=%v", tc.name, err, bytes.Equal(got, payload))
					}
					continue
				}
				var le *LimitError
				if !errors.As(err, &le) || le.Limit != tc.wantErr || le.Status != 413 {
					t.Fatalf("%s: err = %v, want %s", tc.name, err, tc.wantErr)
				}
				if int64(len(got)) != tc.max {
					t.Fatalf("%s: read %d bytes before the error, want exactly %d", tc.name, len(got), tc.max)
				}
			}
		})
	}
}

func TestLimitedDecoderRefusals(t *testing.T) {
	tests := []struct {
		name     string
		encoding string
		src      []byte
		status   int
		limit    string
		wrapped  bool // a decoder error, not a LimitError
	}{
		{"unknown encoding is 415", "compress", nil, 415, LimitContentEncoding, false},
		{"list of encodings is 415", "gzip, br", nil, 415, LimitContentEncoding, false},
		{"corrupt gzip header", "gzip", []byte("not gzip at all"), 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := NewLimitedDecoder(tt.encoding, bytes.NewReader(tt.src), 1<<20, 100)
			if err == nil {
				_, err = io.ReadAll(rc)
			}
			if err == nil {
				t.Fatal("no error")
			}
			var le *LimitError
			if tt.wrapped {
				if errors.As(err, &le) {
					t.Fatalf("corrupt input must not be a LimitError: %v", err)
				}
				return
			}
			if !errors.As(err, &le) || le.Status != tt.status || le.Limit != tt.limit {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestLimitedDecoderCorruptBodyWrapped(t *testing.T) {
	enc := encode(t, "zstd", textish(100<<10))
	enc[len(enc)/2] ^= 0xff
	rc, err := NewLimitedDecoder("zstd", bytes.NewReader(enc), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("corrupt zstd accepted")
	}
}

func TestLimitedDecoderRatioFloorAcceptsSmallBodies(t *testing.T) {
	zeros := make([]byte, RatioFloor) // compresses ~500:1
	rc, err := NewLimitedDecoder("gzip", bytes.NewReader(encode(t, "gzip", zeros)), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || len(got) != len(zeros) {
		t.Fatalf("small body refused: %d bytes, %v", len(got), err)
	}
}

func TestLimitedDecoderZstdWindowLimit(t *testing.T) {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(textish(1 << 20))
	w.Close()
	rc, err := NewLimitedDecoder("zstd", &buf, 0, 0)
	if err == nil {
		_, err = io.ReadAll(rc)
	}
	if err == nil {
		t.Fatal("zstd frame with a 64 MiB window accepted")
	}
}

// gzipBomb returns ~1 MB of multi-member gzip inflating to 1 GiB of zeros.
func gzipBomb(t testing.TB) []byte {
	member := encode(t, "gzip", make([]byte, 1<<20))
	return bytes.Repeat(member, 1024)
}

func TestLimitedDecoderGzipBombBoundedMemory(t *testing.T) {
	bomb := gzipBomb(t)
	t.Logf("bomb: %d compressed bytes, 1 GiB decompressed", len(bomb))
	tests := []struct {
		name     string
		max      int64
		ratio    float64
		limit    string
		maxBytes int64 // decompressed bytes allowed out before refusal
	}{
		{"refused by max-decompressed-size-bytes", 16 << 20, 0, LimitDecompressedBytes, 16 << 20},
		{"refused by max-decompression-ratio", 0, 100, LimitDecompressionRatio, RatioFloor + 2*maxStep},
		{"ratio refuses before a generous size limit", 2 << 30, 100, LimitDecompressionRatio, RatioFloor + 2*maxStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rc, err := NewLimitedDecoder("gzip", bytes.NewReader(bomb), tt.max, tt.ratio)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			runtime.ReadMemStats(&after)
			rc.Close()
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != tt.limit || le.Status != 413 {
				t.Fatalf("err = %v, want %s", err, tt.limit)
			}
			if n > tt.maxBytes {
				t.Fatalf("%d bytes decompressed before refusal, want <= %d", n, tt.maxBytes)
			}
			growth := int64(after.HeapInuse) - int64(before.HeapInuse)
			t.Logf("decompressed %d bytes, heap in use grew %d bytes", n, growth)
			if growth > 4<<20 {
				t.Fatalf("heap in use grew %d bytes, want < 4 MiB", growth)
			}
		})
	}
}

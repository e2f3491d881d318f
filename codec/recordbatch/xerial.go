package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Snappy records (codec 2) come in one of two shapes: one raw snappy block
// (franz-go, librdkafka, sarama) or the xerial framing of the Java client
// (snappy-java's SnappyOutputStream): a 16-byte header (XerialMagic, a
// version and a compatible version, int32 each), then chunks of an int32
// length and one snappy block each.

// XerialMagic starts snappy data in the xerial framing.
const XerialMagic = "\x82SNAPPY\x00"

// xerialHeaderSize is the magic and the two versions.
const xerialHeaderSize = 16

// ErrXerial is xerial-framed snappy data cut short: its header, a chunk's
// length or a chunk.
var ErrXerial = errors.New("snappy: xerial framing cut short")

// IsXerial reports whether the snappy data src is in the xerial framing
// (else it is one raw snappy block).
func IsXerial(src []byte) bool {
	return len(src) >= len(XerialMagic) && string(src[:len(XerialMagic)]) == XerialMagic
}

// XerialChunks returns the chunks of xerial-framed src (IsXerial): what
// follows its header.
func XerialChunks(src []byte) ([]byte, error) {
	if len(src) < xerialHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes, want %d", ErrXerial, len(src), xerialHeaderSize)
	}
	return src[xerialHeaderSize:], nil
}

// NextXerialBlock splits the first chunk off chunks: its snappy block,
// whose length is checked against the bytes left, and the chunks after it.
func NextXerialBlock(chunks []byte) (block, rest []byte, err error) {
	if len(chunks) < 4 {
		return nil, nil, fmt.Errorf("%w: chunk length of %d bytes", ErrXerial, len(chunks))
	}
	n := binary.BigEndian.Uint32(chunks)
	if uint64(n) > uint64(len(chunks)-4) {
		return nil, nil, fmt.Errorf("%w: chunk of %d bytes overruns the %d left", ErrXerial, n, len(chunks)-4)
	}
	return chunks[4 : 4+n], chunks[4+n:], nil
}

package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LengthSize is the size of the int32 length prefix of every Kafka frame.
const LengthSize = 4

// minHeaderSize is api_key, api_version, correlation_id and the client_id length.
const minHeaderSize = 2 + 2 + 4 + 2

// maxClientIDLen bounds the client id floodgate reads from a header; Kafka
// itself allows 32767 bytes, which is the int16 maximum.
const maxClientIDLen = 32767

// Errors returned by the header parser. ErrShortHeader asks for more bytes;
// the others mean the connection speaks something that is not Kafka.
var (
	ErrShortHeader     = errors.New("kafka: request header incomplete")
	ErrMalformedHeader = errors.New("kafka: malformed request header")
	ErrNegativeLength  = errors.New("kafka: negative frame length")
)

// Header is the parsed request header of one frame. ClientID aliases the
// buffer it was parsed from and is valid only as long as that buffer is.
type Header struct {
	// Length is the frame length announced by the prefix (excluding the prefix).
	Length int32
	// APIKey is the request's API key (0 = Produce, 1 = Fetch, ...).
	APIKey int16
	// APIVersion is the request's API version.
	APIVersion int16
	// CorrelationID is echoed in the response.
	CorrelationID int32
	// ClientID is the client id, nil when the client sent a null string.
	ClientID []byte
	// Size is the number of header bytes after the length prefix, including
	// the tagged fields of flexible headers; the body starts there.
	Size int
	// Flexible reports whether the request (and so its response) uses the
	// flexible (KIP-482) encoding at this version.
	Flexible bool
}

// FrameLength returns the length announced by a 4-byte prefix.
func FrameLength(prefix []byte) int32 {
	return int32(binary.BigEndian.Uint32(prefix))
}

// ParseHeader parses the request header in b, which starts right after the
// length prefix and holds however many bytes have arrived. It returns
// ErrShortHeader when b ends before the header does. It never allocates.
func ParseHeader(b []byte, frameLen int32, h *Header) error {
	if frameLen < 0 {
		return ErrNegativeLength
	}
	if int(frameLen) < minHeaderSize {
		return fmt.Errorf("%w: frame of %d bytes is shorter than a header", ErrMalformedHeader, frameLen)
	}
	if len(b) > int(frameLen) {
		b = b[:frameLen]
	}
	if len(b) < minHeaderSize {
		return ErrShortHeader
	}
	h.Length = frameLen
	h.APIKey = int16(binary.BigEndian.Uint16(b[0:]))
	h.APIVersion = int16(binary.BigEndian.Uint16(b[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(b[4:]))
	if h.APIKey < 0 || h.APIVersion < 0 {
		return fmt.Errorf("%w: api key %d version %d", ErrMalformedHeader, h.APIKey, h.APIVersion)
	}
	n := int(int16(binary.BigEndian.Uint16(b[8:])))
	off := minHeaderSize
	switch {
	case n == -1:
		h.ClientID = nil
	case n < -1:
		return fmt.Errorf("%w: client id length %d", ErrMalformedHeader, n)
	default:
		if off+n > int(frameLen) {
			return fmt.Errorf("%w: client id of %d bytes overruns the frame", ErrMalformedHeader, n)
		}
		if len(b) < off+n {
			return ErrShortHeader
		}
		h.ClientID = b[off : off+n]
		off += n
	}
	h.Flexible = IsFlexibleRequest(h.APIKey, h.APIVersion)
	if h.Flexible {
		end, err := skipTags(b, off, int(frameLen))
		if err != nil {
			return err
		}
		off = end
	}
	h.Size = off
	return nil
}

// skipTags skips a tagged-field section starting at off.
func skipTags(b []byte, off, limit int) (int, error) {
	count, n, err := uvarint(b, off, limit)
	if err != nil {
		return 0, err
	}
	off += n
	for i := uint64(0); i < count; i++ {
		if _, n, err = uvarint(b, off, limit); err != nil { // tag
			return 0, err
		}
		off += n
		size, n, err := uvarint(b, off, limit)
		if err != nil {
			return 0, err
		}
		off += n
		if size > uint64(limit-off) {
			return 0, fmt.Errorf("%w: tagged field overruns the frame", ErrMalformedHeader)
		}
		off += int(size)
		if off > len(b) {
			return 0, ErrShortHeader
		}
	}
	return off, nil
}

// uvarint reads an unsigned varint at off, distinguishing "more bytes
// needed" from "this cannot be a varint within the frame".
func uvarint(b []byte, off, limit int) (uint64, int, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen32; i++ {
		if off+i >= limit {
			return 0, 0, fmt.Errorf("%w: varint overruns the frame", ErrMalformedHeader)
		}
		if off+i >= len(b) {
			return 0, 0, ErrShortHeader
		}
		c := b[off+i]
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: varint too long", ErrMalformedHeader)
}

// ProduceAcks reads the acks field of a Produce request body (the bytes
// after the header) without decoding the rest.
func ProduceAcks(version int16, body []byte) (int16, bool) {
	off := 0
	if version >= 3 { // transactional_id comes first
		if IsFlexibleRequest(0, version) {
			n, k, err := uvarint(body, 0, len(body))
			if err != nil {
				return 0, false
			}
			off = k
			if n > 1 {
				off += int(n - 1)
			}
		} else {
			if len(body) < 2 {
				return 0, false
			}
			n := int(int16(binary.BigEndian.Uint16(body)))
			off = 2
			if n > 0 {
				off += n
			}
		}
	}
	if off+2 > len(body) {
		return 0, false
	}
	return int16(binary.BigEndian.Uint16(body[off:])), true
}

package kafka

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiVersionsKey is the one API whose response header stays at v0 (no tagged
// fields) even in flexible versions, so clients can parse it before they
// know which versions the broker speaks.
const apiVersionsKey = 18

// maxKey is the largest API key kmsg knows.
const maxKey = 100

// firstFlexible[k] is the first flexible version of API key k, or -1 when
// the key has no flexible version (or is unknown). It is computed once from
// kmsg and never written again.
var firstFlexible = func() [maxKey + 1]int16 {
	var t [maxKey + 1]int16
	for k := range t {
		t[k] = -1
		req := kmsg.RequestForKey(int16(k))
		if req == nil {
			continue
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if req.IsFlexible() {
				t[k] = v
				break
			}
		}
	}
	return t
}()

// IsFlexibleRequest reports whether requests of this key and version use
// flexible (KIP-482) headers and encodings.
func IsFlexibleRequest(key, version int16) bool {
	if key < 0 || int(key) > maxKey {
		return false
	}
	f := firstFlexible[key]
	return f >= 0 && version >= f
}

// AppendResponse appends a whole response frame (length prefix, response
// header, body) answering the request described by h to dst.
func AppendResponse(dst []byte, h *Header, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if h.Flexible && h.APIKey != apiVersionsKey {
		dst = append(dst, 0) // empty tagged fields of response header v1
	}
	if resp.GetVersion() != h.APIVersion { // responses built once are shared read-only
		resp.SetVersion(h.APIVersion)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-LengthSize))
	return dst
}

// DecodeRequest decodes the body of a frame (the bytes after the header)
// into a fresh kmsg request of the header's key and version. Strings in the
// result alias body, so body must outlive the request.
func DecodeRequest(h *Header, body []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.APIKey)
	if req == nil {
		return nil, ErrUnknownAPI
	}
	req.SetVersion(h.APIVersion)
	if u, ok := req.(interface{ UnsafeReadFrom([]byte) error }); ok {
		if err := u.UnsafeReadFrom(body); err != nil {
			return nil, err
		}
		return req, nil
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, err
	}
	return req, nil
}

// VersionRanger reports the versions of an API key a server serves.
type VersionRanger interface {
	VersionRange(key int16) (min, max int16, ok bool)
}

// APIVersionsResponse builds the ApiVersions response listing every key
// vr serves, at the given version, with code as its error.
func APIVersionsResponse(vr VersionRanger, version int16, code int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	resp.ErrorCode = code
	n := 0
	for k := int16(0); k <= maxKey; k++ {
		if _, _, ok := vr.VersionRange(k); ok {
			n++
		}
	}
	resp.ApiKeys = make([]kmsg.ApiVersionsResponseApiKey, 0, n)
	for k := int16(0); k <= maxKey; k++ {
		min, max, ok := vr.VersionRange(k)
		if !ok {
			continue
		}
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = k, min, max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}

// ResponseBody returns the body of a whole response frame (after the
// length prefix, correlation id and, for flexible responses, the header's
// tagged fields) answering a request described by h.
func ResponseBody(h *Header, frame []byte) ([]byte, error) {
	if len(frame) < LengthSize+4 {
		return nil, fmt.Errorf("%w: response of %d bytes", ErrMalformedHeader, len(frame))
	}
	off := LengthSize + 4
	if h.Flexible && h.APIKey != apiVersionsKey {
		end, err := skipTags(frame, off, len(frame))
		if err != nil {
			return nil, fmt.Errorf("response header tags: %w", err)
		}
		off = end
	}
	return frame[off:], nil
}

// DecodeResponse decodes a whole response frame answering h.
func DecodeResponse(h *Header, frame []byte) (kmsg.Response, error) {
	body, err := ResponseBody(h, frame)
	if err != nil {
		return nil, err
	}
	resp := kmsg.ResponseForKey(h.APIKey)
	if resp == nil {
		return nil, ErrUnknownAPI
	}
	resp.SetVersion(h.APIVersion)
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s v%d response: %w", kmsg.NameForKey(h.APIKey), h.APIVersion, err)
	}
	return resp, nil
}

// SetCorrelationID writes id into a whole frame (request or response).
func SetCorrelationID(frame []byte, id int32) {
	binary.BigEndian.PutUint32(frame[LengthSize:], uint32(id))
}

// ProduceAnswerHasTags reports whether the body of a Produce v9 to v12
// answer (after the response header) ends with tagged fields: from v10, the
// brokers that lead the partitions it answers NOT_LEADER for (KIP-951
// NodeEndpoints), which a proxy must point at itself. It walks the answer
// without allocating; for another version or a malformed body it reports
// true, so that the caller decodes the answer and sees why.
func ProduceAnswerHasTags(version int16, body []byte) bool {
	if version < 9 || version > 12 {
		return true
	}
	w := answerWalk{b: body, ok: true}
	for topics := w.count(false); topics > 0 && w.ok; topics-- {
		w.skipBytes(w.count(false)) // name
		for parts := w.count(false); parts > 0 && w.ok; parts-- {
			w.skipBytes(4 + 2 + 8 + 8 + 8) // index, error code, base offset, log append time, log start offset
			for errs := w.count(false); errs > 0 && w.ok; errs-- {
				w.skipBytes(4)             // batch index
				w.skipBytes(w.count(true)) // message
				w.skipTags()
			}
			w.skipBytes(w.count(true)) // error message
			w.skipTags()
		}
		w.skipTags()
	}
	w.skipBytes(4) // throttle
	tags := w.uvarint()
	return !w.ok || tags > 0 || w.off != len(body)
}

// answerWalk walks a flexible answer; ok turns false at the first field
// that overruns it.
type answerWalk struct {
	b   []byte
	off int
	ok  bool
}

func (w *answerWalk) uvarint() uint64 {
	if !w.ok {
		return 0
	}
	v, n := binary.Uvarint(w.b[w.off:])
	if n <= 0 {
		w.ok = false
		return 0
	}
	w.off += n
	return v
}

// count reads a compact array's length or a compact string's size (both
// stored plus one, 0 for null, which only a nullable field may be).
func (w *answerWalk) count(nullable bool) uint64 {
	n := w.uvarint()
	if n == 0 {
		w.ok = w.ok && nullable
		return 0
	}
	return n - 1
}

func (w *answerWalk) skipBytes(n uint64) {
	if !w.ok || n > uint64(len(w.b)-w.off) {
		w.ok = false
		return
	}
	w.off += int(n)
}

func (w *answerWalk) skipTags() {
	for n := w.uvarint(); n > 0 && w.ok; n-- {
		w.uvarint() // tag
		w.skipBytes(w.uvarint())
	}
}

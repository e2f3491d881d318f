package kafka

// The decode guard: kmsg allocates `count × sizeof(element)` for every
// array count a request claims, checking only that count is at most the
// bytes left (kbin.Reader.ArrayLen). A Produce partition costs kmsg ~48
// bytes of struct for 8 bytes on the wire (6 flexible), and a topic ~80
// for 6, so a 100 MiB frame of empty partitions made floodgate allocate
// gigabytes before the broker saw it. The guard walks a Produce body once
// without allocating, checks every count against the bytes that remain
// times the element's minimum encoded size and counts the topics,
// partitions and tagged fields kmsg would build; over the limit the
// request is refused with an answer whose size the limit bounds.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DecodeLimits bounds what decoding one request may allocate.
type DecodeLimits struct {
	// MaxPartitions bounds the topics, partitions and tagged fields of a
	// Produce request (0: unbounded).
	MaxPartitions int
	// MaxNonProduceSize bounds the body of any request other than Produce
	// (0: unbounded): no client sends megabytes of Metadata or
	// OffsetCommit, and kmsg allocates up to ~40 times their size.
	MaxNonProduceSize int
}

// RefusedError is returned by DecodeRequestLimited for a well-formed
// request over a limit: Response is the answer due (nil for acks=0
// Produce), bounded in size by the limit, never by the request.
type RefusedError struct {
	// Limit is the flag of the limit that refused the request.
	Limit string
	// Value is the request's count or size; Max the configured limit.
	Value, Max int64
	// Response answers the request; nil with Close false means no answer
	// is due (Produce with acks=0).
	Response kmsg.Response
	// Close is set when the API's response cannot carry an error without
	// the decoded request: the connection is closed instead, which
	// clients retry.
	Close bool
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("kafka: request over --%s: %d > %d", e.Limit, e.Value, e.Max)
}

// ErrMalformedBody is returned for a body whose counts or lengths do not
// fit in its bytes.
var ErrMalformedBody = errors.New("kafka: malformed request body")

// Limit names used in RefusedError.
const (
	LimitPartitions      = "max-partitions-per-request"
	LimitNonProduceBytes = "max-non-produce-request-size"
)

// DecodeRequestLimited decodes a request body as DecodeRequest does, after
// checking it against lim without allocating.
func DecodeRequestLimited(h *Header, body []byte, lim DecodeLimits) (kmsg.Request, error) {
	if h.APIKey != 0 {
		if lim.MaxNonProduceSize > 0 && len(body) > lim.MaxNonProduceSize {
			resp, ok := TopLevelErrorResponse(h.APIKey, h.APIVersion, ErrMessageTooLarge)
			return nil, &RefusedError{Limit: LimitNonProduceBytes, Value: int64(len(body)), Max: int64(lim.MaxNonProduceSize),
				Response: resp, Close: !ok}
		}
		return DecodeRequest(h, body)
	}
	w := produceWalk{flexible: IsFlexibleRequest(0, h.APIVersion), b: body, max: lim.MaxPartitions}
	if err := w.walk(h.APIVersion); err != nil {
		if errors.Is(err, errOverLimit) {
			return nil, &RefusedError{Limit: LimitPartitions, Value: int64(w.count), Max: int64(lim.MaxPartitions),
				Response: boundedProduceRefusal(h.APIVersion, body, lim.MaxPartitions, ErrInvalidRequest)}
		}
		return nil, err
	}
	return DecodeRequest(h, body)
}

// errOverLimit stops a walk at the first element over the limit.
var errOverLimit = errors.New("over the limit")

// Minimum encoded sizes of Produce elements, for count checks.
const (
	minTopic         = 2 + 4 // name length, partition count
	minTopicFlex     = 1 + 1 + 1
	minPartition     = 4 + 4 // index, records length
	minPartitionFlex = 4 + 1 + 1
	minTag           = 1 + 1 // key, size
)

// produceWalk reads a Produce body in place: b is what remains.
type produceWalk struct {
	flexible bool
	b        []byte
	max      int // 0: unbounded
	count    int // topics, partitions and tags seen
	// visit, when set, is called for each partition (the refusal's walk).
	visit func(topic []byte, partition int32) bool
}

func (w *produceWalk) fail(what string) error {
	return fmt.Errorf("%w: Produce %s does not fit in the %d bytes left", ErrMalformedBody, what, len(w.b))
}

// add counts n elements against the limit.
func (w *produceWalk) add(n int) error {
	w.count += n
	if w.max > 0 && w.count > w.max {
		return errOverLimit
	}
	return nil
}

func (w *produceWalk) int16() (int16, error) {
	if len(w.b) < 2 {
		return 0, w.fail("int16")
	}
	v := int16(binary.BigEndian.Uint16(w.b))
	w.b = w.b[2:]
	return v, nil
}

func (w *produceWalk) int32() (int32, error) {
	if len(w.b) < 4 {
		return 0, w.fail("int32")
	}
	v := int32(binary.BigEndian.Uint32(w.b))
	w.b = w.b[4:]
	return v, nil
}

func (w *produceWalk) uvarint() (uint64, error) {
	v, n := binary.Uvarint(w.b)
	if n <= 0 {
		return 0, w.fail("varint")
	}
	w.b = w.b[n:]
	return v, nil
}

// bytesField reads a (compact) nullable string or bytes field; wide
// selects the int32 length of non-flexible bytes over int16 of strings.
func (w *produceWalk) bytesField(wide bool) ([]byte, error) {
	var n int64
	switch {
	case w.flexible:
		v, err := w.uvarint()
		if err != nil {
			return nil, err
		}
		n = int64(v) - 1
	case wide:
		v, err := w.int32()
		if err != nil {
			return nil, err
		}
		n = int64(v)
	default:
		v, err := w.int16()
		if err != nil {
			return nil, err
		}
		n = int64(v)
	}
	if n < 0 {
		return nil, nil
	}
	if n > int64(len(w.b)) {
		return nil, w.fail("string or bytes")
	}
	v := w.b[:n]
	w.b = w.b[n:]
	return v, nil
}

// count reads an array count and checks it against the bytes left.
func (w *produceWalk) arrayLen(minElem int) (int, error) {
	var n int64
	if w.flexible {
		v, err := w.uvarint()
		if err != nil {
			return 0, err
		}
		n = int64(v) - 1
	} else {
		v, err := w.int32()
		if err != nil {
			return 0, err
		}
		n = int64(v)
	}
	if n < 0 {
		return 0, nil
	}
	if n > int64(len(w.b)/minElem) {
		return 0, w.fail(fmt.Sprintf("array of %d", n))
	}
	return int(n), nil
}

// tags skips a tagged-field section, counting its fields.
func (w *produceWalk) tags() error {
	if !w.flexible {
		return nil
	}
	n, err := w.uvarint()
	if err != nil {
		return err
	}
	if n > uint64(len(w.b)/minTag) {
		return w.fail("tag count")
	}
	if err := w.add(int(n)); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		if _, err := w.uvarint(); err != nil {
			return err
		}
		size, err := w.uvarint()
		if err != nil {
			return err
		}
		if size > uint64(len(w.b)) {
			return w.fail("tag")
		}
		w.b = w.b[size:]
	}
	return nil
}

// walk checks the whole body; it stops early at the limit.
func (w *produceWalk) walk(version int16) error {
	if version >= 3 {
		if _, err := w.bytesField(false); err != nil { // transactional id
			return err
		}
	}
	if _, err := w.int16(); err != nil { // acks
		return err
	}
	if _, err := w.int32(); err != nil { // timeout
		return err
	}
	minT, minP := minTopic, minPartition
	if w.flexible {
		minT, minP = minTopicFlex, minPartitionFlex
	}
	topics, err := w.arrayLen(minT)
	if err != nil {
		return err
	}
	for range topics {
		if err := w.add(1); err != nil {
			return err
		}
		name, err := w.bytesField(false)
		if err != nil {
			return err
		}
		parts, err := w.arrayLen(minP)
		if err != nil {
			return err
		}
		for range parts {
			if err := w.add(1); err != nil {
				return err
			}
			p, err := w.int32()
			if err != nil {
				return err
			}
			if _, err := w.bytesField(true); err != nil {
				return err
			}
			if err := w.tags(); err != nil {
				return err
			}
			if w.visit != nil && !w.visit(name, p) {
				return nil
			}
		}
		if err := w.tags(); err != nil {
			return err
		}
	}
	return w.tags()
}

// maxAnswerNames bounds the topic name bytes of a refusal built from a
// request (1 MiB): with names of 32 KiB, max partitions distinct topics
// would otherwise make the answer as large as the request.
const maxAnswerNames = 1 << 20

// boundedProduceRefusal answers a Produce over the partition limit: the
// first max partitions of the request carry code, the rest are left out,
// so the answer is bounded by the limit, not by what the request claims.
// franz-go retries partitions missing from an answer and fails those with
// a non-retriable code; sarama fails both (ErrIncompleteResponse). A
// client never sends more partitions than it produces to, so only a
// misconfigured or hostile client sees this. nil for acks=0.
func boundedProduceRefusal(version int16, body []byte, maxPartitions int, code int16) kmsg.Response {
	if acks, ok := ProduceAcks(version, body); ok && acks == 0 {
		return nil
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(version)
	n, names := 0, 0
	w := produceWalk{flexible: IsFlexibleRequest(0, version), b: body}
	w.visit = func(topic []byte, p int32) bool {
		if len(resp.Topics) == 0 || resp.Topics[len(resp.Topics)-1].Topic != string(topic) {
			if names += len(topic); names > maxAnswerNames {
				return false
			}
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = string(topic)
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p, code
		rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
		last := &resp.Topics[len(resp.Topics)-1]
		last.Partitions = append(last.Partitions, rp)
		n++
		return n < maxPartitions
	}
	_ = w.walk(version) // the first walk checked the part this one reads
	return resp
}

package kafka

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// parsed returns the header and body of a whole frame.
func parsed(t *testing.T, fr []byte) (*Header, []byte) {
	t.Helper()
	var h Header
	if err := ParseHeader(fr[4:], FrameLength(fr), &h); err != nil {
		t.Fatal(err)
	}
	return &h, fr[4+h.Size:]
}

func TestDecodeGuardAcceptsWhatClientsSend(t *testing.T) {
	topics := map[string][]int32{"alpha": {0, 1, 2}, "beta": {7}, "gamma": {3, 4}}
	for v := int16(0); v <= 12; v++ {
		req := produceRequest(v, topics, 100)
		req.Topics[0].Partitions[0].UnknownTags.Set(9, []byte("tag")) // flexible versions carry it
		h, body := parsed(t, frame(t, req, "c"))
		got, err := DecodeRequestLimited(h, body, DecodeLimits{MaxPartitions: 10}) // 3 topics, 6 partitions, 1 tag
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if n := len(got.(*kmsg.ProduceRequest).Topics); n != 3 {
			t.Fatalf("v%d: %d topics decoded", v, n)
		}
	}
}

func TestDecodeGuardRefusesOverPartitionLimitWithBoundedAnswer(t *testing.T) {
	parts := make([]int32, 500)
	for i := range parts {
		parts[i] = int32(i)
	}
	for _, v := range []int16{3, 7, 9, 12} {
		req := produceRequest(v, map[string][]int32{"alpha": parts, "beta": parts}, 0)
		h, body := parsed(t, frame(t, req, "c"))
		_, err := DecodeRequestLimited(h, body, DecodeLimits{MaxPartitions: 100})
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Limit != LimitPartitions || refused.Close {
			t.Fatalf("v%d: %v, want a refusal by %s", v, err, LimitPartitions)
		}
		resp := refused.Response.(*kmsg.ProduceResponse)
		n := 0
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				n++
				if rp.ErrorCode != ErrInvalidRequest {
					t.Fatalf("v%d: partition answered %d", v, rp.ErrorCode)
				}
			}
		}
		if n != 100 {
			t.Fatalf("v%d: answer names %d partitions, want the limit 100", v, n)
		}
		// acks=0: no answer is due.
		req.Acks = 0
		h, body = parsed(t, frame(t, req, "c"))
		if _, err := DecodeRequestLimited(h, body, DecodeLimits{MaxPartitions: 100}); !errors.As(err, &refused) || refused.Response != nil {
			t.Fatalf("v%d acks=0: %v", v, err)
		}
	}
}

// allocatedBy returns the bytes fn allocates.
func allocatedBy(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestClaimedCountIsCheckedBeforeAllocating: a Produce v7 whose topic
// count claims every byte that remains made kmsg allocate count × 80
// bytes (1 GB for a 12 MiB frame) before failing. The guard rejects the
// count against the bytes left × a topic's minimum size (6) first.
func TestClaimedCountIsCheckedBeforeAllocating(t *testing.T) {
	const size = 4 << 20
	body := make([]byte, 0, size)
	body = binary.BigEndian.AppendUint16(body, 0xffff) // null transactional id
	body = binary.BigEndian.AppendUint16(body, 1)
	body = binary.BigEndian.AppendUint32(body, 1000)
	body = binary.BigEndian.AppendUint32(body, uint32(size-len(body)-4)) // topics: one per byte left
	body = body[:size]
	h := &Header{APIKey: 0, APIVersion: 7}
	var errBefore, errAfter error
	before := allocatedBy(func() { _, errBefore = DecodeRequest(h, body) })
	after := allocatedBy(func() { _, errAfter = DecodeRequestLimited(h, body, DecodeLimits{MaxPartitions: 10000}) })
	t.Logf("%d-byte body: kmsg alone allocated %d MiB (%.0f bytes per byte), the guard %d bytes", size, before>>20, float64(before)/size, after)
	if errBefore == nil || !errors.Is(errAfter, ErrMalformedBody) {
		t.Fatalf("errors: kmsg %v, guard %v", errBefore, errAfter)
	}
	if after > 1<<20 { // other goroutines allocate too: the point is 256 MiB vs a few KiB
		t.Fatalf("the guard allocated %d bytes for a claimed count", after)
	}
	// Within the bytes but over the limit: refused before kmsg too.
	for i := 14; i+6 <= size; i += 6 {
		binary.BigEndian.PutUint32(body[i+2:], 0) // topics of an empty name and no partitions
	}
	binary.BigEndian.PutUint32(body[8:], uint32((size-12)/6))
	var refused *RefusedError
	after = allocatedBy(func() { _, errAfter = DecodeRequestLimited(h, body, DecodeLimits{MaxPartitions: 10000}) })
	if !errors.As(errAfter, &refused) || after > 64<<10 {
		t.Fatalf("%d empty topics: %v, %d bytes allocated", (size-12)/6, errAfter, after)
	}
}

func TestNonProduceRequestSizeLimit(t *testing.T) {
	big := make([]string, 2000)
	for i := range big {
		big[i] = "topic-with-a-long-name-to-fill-the-request"
	}
	cases := []struct {
		name      string
		req       kmsg.Request
		wantClose bool
	}{
		{"Metadata has no error field before v13: the connection is closed", func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.SetVersion(12)
			for _, n := range big {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(n)
				r.Topics = append(r.Topics, rt)
			}
			return r
		}(), true},
		{"JoinGroup answers MESSAGE_TOO_LARGE", func() kmsg.Request {
			r := kmsg.NewPtrJoinGroupRequest()
			r.SetVersion(9)
			r.Group, r.ProtocolType = "g", "consumer"
			p := kmsg.NewJoinGroupRequestProtocol()
			p.Name, p.Metadata = "range", make([]byte, 100<<10)
			r.Protocols = append(r.Protocols, p)
			return r
		}(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, body := parsed(t, frame(t, c.req, "c"))
			if _, err := DecodeRequestLimited(h, body, DecodeLimits{MaxNonProduceSize: 1 << 20}); err != nil {
				t.Fatalf("under the limit: %v", err)
			}
			_, err := DecodeRequestLimited(h, body, DecodeLimits{MaxNonProduceSize: 1024})
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Limit != LimitNonProduceBytes || refused.Close != c.wantClose {
				t.Fatalf("%v (%+v), want a refusal by %s with close=%v", err, refused, LimitNonProduceBytes, c.wantClose)
			}
			if !c.wantClose && !carriesCode(refused.Response, ErrMessageTooLarge) {
				t.Fatal("refusal does not carry MESSAGE_TOO_LARGE")
			}
		})
	}
}

// TestProduceSkimmerAnswerIsBounded: the oversize-frame answer named every
// partition of the frame (472 MB for 15.7M partitions); it names at most
// the limit, and a topic only with a partition.
func TestProduceSkimmerAnswerIsBounded(t *testing.T) {
	for _, v := range []int16{7, 9} {
		var s ProduceSkimmer
		s.Reset(v, 50)
		parts := make([]int32, 300)
		for i := range parts {
			parts[i] = int32(i)
		}
		req := produceRequest(v, map[string][]int32{"alpha": parts, "beta": parts, "gamma": parts}, 10)
		_, body := parsed(t, frame(t, req, "c"))
		s.Feed(body)
		n := 0
		resp := s.Response(ErrMessageTooLarge)
		for _, rt := range resp.Topics {
			if len(rt.Partitions) == 0 {
				t.Fatalf("v%d: topic %s named without partitions", v, rt.Topic)
			}
			n += len(rt.Partitions)
		}
		if n != 50 {
			t.Fatalf("v%d: answer names %d partitions, want the limit 50", v, n)
		}
	}
}

// TestNonProduceAllocationPerByte measures kmsg's worst allocation per
// received byte for requests other than Produce (Metadata v0 topics of
// empty names: 2 bytes each on the wire) and checks that a body over
// --max-non-produce-request-size is refused without decoding: the worst
// a request can make floodgate allocate is the ratio × the limit (1 MiB),
// where it was the ratio × --max-request-size (100 MiB).
func TestNonProduceAllocationPerByte(t *testing.T) {
	const size = 1 << 20
	body := make([]byte, 4, size)
	binary.BigEndian.PutUint32(body, uint32((size-4)/2))
	body = body[:size] // (size-4)/2 topics of empty names
	h := &Header{APIKey: 3, APIVersion: 0}
	var err error
	decodedBytes := allocatedBy(func() { _, err = DecodeRequestLimited(h, body, DecodeLimits{MaxNonProduceSize: size}) })
	if err != nil {
		t.Fatal(err)
	}
	ratio := float64(decodedBytes) / size
	refusedBytes := allocatedBy(func() { _, err = DecodeRequestLimited(h, body, DecodeLimits{MaxNonProduceSize: size / 2}) })
	var refused *RefusedError
	if !errors.As(err, &refused) || !refused.Close {
		t.Fatalf("over the limit: %v", err)
	}
	t.Logf("Metadata v0 of %d empty topic names: kmsg allocates %.1f bytes per byte received; worst per request: %d MiB at the 1 MiB default, %d MiB at --max-request-size; refused over the limit with %d bytes",
		(size-4)/2, ratio, int(ratio), int(ratio*100), refusedBytes)
	if refusedBytes > 1<<20 {
		t.Fatalf("refusal allocated %d bytes", refusedBytes)
	}
}

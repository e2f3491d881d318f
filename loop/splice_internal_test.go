package loop

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/codec/kafka"
)

// TestSetFetchThrottleHeadSetsTheAnswersThrottle: a Fetch answer relayed
// through a pipe gets its throttle_time_ms set in its first 16 bytes (the
// only ones in memory), at the place Kafka's encoding puts it in every
// version that has it; v0 (no throttle) and a v12+ header carrying tags
// (the throttle is then further on) are left as they are.
func TestSetFetchThrottleHeadSetsTheAnswersThrottle(t *testing.T) {
	for _, v := range []int16{0, 1, 4, 7, 11, 12, 13, 16} {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(v)
		frame := kafka.AppendResponse(nil, &kafka.Header{APIKey: 1, APIVersion: v, CorrelationID: 9, Flexible: resp.IsFlexible()}, resp)
		setFetchThrottleHead(frame[:16], v, 1234)
		body := frame[8:]
		if resp.IsFlexible() {
			body = body[1:] // the header's tags (none)
		}
		got := kmsg.NewPtrFetchResponse()
		got.SetVersion(v)
		if err := got.ReadFrom(body); err != nil {
			t.Fatalf("v%d: decode after setting the throttle: %v", v, err)
		}
		want := int32(1234)
		if v == 0 {
			want = 0
		}
		if got.ThrottleMillis != want {
			t.Errorf("v%d: throttle %d ms, want %d", v, got.ThrottleMillis, want)
		}
	}
	head := []byte{0, 0, 0, 40, 0, 0, 0, 9, 1, 5, 1, 2, 3, 4, 5, 6}
	before := string(head)
	setFetchThrottleHead(head, 12, 1234)
	if string(head) != before {
		t.Errorf("a v12 header with tags was changed: % x", head)
	}
}

package kafka

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDecodeRequestStopsAtATaggedFieldCountBeyondItsBytes: a flexible
// request whose last tagged-field count is 2^32-1 with nothing after it is
// refused at once. kmsg up to v1.15.0 counted the whole count down after
// the bytes ran out, writing a map entry each time: 20 to 40 s of a core
// for one 40-byte request (found by FuzzParseHeader; go.mod now asks for
// v1.15.1, which stops at the first missing byte). The bound is a hang
// check, thousands of times what the refusal takes.
func TestDecodeRequestStopsAtATaggedFieldCountBeyondItsBytes(t *testing.T) {
	bomb := []byte{0xff, 0xff, 0xff, 0xff, 0x0f} // uvarint 2^32-1
	for _, tc := range []struct {
		name string
		req  kmsg.Request
	}{
		{"Metadata v12", func() kmsg.Request { r := kmsg.NewPtrMetadataRequest(); r.SetVersion(12); return r }()},
		{"ApiVersions v3", func() kmsg.Request { r := kmsg.NewPtrApiVersionsRequest(); r.SetVersion(3); return r }()},
		{"Produce v9", func() kmsg.Request { r := kmsg.NewPtrProduceRequest(); r.SetVersion(9); return r }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := frame(t, tc.req, "c")
			f = append(f[:len(f)-1], bomb...) // the body's own tags: none → 2^32-1
			binary.BigEndian.PutUint32(f, uint32(len(f)-4))
			var h Header
			if err := ParseHeader(f[4:], FrameLength(f), &h); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := DecodeRequest(&h, f[4+h.Size:])
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("decoded a request whose tagged fields run past its end")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("decoding one 40-byte request took over 5 s (kmsg's tag loop ran past the bytes)")
			}
		})
	}
}

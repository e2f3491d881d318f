package loop_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestLargeRequestsInPiecesAreAssembledIntact: a request other than
// Produce that arrives in pieces (a JoinGroup whose protocol metadata is
// 900 KiB, written 60 KiB at a time) is received in pooled pieces and
// copied into one buffer of its own once complete; the pieces go back to
// the pools (and are poisoned in race builds: a piece read after its
// return shows as corrupt metadata). The JoinGroup answer, which
// gives the leader every member's metadata, must carry it byte for byte,
// for several requests in a row on one connection, so pieces reused from
// the pools hold no stale bytes.
func TestLargeRequestsInPiecesAreAssembledIntact(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := dialFrom(t, "127.0.0.7", srv.KafkaAddr())
	taken0 := counter(srv, "floodgate_kafka_frame_buffers_taken_total")
	const rounds = 3
	for round := 0; round < rounds; round++ {
		meta := make([]byte, 900<<10)
		for i := range meta {
			meta[i] = byte(i*7 + round)
		}
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 3
		req.Group = fmt.Sprintf("assembled-%d", round)
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10_000, 10_000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta
		req.Protocols = append(req.Protocols, p)
		frame := request(req, int32(round))
		for off := 0; off < len(frame); off += 60 << 10 {
			if _, err := c.Write(frame[off:min(off+60<<10, len(frame))]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Millisecond)
		}
		corr, body := readResponse(t, c, false)
		if corr != int32(round) {
			t.Fatalf("round %d: answer with correlation id %d", round, corr)
		}
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version = 3
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("round %d: decode JoinGroup answer: %v", round, err)
		}
		if resp.ErrorCode != 0 || len(resp.Members) != 1 {
			t.Fatalf("round %d: error %d, %d members", round, resp.ErrorCode, len(resp.Members))
		}
		if got := resp.Members[0].ProtocolMetadata; !bytes.Equal(got, meta) {
			i := 0
			for i < min(len(got), len(meta)) && got[i] == meta[i] {
				i++
			}
			t.Fatalf("round %d: the member's metadata came back differing at byte %d of %d (%d bytes back)", round, i, len(meta), len(got))
		}
	}
	// A frame received in pieces takes at least two (its first buffer is
	// smaller than the frame), about five for 900 KiB; one that grew by
	// doubling took none, or one.
	if taken := counter(srv, "floodgate_kafka_frame_buffers_taken_total") - taken0; taken < 2*rounds {
		t.Fatalf("%v pool buffers taken for %d requests written in pieces, want at least %d", taken, rounds, 2*rounds)
	} else {
		t.Logf("%v pool buffers taken for %d requests written in pieces", taken, rounds)
	}
}

// counter reads a counter (or gauge) of srv's metrics, 0 when absent.
func counter(srv *testserver.Server, name string) float64 {
	var b strings.Builder
	srv.Metrics.WritePrometheus(&b)
	var v float64
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			_, _ = fmt.Sscan(rest, &v)
		}
	}
	return v
}

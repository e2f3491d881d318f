package loop_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
)

// TestFrameCutOffMidwayClosesAndReleases: the rest of a frame is read
// straight from the socket into its buffer (readFrameDirect), past gnet's
// reads; a peer that goes away in the middle of a frame — closing, or
// resetting the connection — must still be seen (the end of stream or
// the error is left for gnet's next read), its connection closed and
// every byte it held given back to the budget.
func TestFrameCutOffMidwayClosesAndReleases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reset bool // RST instead of FIN
	}{
		{"peer closes", false},
		{"peer resets", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testserver.Start(t)
			c := dialFrom(t, "", srv.KafkaAddr())
			const length, sent = 3 << 20, 2 << 20
			frame := make([]byte, 4+sent)
			binary.BigEndian.PutUint32(frame, length)
			binary.BigEndian.PutUint16(frame[4:], 0)       // Produce
			binary.BigEndian.PutUint16(frame[6:], 7)       // v7
			binary.BigEndian.PutUint32(frame[8:], 1)       // correlation id
			binary.BigEndian.PutUint16(frame[12:], 0xffff) // null client id
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the frame's bytes read", func() bool { return srv.Budget().Used() >= sent })
			if tt.reset {
				_ = c.(*net.TCPConn).SetLinger(0)
			}
			start := time.Now()
			_ = c.Close()
			waitFor(t, 3*time.Second, "budget released", func() bool { return srv.Budget().Used() == 0 })
			waitFor(t, 3*time.Second, "connection closed", func() bool { return srv.Stats().Connections == 0 })
			t.Logf("released %v after the peer went", time.Since(start).Round(time.Millisecond))
			expectServed(t, dialFrom(t, "", srv.KafkaAddr()))
		})
	}
}

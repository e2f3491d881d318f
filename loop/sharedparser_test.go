package loop_test

import (
	"bufio"
	"net/http"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
)

// One event loop parses every connection's heads with one parser and one
// request (loopState.head, headReq). A head split over reads, and a
// request whose body arrives later, must keep their own state while the
// loop parses other connections' heads in between: the answer of the
// split request depends on its path (404 for /nope, 405 for POST /health,
// 200 for GET /health), so state taken from the other connection's head
// shows as a wrong status.
func TestSplitRequestsKeepTheirStateWhileTheLoopParsesOthers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pieces []string // sent in turn, the other connection's request between two
		status int
	}{
		{"head split in the path", []string{"GET /no", "pe HTTP/1.1\r\nHost: x\r\n\r\n"}, 404},
		{"head split in a header", []string{"GET /nope HTTP/1.1\r\nHo", "st: x\r\nX-A: 1\r\n\r\n"}, 404},
		{"head split three times", []string{"GET /", "nope HTTP/1.1\r\n", "Host: x\r\n\r\n"}, 404},
		{"body after the head", []string{"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", "cde"}, 404},
		{"body after a split head", []string{"POST /health HTTP/1.1\r\nHo", "st: x\r\nContent-Length: 2\r\n\r\n", "ok"}, 405},
		{"pooled request with a split head", []string{"GET /top", "ics HTTP/1.1\r\nHost: x\r\n\r\n"}, 200},
	}
	srv := testserver.Start(t, testserver.WithEventLoops(1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			split := dialFrom(t, "", srv.HTTPAddr())
			other := dialFrom(t, "", srv.HTTPAddr())
			_ = split.SetDeadline(time.Now().Add(10 * time.Second))
			_ = other.SetDeadline(time.Now().Add(10 * time.Second))
			otherR := bufio.NewReader(other)
			for i, p := range tt.pieces {
				if _, err := split.Write([]byte(p)); err != nil {
					t.Fatal(err)
				}
				if i == len(tt.pieces)-1 {
					break
				}
				time.Sleep(30 * time.Millisecond) // the loop reads the piece on its own
				// A whole request of another connection, answered on the
				// same loop before the split request goes on.
				if _, err := other.Write([]byte("DELETE /health HTTP/1.1\r\nHost: other\r\nX-Other: 1\r\n\r\n")); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(otherR, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 405 {
					t.Fatalf("other connection: status %d, want 405", resp.StatusCode)
				}
			}
			resp, err := http.ReadResponse(bufio.NewReader(split), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("split request: status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

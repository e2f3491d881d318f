package loop_test

import (
	"fmt"
	"testing"

	"github.com/floodgate/floodgate/loop"
)

// TestPreparedResponseEncodesAsFormatted: a response encoded once by
// PrepareHTTPResponse goes out byte for byte as the same response
// formatted per request, with and without Connection: close, with and
// without its body (HEAD).
func TestPreparedResponseEncodesAsFormatted(t *testing.T) {
	mk := func() *loop.HTTPResponse {
		return &loop.HTTPResponse{Status: 503, ContentType: "application/json",
			Header: [][2]string{{"Retry-After", "1"}}, Body: []byte(`{"status":"overloaded"}` + "\n")}
	}
	for _, closeAfter := range []bool{false, true} {
		for _, noBody := range []bool{false, true} {
			t.Run(fmt.Sprintf("close=%v,nobody=%v", closeAfter, noBody), func(t *testing.T) {
				plain, prepared := mk(), mk()
				plain.Close, plain.NoBody = closeAfter, noBody
				prepared.Close, prepared.NoBody = closeAfter, noBody
				loop.PrepareHTTPResponse(prepared)
				want := string(loop.AppendHTTPResponse(nil, plain))
				for i := 0; i < 2; i++ { // the prepared bytes are not consumed
					if got := string(loop.AppendHTTPResponse([]byte("x"), prepared)); got != "x"+want {
						t.Fatalf("prepared response encodes as\n%q\nwant\n%q", got, "x"+want)
					}
				}
			})
		}
	}
}

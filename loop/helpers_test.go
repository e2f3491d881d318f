package loop_test

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
)

// dialFrom connects to addr from the given local IP (127.0.0.x).
func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// request encodes req as a client would.
func request(req kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, corr)
}

// apiVersions is a small valid request.
func apiVersions(version int16) kmsg.Request {
	r := kmsg.NewPtrApiVersionsRequest()
	r.SetVersion(version)
	r.ClientSoftwareName = "t"
	r.ClientSoftwareVersion = "1"
	return r
}

// readResponse reads one response frame and returns its body after the
// correlation id (and the flexible header's tag byte if flexible).
func readResponse(t testing.TB, c net.Conn, flexible bool) (int32, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [4]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("read response length: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read response: %v", err)
	}
	corr := int32(binary.BigEndian.Uint32(b))
	b = b[4:]
	if flexible {
		b = b[1:]
	}
	return corr, b
}

// expectClosed asserts the server closes c within d.
func expectClosed(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v", d)
		}
		return
	}
}

// expectServed asserts an ApiVersions round trip works on c.
func expectServed(t testing.TB, c net.Conn) {
	t.Helper()
	if _, err := c.Write(request(apiVersions(3), 9)); err != nil {
		t.Fatalf("write: %v", err)
	}
	corr, body := readResponse(t, c, false)
	if corr != 9 {
		t.Fatalf("correlation %d", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("api versions: %v code %d", err, resp.ErrorCode)
	}
}

// heapInuse returns the Go heap in use after a GC.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func withLimits(fn func(*limits.Config)) testserver.Option { return testserver.WithLimits(fn) }

// Tests that wait more than they compute call t.Parallel: each owns its
// server on 127.0.0.1:0 and its own metrics set, and asserts nothing
// process-wide. Tests that measure the process (heap, RSS, descriptors,
// goroutines) or bound a latency tightly (under a second, or within a few
// times the configured wait) stay sequential; Go runs every sequential test
// before the parallel ones resume, so nothing parallel disturbs them.

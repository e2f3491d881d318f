package loop_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/testserver"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestSetLimitsLowersPerIPLimitForNewConnectionsOnly: with three
// connections of one IP open and serving, SetLimits lowers
// max-connections-per-ip to 1 while one of them keeps sending requests:
// the IP's next connection is refused, the open ones keep working (none
// is closed), and raising the limit again admits new ones.
func TestSetLimitsLowersPerIPLimitForNewConnectionsOnly(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, withLimits(func(l *limits.Config) { l.MaxConnectionsPerIP = 3 }))
	const src = "127.0.0.4"
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, src, srv.KafkaAddr())
		expectServed(t, c)
		open = append(open, c)
	}
	busy := dialFrom(t, "127.0.0.5", srv.KafkaAddr())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // traffic while the limits are swapped (for -race)
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				expectServed(t, busy)
			}
		}
	}()
	hc := limits.HTTPDefaults()
	hc.HeaderReadTimeout = 10 * time.Second
	set := func(perIP int) {
		lim := srv.Limits()
		lim.MaxConnectionsPerIP = perIP
		if err := srv.SetLimits(lim, loop.HTTPLimitsFrom(&hc)); err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	close(stop)
	wg.Wait()
	over := dialFrom(t, src, srv.KafkaAddr())
	expectClosed(t, over, 3*time.Second)
	for _, c := range open {
		expectServed(t, c)
	}
	set(5)
	expectServed(t, dialFrom(t, src, srv.KafkaAddr()))
	if got := srv.Stats().Limits[1]; got.Flag != "max-connections-per-ip" || got.Value != "5" {
		t.Fatalf("/admin/stats row %+v, want max-connections-per-ip 5", got)
	}
	bad := srv.Limits()
	bad.MaxConnectionsPerIP = 0
	if err := srv.SetLimits(bad, loop.HTTPLimitsFrom(&hc)); err == nil {
		t.Fatal("SetLimits took max-connections-per-ip 0")
	}
	if srv.Limits().MaxConnectionsPerIP != 5 {
		t.Fatal("a refused SetLimits changed the limits")
	}
}

// TestSetLimitsChangesHTTPLimitsLive: the loop's header limits and the
// API's rate limits change for the next request on the same keep-alive
// connection; a --route cannot change live.
func TestSetLimitsChangesHTTPLimitsLive(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	cl := &http.Client{Timeout: 3 * time.Second}
	get := func(headers int) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+srv.HTTPAddr()+"/health", nil)
		for i := 0; i < headers; i++ {
			req.Header.Set(fmt.Sprintf("X-H%d", i), "v")
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(10); code != 200 {
		t.Fatalf("10 headers under the default limit: %d", code)
	}
	hc := limits.HTTPDefaults()
	hc.HeaderReadTimeout = 10 * time.Second
	hc.MaxHeaderCount = 8
	hc.RPSPerClient = 1 // burst 10
	if err := srv.SetLimits(srv.Limits(), loop.HTTPLimitsFrom(&hc)); err != nil {
		t.Fatal(err)
	}
	if err := srv.API.SetLimits(&hc); err != nil {
		t.Fatal(err)
	}
	if code := get(10); code != 431 {
		t.Fatalf("10 headers over the lowered max-header-count 8: %d, want 431", code)
	}
	codes := map[int]int{}
	for i := 0; i < 15; i++ {
		codes[get(0)]++
	}
	if codes[429] == 0 {
		t.Fatalf("15 requests at 1 request/s (burst 10): %v, want some 429", codes)
	}
	withRoute := hc
	withRoute.Routes = []limits.Route{{Name: "new", Prefix: "/new"}}
	if err := srv.API.SetLimits(&withRoute); err == nil {
		t.Fatal("SetLimits took a new --route")
	}
}

// TestSetLimitsSizesTheSocketBuffersOfNewConnections: the socket buffer
// sizes start at the kernel's autotuning (gauges 0) and a reload sets them
// on the listeners, which the kernel reports doubled; serving goes on. A
// reload back to -1 leaves the listeners' sizes, and the gauges show them.
func TestSetLimitsSizesTheSocketBuffersOfNewConnections(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	gauge := func(direction string) string {
		var b strings.Builder
		srv.Metrics.WritePrometheus(&b)
		prefix := `floodgate_socket_buffer_bytes{direction="` + direction + `"} `
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return v
			}
		}
		return "(absent)"
	}
	if s, r := gauge("send"), gauge("receive"); s != "0" || r != "0" {
		t.Fatalf("at the defaults the gauges are %s / %s, want 0 / 0 (autotuning)", s, r)
	}
	lim := srv.Limits()
	lim.SocketSendBuffer, lim.SocketReceiveBuffer = 40000, 24000
	hc := limits.HTTPDefaults()
	if err := srv.SetLimits(lim, loop.HTTPLimitsFrom(&hc)); err != nil {
		t.Fatal(err)
	}
	if s, r := gauge("send"), gauge("receive"); s != "80000" || r != "48000" {
		t.Fatalf("after the reload the gauges are %s / %s, want 80000 / 48000", s, r)
	}
	expectServed(t, dialFrom(t, "127.0.0.6", srv.KafkaAddr()))
	// Back to autotuning: a listening socket cannot unset its sizes, so
	// they stay (a WARN says a restart is needed) and the gauges say so.
	lim.SocketSendBuffer, lim.SocketReceiveBuffer = -1, -1
	if err := srv.SetLimits(lim, loop.HTTPLimitsFrom(&hc)); err != nil {
		t.Fatal(err)
	}
	if s, r := gauge("send"), gauge("receive"); s != "80000" || r != "48000" {
		t.Fatalf("after a reload back to -1 the gauges are %s / %s, want the sizes the listeners keep, 80000 / 48000", s, r)
	}
	lim.SocketSendBuffer = 1000
	if err := srv.SetLimits(lim, loop.HTTPLimitsFrom(&hc)); err == nil {
		t.Fatal("SetLimits took a socket send buffer of 1000 bytes (below 4096)")
	}
}

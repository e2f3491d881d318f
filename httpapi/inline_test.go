package httpapi_test

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/httpapi"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// TestServeInlineAnswersOnlyWhatCannotWait: the event loop may answer
// /health, /ready, unknown routes and wrong methods itself; REST routes
// (the broker), /metrics (milliseconds, /proc), /admin/stats (it waits for
// every event loop) and compressed bodies go to the pool.
func TestServeInlineAnswersOnlyWhatCannotWait(t *testing.T) {
	api, err := httpapi.New(httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	tests := []struct {
		head   string
		body   string
		inline bool
		status int
	}{
		{"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "", true, 200},
		{"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", "", true, 200},
		{"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", "", true, 200},
		{"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "", true, 405},
		{"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "", true, 404},
		{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "", false, 0},
		{"GET /admin/stats HTTP/1.1\r\nHost: x\r\n\r\n", "", false, 0},
		{"GET /topics HTTP/1.1\r\nHost: x\r\n\r\n", "", false, 0},
		{"POST /topics/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n", "{}", false, 0},
		{"GET /health HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n", "abc", false, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.head)[0]+" "+strings.Fields(tt.head)[1], func(t *testing.T) {
			var req httpcodec.Request
			if _, err := httpcodec.ParseHead([]byte(tt.head), nil, &req); err != nil {
				t.Fatal(err)
			}
			r := &loop.HTTPRequest{Head: &req, Body: []byte(tt.body), RemoteIP: netip.MustParseAddr("127.0.0.1")}
			resp, ok := api.ServeInline(r)
			if ok != tt.inline {
				t.Fatalf("answered inline: %v, want %v", ok, tt.inline)
			}
			if ok && resp.Status != tt.status {
				t.Fatalf("status %d, want %d", resp.Status, tt.status)
			}
		})
	}
}

// TestInlineAnswersKeepAdmissionAndMetrics: answers made on the event
// loop go through the same admission (a --route's rate limit on /health
// answers 429 naming it) and are counted per route and status.
func TestInlineAnswersKeepAdmissionAndMetrics(t *testing.T) {
	t.Parallel()
	r, err := limits.ParseRoute("probe:/health,rps=1,burst=2")
	if err != nil {
		t.Fatal(err)
	}
	srv := startHTTP(t, func(c *limits.HTTPConfig) { c.Routes = []limits.Route{r} })
	cl := client()
	base := "http://" + srv.HTTPAddr()
	ok, refused := 0, 0
	for i := 0; i < 6; i++ {
		a := do(t, cl, "GET", base+"/health", "", nil)
		switch a.status {
		case 200:
			ok++
		case 429:
			refused++
			if lim, _, _ := limitBody(t, a.body); lim != "route:probe:rps" || a.header.Get("Retry-After") == "" {
				t.Fatalf("429 names %q, Retry-After %q", lim, a.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	if ok < 2 || ok > 3 || refused < 3 {
		t.Fatalf("%d admitted, %d refused; want 2 or 3 admitted (burst 2, 1/s)", ok, refused)
	}
	for i := 0; i < 2; i++ {
		if a := do(t, cl, "GET", base+"/nope", "", nil); a.status != 404 {
			t.Fatalf("/nope: %d", a.status)
		}
	}
	m := do(t, cl, "GET", base+"/metrics", "", nil).body
	for _, want := range []string{
		`floodgate_http_requests_total{route="probe",code="200"} ` + strconv.Itoa(ok),
		`floodgate_http_requests_total{route="probe",code="429"} ` + strconv.Itoa(refused),
		`floodgate_http_requests_total{route="not_found",code="404"} 2`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

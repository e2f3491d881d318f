package httpapi

import (
	"bytes"
	"encoding/json"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/loop"
)

// StatsFunc returns the JSON-encodable state shown by /admin/stats.
type StatsFunc func() any

// Config configures the API.
type Config struct {
	// Metrics is the set exposed by /metrics (with process metrics).
	Metrics *metrics.Set
	// Stats feeds /admin/stats.
	Stats StatsFunc
	// Ready reports readiness for /ready (nil: always ready).
	Ready func() bool
}

// API is the HTTP handler.
type API struct {
	cfg Config
}

// New returns the API.
func New(cfg Config) *API { return &API{cfg: cfg} }

// ServeHTTP routes one request.
func (a *API) ServeHTTP(r *loop.HTTPRequest, respond func(*loop.HTTPResponse)) {
	path := r.Head.Path
	method := r.Head.Method
	switch {
	case bytes.Equal(path, []byte("/health")):
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		respond(&loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"status":"ok"}` + "\n")})
	case bytes.Equal(path, []byte("/ready")):
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		if a.cfg.Ready != nil && !a.cfg.Ready() {
			respond(&loop.HTTPResponse{Status: 503, ContentType: "application/json",
				Header: [][2]string{{"Retry-After", "1"}}, Body: []byte(`{"status":"overloaded"}` + "\n")})
			return
		}
		respond(&loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"status":"ready"}` + "\n")})
	case bytes.Equal(path, []byte("/metrics")):
		if !isGetOrHead(method) {
			respond(methodNotAllowed("GET, HEAD"))
			return
		}
		var buf bytes.Buffer
		if a.cfg.Metrics != nil {
			a.cfg.Metrics.WritePrometheus(&buf)
		}
		metrics.WriteProcessMetrics(&buf)
		respond(&loop.HTTPResponse{Status: 200, ContentType: "text/plain; version=0.0.4", Body: buf.Bytes()})
	case bytes.Equal(path, []byte("/admin/stats")):
		var v any = struct{}{}
		if a.cfg.Stats != nil {
			v = a.cfg.Stats()
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			respond(&loop.HTTPResponse{Status: 500, ContentType: "application/json", Body: []byte(`{"error":"stats"}`)})
			return
		}
		respond(&loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: append(b, '\n')})
	default:
		respond(&loop.HTTPResponse{Status: 404, ContentType: "application/json",
			Body: []byte(`{"error":"no such route"}` + "\n")})
	}
}

func isGetOrHead(m string) bool { return m == "GET" || m == "HEAD" }

func methodNotAllowed(allow string) *loop.HTTPResponse {
	return &loop.HTTPResponse{Status: 405, ContentType: "application/json", Header: [][2]string{{"Allow", allow}},
		Body: []byte(`{"error":"method not allowed"}` + "\n")}
}

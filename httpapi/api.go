package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// StatsFunc returns the JSON-encodable state shown by /admin/stats.
type StatsFunc func() any

// Config configures the API.
type Config struct {
	// Metrics is the set exposed by /metrics (with process metrics); the
	// API's own metrics register in it. nil means a private set.
	Metrics *metrics.Set
	// Stats feeds /admin/stats.
	Stats StatsFunc
	// Ready reports readiness for /ready (nil: always ready); the API adds
	// its own overload conditions (process memory).
	Ready func() bool
	// Kafka serves the REST API's Kafka requests (the embedded broker or a
	// gateway); nil answers the topic routes with 503.
	Kafka loop.KafkaHandler
	// Limits are the HTTP limits; the API enforces the rate, in-flight,
	// per-route, memory and decompression limits (the loop enforces the
	// header, body and timeout ones). nil means limits.HTTPDefaults().
	Limits *limits.HTTPConfig
	// InFlight returns the requests in flight, Kafka and HTTP
	// (loop.Server.InFlight); nil disables --max-in-flight-requests.
	InFlight func() int64
	// EventLoops is the number of event loops (loop.Server.EventLoops),
	// for --max-in-flight-requests-per-event-loop.
	EventLoops int
	// Logger receives WARN logs; nil means slog.Default().
	Logger *slog.Logger
	// Budget is the loop's memory budget (loop.Server.Budget): what the
	// API allocates for a request (decompressed body, decoded records,
	// REST answers) is charged to it while the request is served. nil
	// means a private budget of --request-memory-bytes' default.
	Budget *limits.Budget
}

// API is the HTTP handler.
type API struct {
	cfg  Config
	gate *gate
	// consumers are the v2 consumer instances.
	consumers *consumerManager
	rr        atomic.Uint32 // round-robin partitioner of keyless records
	// fixed are the answers that never change, built once: the loop
	// only reads a response, so they are shared by every request.
	fixed fixedAnswers
	// access says who may use which route (access.go).
	access Access
}

// fixedAnswers are the constant answers of the cheap routes.
type fixedAnswers struct {
	health, ready, overloaded, notFound, getOrHeadOnly *loop.HTTPResponse
}

func newFixedAnswers() fixedAnswers {
	// Prepared: encoded once, copied as bytes by the loop per request.
	prep := loop.PrepareHTTPResponse
	return fixedAnswers{
		health:     prep(&loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"status":"ok"}` + "\n")}),
		ready:      prep(&loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"status":"ready"}` + "\n")}),
		overloaded: prep(&loop.HTTPResponse{Status: 503, ContentType: "application/json", Header: [][2]string{{"Retry-After", "1"}}, Body: []byte(`{"status":"overloaded"}` + "\n")}),
		notFound: prep(&loop.HTTPResponse{Status: 404, ContentType: "application/json",
			Body: []byte(`{"error_code":404,"message":"no such route"}` + "\n")}),
		getOrHeadOnly: prep(methodNotAllowed("GET, HEAD")),
	}
}

// New returns the API and starts its memory watcher (when a memory limit
// is set); Close stops it.
func New(cfg Config) (*API, error) {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	if cfg.Limits == nil {
		d := limits.HTTPDefaults()
		cfg.Limits = &d
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	if cfg.Budget == nil {
		cfg.Budget = limits.NewBudget(limits.Defaults().MemoryLimitBytes, 0)
	}
	g, err := newGate(cfg.Limits, cfg.Metrics, cfg.EventLoops, cfg.Budget, cfg.Logger)
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, gate: g, fixed: newFixedAnswers()}
	if cfg.Kafka != nil {
		a.consumers = newConsumerManager(a)
	}
	if g.memLimit.Load() > 0 {
		a.startMemoryWatcher()
	}
	return a, nil
}

// startMemoryWatcher starts sampling the process's memory, unless it
// runs already.
func (a *API) startMemoryWatcher() {
	g := a.gate
	g.watchMu.Lock()
	defer g.watchMu.Unlock()
	if g.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop, g.done = cancel, make(chan struct{})
	first := make(chan struct{})
	go func() {
		close(first)
		g.watchMemory(ctx, a.cfg.Logger.Warn)
	}()
	<-first
}

// Close stops the memory watcher and deletes every consumer instance
// (each leaves its group).
func (a *API) Close() {
	if a.consumers != nil {
		a.consumers.close()
	}
	g := a.gate
	g.watchMu.Lock()
	defer g.watchMu.Unlock()
	if g.stop != nil {
		g.stop()
		<-g.done
		g.stop = nil
	}
}

// Ready reports whether the server is not overloaded: the loop's own
// readiness and the process memory limit.
func (a *API) Ready() bool {
	if a.gate.memLimit.Load() > 0 && a.gate.memOver.Load() {
		return false
	}
	return a.cfg.Ready == nil || a.cfg.Ready()
}

// endpoint classifies a path.
func endpoint(path []byte) int {
	switch string(path) {
	case "/health":
		return epHealth
	case "/ready":
		return epReady
	case "/metrics":
		return epMetrics
	case "/admin/stats":
		return epAdminStats
	case "/topics", "/topics/":
		return epTopics
	case "/brokers":
		return epBrokers
	}
	switch {
	case bytes.HasPrefix(path, []byte("/consumers/")):
		return epConsumers
	case bytes.HasPrefix(path, []byte("/v3/")):
		return epV3
	case !bytes.HasPrefix(path, []byte("/topics/")):
		return epNotFound
	}
	switch n := bytes.Count(path, []byte("/")); {
	case n == 2:
		return epTopic
	case n == 3 && bytes.HasSuffix(path, []byte("/partitions")):
		return epPartitions
	case n == 4 && bytes.Contains(path, []byte("/partitions/")):
		return epPartition
	case n == 5 && bytes.HasSuffix(path, []byte("/records")):
		return epRecords
	case n == 5 && bytes.HasSuffix(path, []byte("/offsets")):
		return epOffsets
	}
	return epNotFound
}

// ServeHTTP routes one request: admission (memory, rate, in-flight and
// per-route limits), body decompression, then the endpoint. Whatever
// admission took (tickets and the memory charge) is released exactly once,
// when the response is produced, also when a handler panics: the request
// is then answered 500 here, on whichever goroutine it was continuing.
func (a *API) ServeHTTP(r *loop.HTTPRequest, respond func(*loop.HTTPResponse)) {
	ep := endpoint(r.Head.Path)
	c := a.begin(r, ep, respond)
	if c == nil {
		return
	}
	defer c.recover()
	if refusal := a.authenticate(ep, r); refusal != nil {
		c.respond(refusal)
		return
	}
	body, refusal := a.gate.decodeBody(r, c.rt, c.ch)
	if refusal != nil {
		c.respond(refusal)
		return
	}
	a.serve(ep, c, body)
}

// begin admits a request: it answers a refusal itself (and returns nil),
// or returns the call whose respond releases what admission took, once.
func (a *API) begin(r *loop.HTTPRequest, ep int, respond func(*loop.HTTPResponse)) *call {
	rt := a.gate.match(r.Head.Path, ep)
	tk, refusal := a.gate.admit(r, rt, ep, a.cfg.InFlight)
	if refusal != nil {
		a.gate.count(rt, refusal.Status)
		respond(refusal)
		return nil
	}
	ch := &charge{b: a.gate.budget, share: r.Share}
	var done atomic.Bool
	finish := func(resp *loop.HTTPResponse) {
		if !done.CompareAndSwap(false, true) {
			return
		}
		a.gate.count(rt, resp.Status)
		// The loop charges the encoded response before this returns; the
		// request's own charge (the answer being built) goes after it.
		defer func() {
			ch.release()
			a.gate.release(tk)
		}()
		respond(resp)
	}
	return &call{r: r, rt: rt, ch: ch, respond: finish, a: a}
}

// call is one request being served: its answer function (finish) and the
// memory it is charged for. Every continuation of the request (a Kafka
// answer arriving on another goroutine) runs under call.recover.
type call struct {
	a       *API
	r       *loop.HTTPRequest
	rt      *route
	ch      *charge
	respond func(*loop.HTTPResponse)
}

// recover turns a panic of the request's code into a 500 answer, which
// releases what the request held; deferred by every goroutine that runs
// the request's code.
func (c *call) recover() {
	p := recover()
	if p == nil {
		return
	}
	c.a.gate.panics.Inc()
	if c.a.gate.warn.Allow("panic") { // a request that panics every time must not flood the log
		c.a.cfg.Logger.Error("http handler panicked; answered 500", "path", string(c.r.Head.Path), "panic", fmt.Sprint(p),
			"stack", string(debug.Stack()))
	}
	c.respond(&loop.HTTPResponse{Status: 500, ContentType: "application/json",
		Body: []byte(`{"error_code":50001,"message":"internal error"}` + "\n")})
}

// ServeInline answers on the event loop the requests whose answer costs a
// few hundred nanoseconds and can never wait: /health, /ready, unknown
// routes and wrong methods, with their admission (and its refusals) as in
// ServeHTTP. The rest goes to the pool: the REST routes call the Kafka
// handler; /admin/stats waits for every event loop to report its
// connections (on a loop it would wait for itself); /metrics takes
// milliseconds and reads /proc (the descriptor directory lists every
// connection), which on the loop would let a client pipelining /metrics
// stall every connection of that loop; a compressed body is inflated
// first.
func (a *API) ServeInline(r *loop.HTTPRequest) (*loop.HTTPResponse, bool) {
	ep := endpoint(r.Head.Path)
	if !inlineEndpoint(ep) {
		return nil, false
	}
	if enc := r.Head.ContentEncoding; len(r.Body) > 0 && enc != "" && enc != "identity" {
		return nil, false
	}
	rt := a.gate.match(r.Head.Path, ep)
	tk, refusal := a.gate.admit(r, rt, ep, a.cfg.InFlight)
	if refusal != nil {
		a.gate.count(rt, refusal.Status)
		return refusal, true
	}
	resp := a.serveCheap(ep, r)
	a.gate.release(tk)
	a.gate.count(rt, resp.Status)
	return resp, true
}

// inlineEndpoint reports whether an endpoint is answered on the event loop.
func inlineEndpoint(ep int) bool {
	return ep == epHealth || ep == epReady || ep == epNotFound
}

// isREST reports whether an endpoint is served by the Kafka handler.
func isREST(ep int) bool {
	switch ep {
	case epTopics, epTopic, epPartition, epRecords, epOffsets, epConsumers, epBrokers, epV3, epPartitions:
		return true
	}
	return false
}

func (a *API) serve(ep int, c *call, body []byte) {
	if isREST(ep) {
		a.serveREST(ep, c, body)
		return
	}
	c.respond(a.serveCheap(ep, c.r))
}

// serveCheap answers the endpoints that need no I/O and no waiting.
func (a *API) serveCheap(ep int, r *loop.HTTPRequest) *loop.HTTPResponse {
	if ep == epNotFound {
		return a.fixed.notFound
	}
	if !isGetOrHead(r.Head.Method) {
		return a.fixed.getOrHeadOnly
	}
	switch ep {
	case epHealth:
		return a.fixed.health
	case epReady:
		if !a.Ready() {
			return a.fixed.overloaded
		}
		return a.fixed.ready
	case epMetrics:
		var raw, buf bytes.Buffer
		a.cfg.Metrics.WritePrometheus(&raw)
		metrics.WriteProcessMetrics(&raw)
		appendWithHelp(&buf, raw.Bytes())
		return &loop.HTTPResponse{Status: 200, ContentType: "text/plain; version=0.0.4", Body: buf.Bytes()}
	case epAdminStats:
		b, err := json.MarshalIndent(a.stats(), "", "  ")
		if err != nil {
			return &loop.HTTPResponse{Status: 500, ContentType: "application/json", Body: []byte(`{"error":"stats: ` + jsonEscape(err.Error()) + `"}`)}
		}
		return &loop.HTTPResponse{Status: 200, ContentType: "application/json", Body: append(b, '\n')}
	}
	return a.fixed.notFound
}

// HTTPLimitStat is one HTTP limit in /admin/stats.
type HTTPLimitStat struct {
	Flag    string `json:"flag"`
	Value   string `json:"value"`
	Unit    string `json:"unit"`
	Metric  string `json:"metric"`
	Tripped uint64 `json:"tripped"`
	// Source is where the value came from (flag, env, file, profile,
	// default), when the loop's stats say (loop.Stats.Sources).
	Source string `json:"source,omitempty"`
}

// HTTPRouteStat is one route in /admin/stats.
type HTTPRouteStat struct {
	Name     string `json:"name"`
	Spec     string `json:"spec,omitempty"`
	InFlight int64  `json:"in_flight"`
}

// stats merges the loop's stats with the HTTP limits, how often each
// tripped, the routes and the process memory.
func (a *API) stats() map[string]any {
	out := map[string]any{}
	if a.cfg.Stats != nil {
		if b, err := json.Marshal(a.cfg.Stats()); err == nil {
			_ = json.Unmarshal(b, &out)
		}
	}
	g := a.gate
	refused := map[string]uint64{}
	for _, name := range a.cfg.Metrics.ListMetricNames() {
		if strings.HasPrefix(name, "floodgate_http_refused_total{") {
			if i := strings.Index(name, `limit="`); i >= 0 {
				lim := name[i+len(`limit="`):]
				lim = lim[:strings.IndexByte(lim, '"')]
				refused[lim] += a.cfg.Metrics.GetOrCreateCounter(name).Get()
			}
		}
	}
	var rows []HTTPLimitStat
	sources, _ := out["limit_sources"].(map[string]any)
	for _, l := range limits.HTTPTable {
		// floodgate_http_refused_total names a renamed limit by its
		// former name (limits.Label), now an alias.
		var n uint64
		for _, name := range append([]string{l.Flag}, l.Aliases...) {
			n += refused[name]
			if c := g.tripped[name]; c != nil {
				n += c.Get()
			}
		}
		if l.Flag == "max-decompressed-size-bytes" {
			n += g.tripped["content-encoding"].Get()
		}
		src, _ := sources[l.Flag].(string)
		rows = append(rows, HTTPLimitStat{Flag: l.Flag, Value: g.conf().Value(l.Flag), Unit: l.Unit, Metric: l.Metric, Tripped: n, Source: src})
	}
	if n := refused["header-read-timeout"]; n > 0 {
		for i := range rows {
			if rows[i].Flag == "header-read-timeout" {
				rows[i].Tripped = n
			}
		}
	}
	out["http_limits"] = rows
	var routes []HTTPRouteStat
	for _, r := range g.routes {
		rs := HTTPRouteStat{Name: r.name, InFlight: r.active.Load()}
		if r.spec != nil {
			rs.Spec = r.spec.String()
		}
		routes = append(routes, rs)
	}
	out["http_routes"] = routes
	tripped := map[string]uint64{}
	for k, c := range g.tripped {
		tripped[k] = c.Get()
	}
	for k, c := range g.refused {
		tripped[`floodgate_http_requests_refused_total{reason="`+k+`"}`] = c.Get()
	}
	for k, c := range g.rateHit {
		tripped[`floodgate_rate_limit_exceeded_total{scope="`+k+`"}`] = c.Get()
	}
	out["http_tripped"] = tripped
	perLoop := make([]int64, len(g.perLoop))
	for i := range g.perLoop {
		perLoop[i] = g.perLoop[i].Load()
	}
	out["http_in_flight_per_worker"] = perLoop
	out["process_memory_limit_bytes"] = g.memLimit.Load()
	out["process_memory_over_limit"] = g.memLimit.Load() > 0 && g.memOver.Load()
	out["ready"] = a.Ready()
	return out
}

func isGetOrHead(m string) bool { return m == "GET" || m == "HEAD" }

func methodNotAllowed(allow string) *loop.HTTPResponse {
	return &loop.HTTPResponse{Status: 405, ContentType: "application/json", Header: [][2]string{{"Allow", allow}},
		Body: []byte(`{"error_code":405,"message":"method not allowed"}` + "\n")}
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

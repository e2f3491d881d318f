package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/floodgate/floodgate/codec/httpcodec"
	"github.com/floodgate/floodgate/limits"
	"github.com/floodgate/floodgate/loop"
)

// Built-in endpoints. Each is a route for metrics and per-route limits
// unless a --route prefix claims the request first.
const (
	epHealth = iota
	epReady
	epMetrics
	epAdminStats
	epTopics
	epTopic
	epPartition
	epRecords
	epOffsets
	epConsumers  // /consumers/...
	epBrokers    // /brokers
	epV3         // /v3/...
	epPartitions // /topics/{topic}/partitions
	epNotFound
	numEndpoints
)

var endpointNames = [numEndpoints]string{
	"health", "ready", "metrics", "admin_stats", "topics", "topic", "partition", "records", "offsets",
	"consumers", "brokers", "v3", "partitions", "not_found",
}

// exempt reports whether an endpoint answers even under memory and
// in-flight limits: probes and metrics must work during an overload.
func exempt(ep int) bool { return ep == epHealth || ep == epReady || ep == epMetrics }

// countedCodes are the statuses whose per-route series are created at start.
var countedCodes = []int{200, 201, 204, 400, 404, 405, 406, 408, 409, 413, 415, 422, 429, 500, 503, 504}

// route is the limit and metric state of one route (an endpoint or a --route).
type route struct {
	name     string
	key      []byte        // name, the bucket key of --max-requests-per-second-per-route
	prefix   []byte        // spec.Prefix
	spec     *limits.Route // nil for a built-in endpoint
	active   atomic.Int64  // requests being served
	rate     *limits.Buckets
	rateFlag string
	codes    map[int]*metrics.Counter // read-only after New
}

// gate holds the admission state of the API: every limit it enforces,
// the counters that say how often each tripped, and the memory watcher.
type gate struct {
	// cur holds the limits a reload may change (live.go).
	cur    atomic.Pointer[gateLimits]
	set    *metrics.Set
	routes []*route // endpoints first, then --routes in the order given

	perLoop []atomic.Int64

	memLimit atomic.Int64
	memUsed  atomic.Int64
	memOver  atomic.Bool
	// watchMu guards starting and stopping the memory watcher.
	watchMu sync.Mutex
	stop    context.CancelFunc
	done    chan struct{}

	// refused counts HTTP requests refused by a limit of the gate
	// (floodgate_http_requests_refused_total{reason}); reached is the same
	// count under its old name, floodgate_connection_limit_reached_total,
	// kept one release (deprecated: that name now counts refused
	// connections, as the documents mean it).
	refused  map[string]*metrics.Counter
	reached  map[string]*metrics.Counter
	rateHit  map[string]*metrics.Counter // floodgate_rate_limit_exceeded_total{scope}
	tripped  map[string]*metrics.Counter // per HTTP flag enforced here
	decompRj *metrics.Counter
	panics   *metrics.Counter
	corrupt  *metrics.Counter

	budget *limits.Budget
	warn   *limits.WarnLog // panics and budget refusals, every 10 s per key
	// violations logs every violation (rate-limited per limit), as the
	// loop does.
	violations *limits.WarnLog
}

// limitReasons are the reasons of floodgate_connection_limit_reached_total.
var limitReasons = []string{"in_flight", "in_flight_per_worker", "route", "memory", "queue"}

// rateScopes are the scopes of floodgate_rate_limit_exceeded_total.
var rateScopes = []string{"global", "client", "route"}

func newGate(cfg *limits.HTTPConfig, set *metrics.Set, loops int, budget *limits.Budget, log *slog.Logger) (*gate, error) {
	g := &gate{set: set, reached: map[string]*metrics.Counter{}, rateHit: map[string]*metrics.Counter{},
		tripped: map[string]*metrics.Counter{}, budget: budget, warn: limits.NewWarnLog(log, 10*time.Second),
		refused: map[string]*metrics.Counter{}, violations: limits.NewWarnLog(log, time.Second)}
	if loops < 1 {
		loops = 1
	}
	g.perLoop = make([]atomic.Int64, loops)
	for i := 0; i < numEndpoints; i++ {
		g.routes = append(g.routes, &route{name: endpointNames[i], key: []byte(endpointNames[i])})
	}
	for i := range cfg.Routes {
		spec := &cfg.Routes[i]
		for _, r := range g.routes {
			if r.name == spec.Name {
				return nil, errors.New("httpapi: --route " + spec.Name + ": the name is taken by a built-in endpoint or another route")
			}
		}
		r := &route{name: spec.Name, key: []byte(spec.Name), prefix: []byte(spec.Prefix), spec: spec}
		if spec.RPS > 0 {
			r.rate = limits.NewBuckets(float64(spec.RPS), float64(spec.Burst))
			r.rateFlag = "route:" + spec.Name + ":rps"
		}
		g.routes = append(g.routes, r)
	}
	for _, r := range g.routes {
		r.codes = make(map[int]*metrics.Counter, len(countedCodes))
		for _, c := range countedCodes {
			r.codes[c] = set.GetOrCreateCounter(`floodgate_http_requests_total{route="` + r.name + `",code="` + strconv.Itoa(c) + `"}`)
		}
	}
	g.cur.Store(newGateLimits(cfg, nil))
	for _, r := range limitReasons {
		g.reached[r] = set.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="` + r + `"}`) // deprecated
		g.refused[r] = set.GetOrCreateCounter(`floodgate_http_requests_refused_total{reason="` + r + `"}`)
	}
	for _, s := range rateScopes {
		g.rateHit[s] = set.GetOrCreateCounter(`floodgate_rate_limit_exceeded_total{scope="` + s + `"}`)
	}
	// tripped is keyed by flag; a renamed limit's series keeps its
	// published label (limits.Label).
	for _, f := range []string{"max-decompression-ratio", "max-decompressed-size-bytes", "content-encoding",
		"max-connections-per-route", "max-in-flight-requests", limits.MaxInFlightPerEventLoop,
		"max-requests-per-second-global", "max-requests-per-second-per-client", "max-requests-per-second-per-route",
		limits.MaxProcessMemoryBytes, limits.RequestMemoryBytes, "max-rest-response-bytes", "max-rest-records-per-request"} {
		g.tripped[f] = set.NewCounter(`floodgate_http_limit_tripped_total{limit="` + limits.Label(f) + `"}`)
	}
	for _, r := range g.routes {
		if r.rate != nil {
			g.tripped[r.rateFlag] = set.NewCounter(`floodgate_http_limit_tripped_total{limit="` + r.rateFlag + `"}`)
		}
	}
	// The loop counts these; created here so they are exported at 0.
	set.GetOrCreateCounter("floodgate_header_size_exceeded_total")
	set.GetOrCreateCounter("floodgate_body_size_exceeded_total")
	g.decompRj = set.GetOrCreateCounter("floodgate_decompression_rejected_total")
	g.panics = set.GetOrCreateCounter("floodgate_http_handler_panics_total")
	g.corrupt = set.GetOrCreateCounter("floodgate_rest_corrupt_batches_total")

	g.memLimit.Store(cfg.MemoryLimit(limits.MemoryTotal()))
	set.NewGauge("floodgate_memory_usage_bytes", func() float64 { return float64(loop.ResidentBytes()) })
	set.NewGauge("floodgate_memory_limit_process_bytes", func() float64 { return float64(g.memLimit.Load()) })
	return g, nil
}

// watchMemory samples the process's memory until ctx ends.
func (g *gate) watchMemory(ctx context.Context, warn func(msg string, args ...any)) {
	defer close(g.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		used, limit := loop.ResidentBytes(), g.memLimit.Load()
		g.memUsed.Store(used)
		over := limit > 0 && used >= limit
		switch was := g.memOver.Load(); {
		case over && !was:
			warn("process memory limit reached: new Kafka connections are refused with THROTTLING_QUOTA_EXCEEDED, "+
				"Kafka requests answered with REQUEST_TIMED_OUT, HTTP requests with 503 (probes excepted)", "limit", limits.MaxProcessMemoryBytes,
				"configured", limit, "actual", used)
		case !over && was:
			warn("process memory back under its limit: serving again", "limit", limits.MaxProcessMemoryBytes,
				"configured", limit, "actual", used)
		}
		g.memOver.Store(over)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MemoryOver reports whether the process is over
// --max-process-memory-bytes (or --max-process-memory-percent) as last
// sampled, with the limit and the sample: the event loop refuses Kafka
// connections and requests on it (loop.ProcessMemory).
func (a *API) MemoryOver() (over bool, limit, used int64) {
	g := a.gate
	limit = g.memLimit.Load()
	if limit <= 0 {
		return false, 0, 0
	}
	return g.memOver.Load(), limit, g.memUsed.Load()
}

// match returns the route of a request: the longest --route prefix, else
// the endpoint.
func (g *gate) match(path []byte, ep int) *route {
	var best *route
	for _, r := range g.routes[numEndpoints:] {
		if bytes.HasPrefix(path, r.prefix) && (best == nil || len(r.prefix) > len(best.prefix)) {
			best = r
		}
	}
	if best != nil {
		return best
	}
	return g.routes[ep]
}

// count adds one answer to floodgate_http_requests_total.
func (g *gate) count(rt *route, status int) {
	if c := rt.codes[status]; c != nil {
		c.Inc()
		return
	}
	g.set.GetOrCreateCounter(`floodgate_http_requests_total{route="` + rt.name + `",code="` + strconv.Itoa(status) + `"}`).Inc()
}

// ticket is what admit took for one request; release gives it back. A
// value, so that admitting a request allocates nothing.
type ticket struct {
	loop  int
	route *route
}

// admit applies the memory, rate, in-flight and per-route limits to r. It
// returns a refusal, or a ticket to release when the response is produced.
func (g *gate) admit(r *loop.HTTPRequest, rt *route, ep int, inFlight func() int64) (ticket, *loop.HTTPResponse) {
	cur := g.cur.Load()
	cfg := cur.cfg
	if !exempt(ep) && g.memOver.Load() {
		if limit := g.memLimit.Load(); limit > 0 {
			g.countRefused("memory")
			g.tripped[limits.MaxProcessMemoryBytes].Inc()
			return ticket{}, g.unavailable(r, rt, limits.MaxProcessMemoryBytes, limit, g.memUsed.Load(), "process memory limit reached")
		}
	}
	var now time.Time
	if cur.global != nil || cur.perClient != nil || cur.perRoute != nil || rt.rate != nil {
		now = time.Now() // read only when a rate limit is on (none by default): this runs per request
	}
	if global := cur.global; global != nil {
		if res := global.Allow(nil, now); !res.OK {
			return ticket{}, g.tooMany(r, rt, "global", "max-requests-per-second-global", global, res)
		}
	}
	if perClient := cur.perClient; perClient != nil {
		ip := r.RemoteIP.As16()
		if res := perClient.Allow(ip[:], now); !res.OK {
			return ticket{}, g.tooMany(r, rt, "client", "max-requests-per-second-per-client", perClient, res)
		}
	}
	if perRoute := cur.perRoute; perRoute != nil {
		if res := perRoute.Allow(rt.key, now); !res.OK {
			return ticket{}, g.tooMany(r, rt, "route", "max-requests-per-second-per-route", perRoute, res)
		}
	}
	if rt.rate != nil {
		if res := rt.rate.Allow(routeKey(rt.spec, r), now); !res.OK {
			return ticket{}, g.tooMany(r, rt, "route", rt.rateFlag, rt.rate, res)
		}
	}
	if exempt(ep) {
		return ticket{loop: -1}, nil
	}
	if cfg.MaxInFlight > 0 && inFlight != nil {
		// The loop counts this request already.
		if n := inFlight(); n > int64(cfg.MaxInFlight) {
			g.countRefused("in_flight")
			g.tripped["max-in-flight-requests"].Inc()
			return ticket{}, g.unavailable(r, rt, "max-in-flight-requests", int64(cfg.MaxInFlight), n, "too many requests in flight")
		}
	}
	li := r.Loop % len(g.perLoop)
	if n := g.perLoop[li].Add(1); cfg.MaxInFlightPerEventLoop > 0 && n > int64(cfg.MaxInFlightPerEventLoop) {
		g.perLoop[li].Add(-1)
		g.countRefused("in_flight_per_worker")
		g.tripped[limits.MaxInFlightPerEventLoop].Inc()
		return ticket{}, g.unavailable(r, rt, limits.MaxInFlightPerEventLoop, int64(cfg.MaxInFlightPerEventLoop), n, "too many requests in flight on this event loop")
	}
	if n := rt.active.Add(1); cfg.MaxConnectionsPerRoute > 0 && n > int64(cfg.MaxConnectionsPerRoute) {
		rt.active.Add(-1)
		g.perLoop[li].Add(-1)
		g.countRefused("route")
		g.tripped["max-connections-per-route"].Inc()
		return ticket{}, g.unavailable(r, rt, "max-connections-per-route", int64(cfg.MaxConnectionsPerRoute), n, "too many concurrent requests on route "+rt.name)
	}
	return ticket{loop: li, route: rt}, nil
}

// countRefused counts a request refused by the gate for reason, under the
// new name and the deprecated one.
func (g *gate) countRefused(reason string) {
	g.refused[reason].Inc()
	g.reached[reason].Inc()
}

// release gives back what admit took.
func (g *gate) release(t ticket) {
	if t.route == nil || t.loop < 0 {
		return
	}
	g.perLoop[t.loop].Add(-1)
	t.route.active.Add(-1)
}

// routeKey is the rate-limit key of r under a --route's key= option.
func routeKey(spec *limits.Route, r *loop.HTTPRequest) []byte {
	switch spec.Key {
	case limits.KeyClientIP:
		ip := r.RemoteIP.As16()
		return ip[:]
	case limits.KeyHeader:
		if v := r.Head.HeaderBytes(spec.Header); v != nil {
			return append([]byte("h:"), v...)
		}
		ip := r.RemoteIP.As16()
		return ip[:]
	case limits.KeyPath:
		return r.Head.Path
	}
	return nil
}

// tooMany builds a 429 with Retry-After (whole seconds until a token) and
// X-RateLimit-Limit (requests per second), -Remaining (tokens left) and
// -Reset (seconds until the bucket is full).
func (g *gate) tooMany(r *loop.HTTPRequest, rt *route, scope, flag string, rl *limits.Buckets, res limits.RateResult) *loop.HTTPResponse {
	g.rateHit[scope].Inc()
	if c := g.tripped[flag]; c != nil {
		c.Inc()
	}
	retry := ceilSeconds(res.Wait)
	if retry < 1 {
		retry = 1
	}
	// A bucket holds burst requests: past them the client sent more than
	// the rate allows over the burst's window, which is what "actual" says.
	// The arguments are built only when the line is due: a flood of
	// refusals costs a map lookup each, not a log line's allocations.
	if g.violations.Due(flag) {
		g.violations.Warn(flag, "http request over its rate limit", "limit", flag, "status", 429,
			"configured", rl.Rate(), "actual", "over rate: burst of "+strconv.FormatFloat(rl.Burst(), 'f', -1, 64)+" used",
			"client_ip", r.RemoteIP.String(), "route", rt.name, "retry_after_s", retry)
	}
	return &loop.HTTPResponse{Status: 429, ContentType: "application/json",
		Header: [][2]string{
			{"Retry-After", strconv.FormatInt(retry, 10)},
			{"X-RateLimit-Limit", strconv.FormatFloat(rl.Rate(), 'f', -1, 64)},
			{"X-RateLimit-Remaining", strconv.Itoa(res.Remaining)},
			{"X-RateLimit-Reset", strconv.FormatInt(ceilSeconds(res.Full), 10)},
		},
		Body: limitErrorBody(429, flag, int64(rl.Rate()), 0, "rate limit exceeded ("+scope+")"),
	}
}

func ceilSeconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }

// unavailable logs a violation answered 503 (rate-limited per limit) and
// builds its answer.
func (g *gate) unavailable(r *loop.HTTPRequest, rt *route, flag string, configured, actual int64, reason string) *loop.HTTPResponse {
	if g.violations.Due(flag) {
		g.violations.Warn(flag, "http request refused: "+reason, "limit", flag, "status", 503,
			"configured", configured, "actual", actual, "client_ip", r.RemoteIP.String(), "route", rt.name)
	}
	return unavailable(flag, configured, actual, reason)
}

// unavailable builds a 503 with Retry-After and Connection: close.
func unavailable(flag string, configured, actual int64, reason string) *loop.HTTPResponse {
	return &loop.HTTPResponse{Status: 503, ContentType: "application/json", Close: true,
		Header: [][2]string{{"Retry-After", "1"}},
		Body:   limitErrorBody(503, flag, configured, actual, reason)}
}

// decodeBody inflates a Content-Encoding body within the decompression
// limits; the refusal is 413 (size, ratio), 415 (unknown coding), 400, or
// 503 when the memory budget cannot hold the inflated bytes. The decoder's
// state and the inflated bytes are charged to ch as they grow, so a request
// holds at most --max-decompressed-size-bytes plus
// httpcodec.DecoderState(encoding) outside the loop's body charge, and only while
// the budget has room for it.
func (g *gate) decodeBody(r *loop.HTTPRequest, rt *route, ch *charge) ([]byte, *loop.HTTPResponse) {
	enc := r.Head.ContentEncoding
	if enc == "" || enc == "identity" || len(r.Body) == 0 {
		return r.Body, nil
	}
	state := httpcodec.DecoderState(enc)
	if !ch.take(state) {
		return nil, g.budgetRefusal("inflating the request body")
	}
	defer ch.give(state)
	cfg := g.conf()
	dec, err := httpcodec.NewLimitedDecoder(enc, bytes.NewReader(r.Body), cfg.MaxDecompressedBytes, cfg.MaxDecompressionRatio)
	if err != nil {
		return nil, g.decodeRefusal(r, rt, err)
	}
	defer dec.Close()
	start := 4 * len(r.Body)
	if b := cfg.MaxBodyBufferBytes; b > 0 && int64(start) > b {
		start = int(b)
	}
	out, err := ch.grow(nil, max(start, 512))
	for err == nil {
		if len(out) == cap(out) {
			// Double, but never past the decompressed-size limit (+1 so the
			// decoder reports crossing it): a 70 MiB body does not charge
			// 128 MiB.
			next := 2 * cap(out)
			if lim := cfg.MaxDecompressedBytes; lim > 0 && int64(next) > lim+1 && lim+1 > int64(cap(out)) {
				next = int(lim + 1)
			}
			if out, err = ch.growTo(out, next); err != nil {
				break
			}
		}
		var n int
		n, err = dec.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
	}
	switch {
	case errors.Is(err, io.EOF):
		return out, nil
	case errors.Is(err, errBudget):
		return nil, g.budgetRefusal("inflating the request body")
	}
	return nil, g.decodeRefusal(r, rt, err)
}

// budgetRefusal answers 503 when the memory budget cannot cover what a
// request would make the API allocate.
func (g *gate) budgetRefusal(what string) *loop.HTTPResponse {
	g.tripped[limits.RequestMemoryBytes].Inc()
	g.countRefused("memory")
	limit, used := g.budget.Limit(), g.budget.Used()
	g.warn.Warn(limits.RequestMemoryBytes, "http request refused: memory budget exhausted", "limit", limits.RequestMemoryBytes,
		"configured", limit, "actual", used, "while", what)
	return unavailable(limits.RequestMemoryBytes, limit, used, "memory budget exhausted while "+what)
}

func (g *gate) decodeRefusal(r *loop.HTTPRequest, rt *route, err error) *loop.HTTPResponse {
	var le *httpcodec.LimitError
	if errors.As(err, &le) {
		g.decompRj.Inc()
		if c := g.tripped[le.Limit]; c != nil {
			c.Inc()
		}
		if g.violations.Due(le.Limit) {
			g.violations.Warn(le.Limit, "http request refused: "+le.Reason, "limit", le.Limit, "status", le.Status,
				"configured", le.Configured, "actual", le.Actual, "client_ip", r.RemoteIP.String(), "route", rt.name)
		}
		return &loop.HTTPResponse{Status: le.Status, ContentType: "application/json",
			Body: limitErrorBody(le.Status, le.Limit, le.Configured, le.Actual, le.Reason)}
	}
	return &loop.HTTPResponse{Status: 400, ContentType: "application/json",
		Body: limitErrorBody(400, "malformed", 0, 0, "corrupt compressed body: "+err.Error())}
}

// limitErrorBody is a refusal's JSON body in Confluent REST Proxy's error
// shape (error_code, message; the code of a generic HTTP error is its
// status, as Confluent's are) with the loop's fields besides: which limit,
// its configured value and, where known, the actual value.
func limitErrorBody(status int, limit string, configured, actual int64, reason string) []byte {
	v := struct {
		ErrorCode  int    `json:"error_code"`
		Message    string `json:"message"`
		Error      string `json:"error"`
		Limit      string `json:"limit"`
		Configured int64  `json:"configured,omitempty"`
		Actual     int64  `json:"actual,omitempty"`
	}{status, reason, reason, limit, configured, actual}
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

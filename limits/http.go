package limits

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HTTPTable lists every HTTP limit once, like Table for the Kafka side.
// --help and /admin/stats are generated from it; the defaults are those of
// the "production" profile.
var HTTPTable = []Limit{
	{Flag: "max-header-size-bytes", Kind: Size, Default: "8192", Unit: "bytes",
		Help: "Request line and headers", Category: CatHTTP,
		Protects: "memory: the request line and header lines, counted as they arrive",
		Answer:   "431 with a JSON body; the connection is closed", Metric: "floodgate_header_size_exceeded_total",
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxHeaderBytes }), Min: 64},
	{Flag: "max-header-count", Kind: Int, Default: "100", Unit: "header fields",
		Help: "Header fields of one request", Category: CatHTTP,
		Protects: "CPU and memory spent on header fields",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total",
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxHeaderCount }), Min: 1},
	{Flag: "max-header-name-bytes", Kind: Size, Default: "256", Unit: "bytes",
		Help: "One header field name", Category: CatHTTP,
		Protects: "one header field name",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total",
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxHeaderNameBytes }), Min: 1},
	{Flag: "max-header-value-bytes", Kind: Size, Default: "4096", Unit: "bytes",
		Help: "One header field value", Category: CatHTTP,
		Protects: "one header field value",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total",
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxHeaderValueBytes }), Min: 1},
	{Flag: "max-body-size-bytes", Kind: Size, Default: "10485760", Unit: "bytes",
		Help: "Request body (de-chunked)", Category: CatHTTP,
		Protects: "memory: a request body (de-chunked, before decompression)",
		Answer:   "413, decided on Content-Length before any body byte is read; chunked bodies are counted as they stream",
		Metric:   "floodgate_body_size_exceeded_total",
		Field:    Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxBodyBytes }), Min: 1},
	{Flag: "max-body-buffer-bytes", Kind: Size, Default: "1048576", Unit: "bytes",
		Help: "Body buffer allocated up front", Category: CatHTTP,
		Protects: "memory committed up front: a body buffer is allocated at most this large and grows only as bytes arrive",
		Answer:   "none (a client announcing a large Content-Length and sending nothing holds at most this much)",
		Metric:   "floodgate_memory_used_bytes",
		Field:    Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxBodyBufferBytes }), Min: 0},
	{Flag: "max-decompression-ratio", Kind: Float, Default: "100", Unit: "decompressed/compressed bytes",
		Help: "Decompressed / compressed body bytes", Category: CatHTTP,
		Protects: "memory and CPU from decompression bombs (checked as bytes inflate, past the first 64 KiB)",
		Answer:   "413", Metric: "floodgate_decompression_rejected_total",
		Field: FloatOf(func(c *HTTPConfig) *float64 { return &c.MaxDecompressionRatio }), Min: 0},
	{Flag: "max-decompressed-size-bytes", Kind: Size, Default: "104857600", Unit: "bytes",
		Help: "Decompressed request body", Category: CatHTTP,
		Protects: "memory: a decompressed request body",
		Answer:   "413 (415 for an unknown Content-Encoding)", Metric: "floodgate_decompression_rejected_total",
		Field: Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxDecompressedBytes }), Min: 0},
	{Flag: "max-connections-per-route", Kind: Int, Default: "1000", Unit: "concurrent requests per route (0 = off)",
		Help: "Requests at once per route (0: off)", Category: CatHTTP,
		Protects: "one route cannot take every worker",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="route"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxConnectionsPerRoute }), Min: 0},
	{Flag: "max-in-flight-requests", Kind: Int, Default: "10000", Unit: "requests, Kafka and HTTP (0 = off)",
		Help: "All requests in flight (0 = off)", Category: CatRequests,
		Protects: "memory and latency of the whole server",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="in_flight"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxInFlight }), Min: 0},
	{Flag: "max-in-flight-requests-per-event-loop", Aliases: []string{"max-in-flight-requests-per-worker"}, Kind: Int, Default: "1000", Unit: "HTTP requests per event loop (0 = off)",
		Help: "HTTP requests per event loop (0 = off)", Category: CatRequests,
		Protects: "one event loop's share of the server",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="in_flight_per_worker"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.MaxInFlightPerEventLoop }), Min: 0},
	{Flag: "max-requests-per-second-global", Kind: Int, Default: "0", Unit: "HTTP requests/s, burst 10x (0 = off)",
		Help: "HTTP requests/s, all clients (0 = off)", Category: CatRates,
		Protects: "the server from the sum of all clients",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="global"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.RPSGlobal }), Min: 0},
	{Flag: "max-requests-per-second-per-client", Kind: Int, Default: "0", Unit: "HTTP requests/s per client IP, burst 10x (0 = off)",
		Help: "HTTP requests/s per client IP (0 = off)", Category: CatRates,
		Protects: "fairness between clients",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="client"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.RPSPerClient }), Min: 0},
	{Flag: "max-requests-per-second-per-route", Kind: Int, Default: "0", Unit: "HTTP requests/s per route, burst 10x (0 = off)",
		Help: "HTTP requests/s per route (0 = off)", Category: CatRates,
		Protects: "one route (or a --route) from all clients together",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="route"}`,
		Field: IntOf(func(c *HTTPConfig) *int { return &c.RPSPerRoute }), Min: 0},
	{Flag: "max-process-memory-bytes", Aliases: []string{"max-memory-bytes"}, Kind: Size, Default: "0", Unit: "bytes of process memory (RSS) (0 = off)",
		Help: "Process RSS that stops new work (0 = off)", Category: CatMemory,
		Protects: "the process from the OOM killer; Go's soft memory limit is set to nine tenths of it (unless GOMEMLIMIT is set), so garbage is collected before it trips",
		Answer:   "new Kafka connections get THROTTLING_QUOTA_EXCEEDED (89) and are closed; Kafka requests (ApiVersions excepted) are answered REQUEST_TIMED_OUT (7) instead of served; HTTP requests get 503 with Retry-After and Connection: close (/health, /ready, /metrics excepted); /ready is false; a WARN when it trips and when it clears",
		Metric:   `floodgate_http_requests_refused_total{reason="memory"}, floodgate_connection_limit_reached_total{reason="process_memory"}, floodgate_requests_refused_total{reason="process_memory"}, floodgate_memory_usage_bytes`,
		Field:    Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxMemoryBytes }), Min: 0},
	{Flag: "max-process-memory-percent", Aliases: []string{"max-memory-percent"}, Kind: Float, Default: "0", Unit: "percent of the cgroup memory limit, or of RAM (0 = off)",
		Help: "Process RSS limit, % of cgroup or RAM (0 = off)", Category: CatMemory,
		Protects: "the process from the OOM killer; the lower of this and --max-process-memory-bytes applies",
		Answer:   "as --max-process-memory-bytes", Metric: "floodgate_memory_usage_bytes",
		Field: FloatOf(func(c *HTTPConfig) *float64 { return &c.MaxMemoryPercent }), Min: 0, Max: 100},
	{Flag: "header-read-timeout", Kind: Duration, Default: "10000", Unit: "ms",
		Help: "Time to receive a request head (ms)", Category: CatHTTP,
		Protects: "connections from slowloris clients that send a head slowly",
		Answer:   "408 and the connection is closed", Metric: `floodgate_http_requests_total{route="refused",code="408"}`,
		Field: DurationOf(func(c *HTTPConfig) *time.Duration { return &c.HeaderReadTimeout }, time.Millisecond), Min: 0},
	{Flag: "max-rest-response-bytes", Kind: Size, Default: "16777216", Unit: "bytes",
		Help: "One REST fetch answer", Category: CatHTTP,
		Protects: "memory: one REST fetch answer (fetched batches, their decompressed records, the JSON), charged to --request-memory-bytes as it is built",
		Answer:   "the answer stops at the record that would cross it (the client reads on from the next offset); a single batch or record larger than it: 422 with a JSON body naming the limit and the offset to resume from; budget exhausted: 503 with Retry-After",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-response-bytes"}`,
		Field:    Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxRESTResponseBytes }), Min: 1024},
	{Flag: "max-rest-records-per-request", Kind: Int, Default: "10000", Unit: "records per REST produce body",
		Help: "Records in one REST produce body", Category: CatHTTP,
		Protects: "memory: the records a produce body makes the server decode, build and answer (one offset each)",
		Answer:   "413 with a JSON body naming the limit, before any record past it is decoded",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-records-per-request"}`,
		Field:    IntOf(func(c *HTTPConfig) *int { return &c.MaxRESTRecords }), Min: 1},
	{Flag: "max-rest-fetch-wait", Kind: Duration, Default: "30000", Unit: "ms",
		Help: "Longest REST fetch wait (ms)", Category: CatHTTP,
		Protects: "connections and timers: the timeout parameter of a REST fetch is capped, so a long poll cannot hold its connection for days",
		Answer:   "the fetch is answered with what is there once this passes (200, possibly no records)",
		Metric:   "floodgate_fetch_waiting",
		Field:    DurationOf(func(c *HTTPConfig) *time.Duration { return &c.MaxRESTFetchWait }, time.Millisecond), Min: 1},
	{Flag: "http-linger-timeout", Kind: Duration, Default: "2000", Unit: "ms",
		Help: "Lingering close (ms)", Category: CatHTTP,
		Protects: "the answer of a refused request (413, 408, 431): the connection is half-closed and read until the client closes or this passes, as nginx's lingering close, so unread bytes do not make the kernel reset it before the client read the answer",
		Answer:   "the connection is closed",
		Metric:   `floodgate_connections_closed_total{reason="http_close"}`,
		Field:    DurationOf(func(c *HTTPConfig) *time.Duration { return &c.LingerTimeout }, time.Millisecond), Min: 1},
	{Flag: "limits-profile", Kind: Enum, Default: "none", Unit: "none|development|production|high-traffic",
		Help: "development, production or high-traffic preset", Category: CatServer,
		Enum:     []string{"none", "development", "production", "high-traffic"},
		Protects: "the limits document's presets (connection, header, body, in-flight, rate and memory limits; see the profiles table); flags given explicitly win",
		Answer:   "-", Metric: "-", Field: WordOf(func(c *HTTPConfig) *string { return &c.Profile })},
	{Flag: "rest-consumer-instance-timeout", Kind: Duration, Default: "300000", Unit: "ms (as consumer.instance.timeout.ms)",
		Help: "Idle REST consumer expiry (ms)", Category: CatHTTP,
		Protects: "memory, a goroutine and a group membership held by a REST consumer instance its client forgot",
		Answer:   "the idle instance is deleted (it leaves its group, commits first when auto.commit.enable); later requests to it get 404 with error_code 40403",
		Metric:   "floodgate_rest_consumer_instances_expired_total",
		Field:    DurationOf(func(c *HTTPConfig) *time.Duration { return &c.RESTConsumerTimeout }, time.Millisecond), Min: 1},
	{Flag: "max-rest-consumer-instances", Kind: Int, Default: "1000", Unit: "REST consumer instances (0 = no consumer instances)",
		Help: "REST consumer instances", Category: CatHTTP,
		Protects: "memory and goroutines: every instance is a group member with a heartbeat loop",
		Answer:   "POST /consumers/{group}: 429 with Retry-After and a JSON body (error_code 42901) naming the limit",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-instances"}`,
		Field:    IntOf(func(c *HTTPConfig) *int { return &c.MaxRESTConsumers }), Min: 0},
	{Flag: "max-rest-consumer-instances-per-client", Kind: Int, Default: "100", Unit: "REST consumer instances per client IP (0 = off)",
		Help: "REST consumers per IP (0: off)", Category: CatHTTP,
		Protects: "fairness: one client IP cannot take every consumer instance",
		Answer:   "POST /consumers/{group}: 429 with Retry-After and a JSON body (error_code 42901) naming the limit",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-instances-per-client"}`,
		Field:    IntOf(func(c *HTTPConfig) *int { return &c.MaxRESTConsumersPerClient }), Min: 0},
	{Flag: "max-rest-consumer-buffered-bytes", Kind: Size, Default: "67108864", Unit: "bytes, all REST consumer instances together",
		Help: "Bytes REST consumers hold", Category: CatHTTP,
		Protects: "memory: the fetched record batches consumer instances hold while they build their answers (also charged to --request-memory-bytes)",
		Answer:   "GET .../records: 429 with Retry-After and a JSON body (error_code 42901) naming the limit; the instance's positions do not move",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-buffered-bytes"}`,
		Field:    Int64Of(func(c *HTTPConfig) *int64 { return &c.MaxRESTConsumerBuffered }), Min: 1024},
}

// HTTPConfig is the value of every HTTP limit. A zero count or rate means
// the limit is off, except for the header and body sizes, which are always on.
type HTTPConfig struct {
	MaxHeaderBytes          int
	MaxHeaderCount          int
	MaxHeaderNameBytes      int
	MaxHeaderValueBytes     int
	MaxBodyBytes            int64
	MaxBodyBufferBytes      int64
	MaxDecompressionRatio   float64
	MaxDecompressedBytes    int64
	MaxConnectionsPerRoute  int
	MaxInFlight             int
	MaxInFlightPerEventLoop int
	RPSGlobal               int
	RPSPerClient            int
	RPSPerRoute             int
	MaxMemoryBytes          int64
	MaxMemoryPercent        float64
	HeaderReadTimeout       time.Duration
	Profile                 string
	// MaxRESTResponseBytes caps one REST fetch answer (JSON and
	// decompressed records); MaxRESTRecords the records of a produce body.
	MaxRESTResponseBytes int64
	MaxRESTRecords       int
	// MaxRESTFetchWait caps the timeout of a REST fetch (a long poll).
	MaxRESTFetchWait time.Duration
	// LingerTimeout bounds the lingering close after a closing answer.
	LingerTimeout time.Duration
	// RESTConsumerTimeout deletes a REST consumer instance idle this
	// long; MaxRESTConsumers and MaxRESTConsumersPerClient bound their
	// number (0: none allowed / no per-IP bound) and
	// MaxRESTConsumerBuffered the fetched bytes they hold together.
	RESTConsumerTimeout       time.Duration
	MaxRESTConsumers          int
	MaxRESTConsumersPerClient int
	MaxRESTConsumerBuffered   int64
	// Routes are the --route definitions, in the order given.
	Routes []Route
}

// HTTPDefaults returns the table's defaults (no --limits-profile).
func HTTPDefaults() HTTPConfig {
	var c HTTPConfig
	setDefaults(HTTPTable, &c)
	return c
}

// HTTPProfile returns the HTTP limits of a --limits-profile: the table's
// defaults with the preset's values (Profiles) over them. "none" (or "")
// keeps the defaults.
func HTTPProfile(name string) (HTTPConfig, error) {
	c := HTTPDefaults()
	if name == "" {
		name = NoProfile
	}
	if err := c.SetText("limits-profile", name); err != nil {
		return c, err
	}
	return c, applyProfile(HTTPTable, &c, name, func(string) bool { return false })
}

// SetText sets the HTTP limit flag (or an alias) from its text.
func (c *HTTPConfig) SetText(flag, text string) error { return setText(HTTPTable, c, flag, text) }

// Value returns the configured value of an HTTP limit as it is written on
// the command line, or "" for a flag that is not in HTTPTable.
func (c *HTTPConfig) Value(flag string) string { return value(HTTPTable, c, flag) }

// Validate reports the first value no server could run with, naming its flag.
func (c *HTTPConfig) Validate() error {
	if err := validate(HTTPTable, c); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range c.Routes {
		if seen[r.Name] {
			return fmt.Errorf("--route %s: the name is used twice", r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

// MaxRouteBodyBytes returns the largest body any route accepts: the codec
// refuses above it at once, and the per-route limit is applied after the
// head is routed.
func (c *HTTPConfig) MaxRouteBodyBytes() int64 {
	m := c.MaxBodyBytes
	for _, r := range c.Routes {
		if r.MaxBodyBytes > m {
			m = r.MaxBodyBytes
		}
	}
	return m
}

// RouteKey says what a --route's rate limit counts requests by.
type RouteKey uint8

// Route rate-limit keys.
const (
	// KeyRoute is one bucket for the whole route (the default).
	KeyRoute RouteKey = iota
	// KeyClientIP is one bucket per client IP.
	KeyClientIP
	// KeyHeader is one bucket per value of a header (client IP when absent).
	KeyHeader
	// KeyPath is one bucket per request path.
	KeyPath
)

// Route is one --route: a path prefix with limits of its own.
type Route struct {
	// Name labels the route in metrics, errors and /admin/stats.
	Name string
	// Prefix is the path prefix; the longest matching prefix wins.
	Prefix string
	// MaxBodyBytes overrides --max-body-size-bytes (0: the global value).
	MaxBodyBytes int64
	// RPS is the route's rate limit in requests per second (0: off).
	RPS int
	// Burst is the bucket size (0: 10 x RPS).
	Burst int
	// Key says what the rate limit counts by.
	Key RouteKey
	// Header is the header named by key=header:NAME.
	Header string
}

// String writes the route back as a --route value.
func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Name + ":" + r.Prefix)
	if r.MaxBodyBytes > 0 {
		b.WriteString(",max-body-size=" + strconv.FormatInt(r.MaxBodyBytes, 10))
	}
	if r.RPS > 0 {
		b.WriteString(",rps=" + strconv.Itoa(r.RPS) + ",burst=" + strconv.Itoa(r.Burst))
	}
	switch r.Key {
	case KeyClientIP:
		b.WriteString(",key=client_ip")
	case KeyHeader:
		b.WriteString(",key=header:" + r.Header)
	case KeyPath:
		b.WriteString(",key=path")
	case KeyRoute:
		b.WriteString(",key=route")
	}
	return b.String()
}

// ParseRoute parses 'NAME:PATH_PREFIX[,max-body-size=500MB][,rps=100][,burst=500][,key=client_ip|header:X-API-Key|path|route]'.
func ParseRoute(s string) (Route, error) {
	var r Route
	parts := strings.Split(s, ",")
	name, prefix, ok := strings.Cut(parts[0], ":")
	if !ok || name == "" || !strings.HasPrefix(prefix, "/") {
		return r, fmt.Errorf("--route %q: want NAME:/PATH_PREFIX[,option=value...]", s)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return r, fmt.Errorf("--route %q: the name may hold letters, digits, '_', '-' and '.' only", s)
		}
	}
	r.Name, r.Prefix = name, prefix
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return r, fmt.Errorf("--route %q: option %q: want key=value", s, p)
		}
		var err error
		switch k {
		case "max-body-size":
			r.MaxBodyBytes, err = ParseSize(v)
		case "rps":
			r.RPS, err = strconv.Atoi(v)
			if err == nil && r.RPS < 0 {
				err = fmt.Errorf("negative")
			}
		case "burst":
			r.Burst, err = strconv.Atoi(v)
			if err == nil && r.Burst < 1 {
				err = fmt.Errorf("must be at least 1")
			}
		case "key":
			switch {
			case v == "client_ip":
				r.Key = KeyClientIP
			case v == "path":
				r.Key = KeyPath
			case v == "route":
				r.Key = KeyRoute
			case strings.HasPrefix(v, "header:") && len(v) > len("header:"):
				r.Key, r.Header = KeyHeader, v[len("header:"):]
			default:
				err = fmt.Errorf("want client_ip, header:NAME, path or route")
			}
		default:
			err = fmt.Errorf("unknown option (want max-body-size, rps, burst or key)")
		}
		if err != nil {
			return r, fmt.Errorf("--route %q: %s=%q: %w", s, k, v, err)
		}
	}
	if r.RPS > 0 && r.Burst == 0 {
		r.Burst = 10 * r.RPS
	}
	return r, nil
}

// BodyLimit returns the body limit of a request path: the max-body-size of
// the --route with the longest matching prefix, else --max-body-size-bytes.
func (c *HTTPConfig) BodyLimit(path []byte) int64 {
	var best *Route
	for i := range c.Routes {
		r := &c.Routes[i]
		if len(path) >= len(r.Prefix) && string(path[:len(r.Prefix)]) == r.Prefix && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	if best != nil && best.MaxBodyBytes > 0 {
		return best.MaxBodyBytes
	}
	return c.MaxBodyBytes
}

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
	{Flag: "max-header-size-bytes", Kind: Int, Default: "8192", Unit: "bytes",
		Protects: "memory: the request line and header lines, counted as they arrive",
		Answer:   "431 with a JSON body; the connection is closed", Metric: "floodgate_header_size_exceeded_total"},
	{Flag: "max-header-count", Kind: Int, Default: "100", Unit: "header fields",
		Protects: "CPU and memory spent on header fields",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total"},
	{Flag: "max-header-name-bytes", Kind: Int, Default: "256", Unit: "bytes",
		Protects: "one header field name",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total"},
	{Flag: "max-header-value-bytes", Kind: Int, Default: "4096", Unit: "bytes",
		Protects: "one header field value",
		Answer:   "431", Metric: "floodgate_header_size_exceeded_total"},
	{Flag: "max-body-size-bytes", Kind: Int, Default: "10485760", Unit: "bytes",
		Protects: "memory: a request body (de-chunked, before decompression)",
		Answer:   "413, decided on Content-Length before any body byte is read; chunked bodies are counted as they stream",
		Metric:   "floodgate_body_size_exceeded_total"},
	{Flag: "max-body-buffer-bytes", Kind: Int, Default: "1048576", Unit: "bytes",
		Protects: "memory committed up front: a body buffer is allocated at most this large and grows only as bytes arrive",
		Answer:   "none (a client announcing a large Content-Length and sending nothing holds at most this much)",
		Metric:   "floodgate_memory_used_bytes"},
	{Flag: "max-decompression-ratio", Kind: Float, Default: "100", Unit: "decompressed/compressed bytes",
		Protects: "memory and CPU from decompression bombs (checked as bytes inflate, past the first 64 KiB)",
		Answer:   "413", Metric: "floodgate_decompression_rejected_total"},
	{Flag: "max-decompressed-size-bytes", Kind: Int, Default: "104857600", Unit: "bytes",
		Protects: "memory: a decompressed request body",
		Answer:   "413 (415 for an unknown Content-Encoding)", Metric: "floodgate_decompression_rejected_total"},
	{Flag: "max-connections-per-route", Kind: Int, Default: "1000", Unit: "concurrent requests per route (0 = off)",
		Protects: "one route cannot take every worker",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="route"}`},
	{Flag: "max-in-flight-requests", Kind: Int, Default: "10000", Unit: "requests, Kafka and HTTP (0 = off)",
		Protects: "memory and latency of the whole server",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="in_flight"}`},
	{Flag: "max-in-flight-requests-per-worker", Kind: Int, Default: "1000", Unit: "HTTP requests per event loop (0 = off)",
		Protects: "one event loop's share of the server",
		Answer:   "503 with Retry-After and Connection: close", Metric: `floodgate_http_requests_refused_total{reason="in_flight_per_worker"}`},
	{Flag: "max-requests-per-second-global", Kind: Int, Default: "0", Unit: "HTTP requests/s, burst 10x (0 = off)",
		Protects: "the server from the sum of all clients",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="global"}`},
	{Flag: "max-requests-per-second-per-client", Kind: Int, Default: "0", Unit: "HTTP requests/s per client IP, burst 10x (0 = off)",
		Protects: "fairness between clients",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="client"}`},
	{Flag: "max-requests-per-second-per-route", Kind: Int, Default: "0", Unit: "HTTP requests/s per route, burst 10x (0 = off)",
		Protects: "one route (or a --route) from all clients together",
		Answer:   "429 with Retry-After and X-RateLimit-Limit/Remaining/Reset", Metric: `floodgate_rate_limit_exceeded_total{scope="route"}`},
	{Flag: "max-memory-bytes", Kind: Int, Default: "0", Unit: "bytes of process memory (RSS) (0 = off)",
		Protects: "the process from the OOM killer",
		Answer:   "new Kafka connections get THROTTLING_QUOTA_EXCEEDED (89) and are closed; Kafka requests (ApiVersions excepted) are answered REQUEST_TIMED_OUT (7) instead of served; HTTP requests get 503 with Retry-After and Connection: close (/health, /ready, /metrics excepted); /ready is false; a WARN when it trips and when it clears",
		Metric:   `floodgate_http_requests_refused_total{reason="memory"}, floodgate_connection_limit_reached_total{reason="process_memory"}, floodgate_requests_refused_total{reason="process_memory"}, floodgate_memory_usage_bytes`},
	{Flag: "max-memory-percent", Kind: Float, Default: "0", Unit: "percent of the cgroup memory limit, or of RAM (0 = off)",
		Protects: "the process from the OOM killer; the lower of this and --max-memory-bytes applies",
		Answer:   "as --max-memory-bytes", Metric: "floodgate_memory_usage_bytes"},
	{Flag: "header-read-timeout", Kind: Duration, Default: "10s", Unit: "duration",
		Protects: "connections from slowloris clients that send a head slowly",
		Answer:   "408 and the connection is closed", Metric: `floodgate_http_requests_total{route="refused",code="408"}`},
	{Flag: "max-rest-response-bytes", Kind: Int, Default: "16777216", Unit: "bytes",
		Protects: "memory: one REST fetch answer (fetched batches, their decompressed records, the JSON), charged to --memory-limit-bytes as it is built",
		Answer:   "the answer stops at the record that would cross it (the client reads on from the next offset); a single batch or record larger than it: 422 with a JSON body naming the limit and the offset to resume from; budget exhausted: 503 with Retry-After",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-response-bytes"}`},
	{Flag: "max-rest-records-per-request", Kind: Int, Default: "10000", Unit: "records per REST produce body",
		Protects: "memory: the records a produce body makes the server decode, build and answer (one offset each)",
		Answer:   "413 with a JSON body naming the limit, before any record past it is decoded",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-records-per-request"}`},
	{Flag: "limits-profile", Kind: Enum, Default: "none", Unit: "none|development|production|high-traffic",
		Enum:     []string{"none", "development", "production", "high-traffic"},
		Protects: "the limits document's presets (connection, header, body, in-flight, rate and memory limits; see the profiles table); flags given explicitly win",
		Answer:   "-", Metric: "-"},
	{Flag: "rest-consumer-instance-timeout", Kind: Duration, Default: "5m0s", Unit: "duration (as consumer.instance.timeout.ms)",
		Protects: "memory, a goroutine and a group membership held by a REST consumer instance its client forgot",
		Answer:   "the idle instance is deleted (it leaves its group, commits first when auto.commit.enable); later requests to it get 404 with error_code 40403",
		Metric:   "floodgate_rest_consumer_instances_expired_total"},
	{Flag: "max-rest-consumer-instances", Kind: Int, Default: "1000", Unit: "REST consumer instances (0 = no consumer instances)",
		Protects: "memory and goroutines: every instance is a group member with a heartbeat loop",
		Answer:   "POST /consumers/{group}: 429 with Retry-After and a JSON body (error_code 42901) naming the limit",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-instances"}`},
	{Flag: "max-rest-consumer-instances-per-client", Kind: Int, Default: "100", Unit: "REST consumer instances per client IP (0 = off)",
		Protects: "fairness: one client IP cannot take every consumer instance",
		Answer:   "POST /consumers/{group}: 429 with Retry-After and a JSON body (error_code 42901) naming the limit",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-instances-per-client"}`},
	{Flag: "max-rest-consumer-buffered-bytes", Kind: Int, Default: "67108864", Unit: "bytes, all REST consumer instances together",
		Protects: "memory: the fetched record batches consumer instances hold while they build their answers (also charged to --memory-limit-bytes)",
		Answer:   "GET .../records: 429 with Retry-After and a JSON body (error_code 42901) naming the limit; the instance's positions do not move",
		Metric:   `floodgate_http_limit_tripped_total{limit="max-rest-consumer-buffered-bytes"}`},
}

// HTTPConfig is the value of every HTTP limit. A zero count or rate means
// the limit is off, except for the header and body sizes, which are always on.
type HTTPConfig struct {
	MaxHeaderBytes         int
	MaxHeaderCount         int
	MaxHeaderNameBytes     int
	MaxHeaderValueBytes    int
	MaxBodyBytes           int64
	MaxBodyBufferBytes     int64
	MaxDecompressionRatio  float64
	MaxDecompressedBytes   int64
	MaxConnectionsPerRoute int
	MaxInFlight            int
	MaxInFlightPerWorker   int
	RPSGlobal              int
	RPSPerClient           int
	RPSPerRoute            int
	MaxMemoryBytes         int64
	MaxMemoryPercent       float64
	HeaderReadTimeout      time.Duration
	Profile                string
	// MaxRESTResponseBytes caps one REST fetch answer (JSON and
	// decompressed records); MaxRESTRecords the records of a produce body.
	MaxRESTResponseBytes int64
	MaxRESTRecords       int
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
	return HTTPConfig{
		MaxHeaderBytes:         8192,
		MaxHeaderCount:         100,
		MaxHeaderNameBytes:     256,
		MaxHeaderValueBytes:    4096,
		MaxBodyBytes:           10485760,
		MaxBodyBufferBytes:     1048576,
		MaxDecompressionRatio:  100,
		MaxDecompressedBytes:   104857600,
		MaxConnectionsPerRoute: 1000,
		MaxInFlight:            10000,
		MaxInFlightPerWorker:   1000,
		HeaderReadTimeout:      10 * time.Second,
		MaxRESTResponseBytes:   16777216,
		MaxRESTRecords:         10000,
		Profile:                NoProfile,

		// REST consumer instances.
		RESTConsumerTimeout:       5 * time.Minute,
		MaxRESTConsumers:          1000,
		MaxRESTConsumersPerClient: 100,
		MaxRESTConsumerBuffered:   64 << 20,
	}
}

// HTTPProfile returns the HTTP limits of a --limits-profile: the table's
// defaults with the preset's values (Profiles) over them. "none" (or "")
// keeps the defaults.
func HTTPProfile(name string) (HTTPConfig, error) {
	c := HTTPDefaults()
	p, err := ProfileNamed(name)
	if err != nil {
		return c, err
	}
	if p == nil {
		return c, nil
	}
	c.Profile = p.Name
	for _, v := range p.Values {
		if _, err := c.set(v.Flag, v.Value); err != nil {
			return c, fmt.Errorf("profile %s: %w", p.Name, err)
		}
	}
	return c, nil
}

// Validate reports the first value no server could run with, naming its flag.
func (c *HTTPConfig) Validate() error {
	checks := []struct {
		flag string
		v    int64
		min  int64
	}{
		{"max-header-size-bytes", int64(c.MaxHeaderBytes), 64},
		{"max-header-count", int64(c.MaxHeaderCount), 1},
		{"max-header-name-bytes", int64(c.MaxHeaderNameBytes), 1},
		{"max-header-value-bytes", int64(c.MaxHeaderValueBytes), 1},
		{"max-body-size-bytes", c.MaxBodyBytes, 1},
		{"max-body-buffer-bytes", c.MaxBodyBufferBytes, 0},
		{"max-decompressed-size-bytes", c.MaxDecompressedBytes, 0},
		{"max-connections-per-route", int64(c.MaxConnectionsPerRoute), 0},
		{"max-in-flight-requests", int64(c.MaxInFlight), 0},
		{"max-in-flight-requests-per-worker", int64(c.MaxInFlightPerWorker), 0},
		{"max-requests-per-second-global", int64(c.RPSGlobal), 0},
		{"max-requests-per-second-per-client", int64(c.RPSPerClient), 0},
		{"max-requests-per-second-per-route", int64(c.RPSPerRoute), 0},
		{"max-memory-bytes", c.MaxMemoryBytes, 0},
		{"header-read-timeout", c.HeaderReadTimeout.Milliseconds(), 0},
		{"max-rest-response-bytes", c.MaxRESTResponseBytes, 1024},
		{"max-rest-records-per-request", int64(c.MaxRESTRecords), 1},
		{"rest-consumer-instance-timeout", c.RESTConsumerTimeout.Milliseconds(), 1},
		{"max-rest-consumer-instances", int64(c.MaxRESTConsumers), 0},
		{"max-rest-consumer-instances-per-client", int64(c.MaxRESTConsumersPerClient), 0},
		{"max-rest-consumer-buffered-bytes", c.MaxRESTConsumerBuffered, 1024},
	}
	for _, ch := range checks {
		if ch.v < ch.min {
			return fmt.Errorf("--%s=%d: must be at least %d", ch.flag, ch.v, ch.min)
		}
	}
	if c.MaxDecompressionRatio < 0 {
		return fmt.Errorf("--max-decompression-ratio=%g: must not be negative", c.MaxDecompressionRatio)
	}
	if c.MaxMemoryPercent < 0 || c.MaxMemoryPercent > 100 {
		return fmt.Errorf("--max-memory-percent=%g: must be between 0 (off) and 100", c.MaxMemoryPercent)
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

// Value returns the configured value of an HTTP limit as it is written on
// the command line, or "" for a flag that is not in HTTPTable.
func (c *HTTPConfig) Value(flag string) string {
	i := strconv.Itoa
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch flag {
	case "max-header-size-bytes":
		return i(c.MaxHeaderBytes)
	case "max-header-count":
		return i(c.MaxHeaderCount)
	case "max-header-name-bytes":
		return i(c.MaxHeaderNameBytes)
	case "max-header-value-bytes":
		return i(c.MaxHeaderValueBytes)
	case "max-body-size-bytes":
		return i64(c.MaxBodyBytes)
	case "max-body-buffer-bytes":
		return i64(c.MaxBodyBufferBytes)
	case "max-decompression-ratio":
		return f(c.MaxDecompressionRatio)
	case "max-decompressed-size-bytes":
		return i64(c.MaxDecompressedBytes)
	case "max-connections-per-route":
		return i(c.MaxConnectionsPerRoute)
	case "max-in-flight-requests":
		return i(c.MaxInFlight)
	case "max-in-flight-requests-per-worker":
		return i(c.MaxInFlightPerWorker)
	case "max-requests-per-second-global":
		return i(c.RPSGlobal)
	case "max-requests-per-second-per-client":
		return i(c.RPSPerClient)
	case "max-requests-per-second-per-route":
		return i(c.RPSPerRoute)
	case "max-memory-bytes":
		return i64(c.MaxMemoryBytes)
	case "max-memory-percent":
		return f(c.MaxMemoryPercent)
	case "header-read-timeout":
		return c.HeaderReadTimeout.String()
	case "limits-profile":
		return c.Profile
	case "max-rest-response-bytes":
		return i64(c.MaxRESTResponseBytes)
	case "max-rest-records-per-request":
		return i(c.MaxRESTRecords)
	case "rest-consumer-instance-timeout":
		return c.RESTConsumerTimeout.String()
	case "max-rest-consumer-instances":
		return i(c.MaxRESTConsumers)
	case "max-rest-consumer-instances-per-client":
		return i(c.MaxRESTConsumersPerClient)
	case "max-rest-consumer-buffered-bytes":
		return i64(c.MaxRESTConsumerBuffered)
	}
	return ""
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

// ParseSize parses a byte count with an optional unit: B, KB, MB, GB
// (powers of 1000), KiB, MiB, GiB (powers of 1024).
func ParseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, m := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(u, m.suffix) {
			u, mult = strings.TrimSpace(u[:len(u)-len(m.suffix)]), m.mult
			break
		}
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (KB, MB, GB, KiB, MiB, GiB)", s)
	}
	return n * mult, nil
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

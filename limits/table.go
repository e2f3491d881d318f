package limits

// Kind says how a limit's value is read from the command line.
type Kind uint8

// Kinds of limit values.
const (
	// Int is a whole number (bytes, counts, milliseconds, per second).
	Int Kind = iota
	// Float is a decimal number (ratios, percentages).
	Float
	// Enum is one word out of a fixed list.
	Enum
	// Duration is a Go duration such as 10s.
	Duration
)

// Limit describes one limit floodgate enforces.
type Limit struct {
	// Flag is the command-line flag name without dashes.
	Flag string
	// Aliases are other accepted flag names.
	Aliases []string
	// Kind is how the value is parsed.
	Kind Kind
	// Default is the default value as written on the command line.
	Default string
	// Unit names the unit of the value (bytes, ms, requests/s, ...).
	Unit string
	// Protects says what the limit protects, in a few words.
	Protects string
	// Answer is what a client sees when the limit trips.
	Answer string
	// Metric is the metric to watch for this limit.
	Metric string
	// Enum lists the allowed words of an Enum limit.
	Enum []string
}

// Table lists every limit once. --help, the README's tuning section and
// /admin/stats are generated from or checked against it.
var Table = []Limit{
	{Flag: "max-connections", Aliases: []string{"max-total-connections"}, Kind: Int, Default: "10000", Unit: "connections",
		Protects: "file descriptors and per-connection memory",
		Answer:   "the first request is answered, then the connection closed: Kafka THROTTLING_QUOTA_EXCEEDED (89, retriable) in the request's API shape, HTTP 503 with Retry-After, Connection: close and the JSON body naming the limit; established clients are untouched",
		Metric:   `floodgate_connection_limit_reached_total{reason="max_connections"}`},
	{Flag: "max-connections-per-ip", Aliases: []string{"max-connections-per-client"}, Kind: Int, Default: "100", Unit: "connections",
		Protects: "fairness between source addresses",
		Answer:   "as --max-connections: THROTTLING_QUOTA_EXCEEDED (89) or HTTP 503, then closed",
		Metric:   `floodgate_connection_limit_reached_total{reason="max_connections_per_ip"}`},
	{Flag: "http-connection-reserve", Kind: Int, Default: "16", Unit: "connections",
		Protects: "operator access: the HTTP listener may hold this many connections beyond --max-connections, so /health and /metrics answer while the Kafka port is flooded",
		Answer:   "as --max-connections, once the reserve is used too",
		Metric:   `floodgate_connections_rejected_total{reason="max_connections"}`},
	{Flag: "connection-idle-timeout", Kind: Int, Default: "600000", Unit: "ms",
		Protects: "descriptors held by clients that went away silently",
		Answer:   "the idle connection is closed",
		Metric:   `floodgate_connections_closed_total{reason="idle"}`},
	{Flag: "max-request-size", Kind: Int, Default: "104857600", Unit: "bytes",
		Protects: "memory: checked on the length prefix before any buffering",
		Answer:   "MESSAGE_TOO_LARGE (10) in the API's response shape; the frame is discarded as it streams in",
		Metric:   "floodgate_request_too_large_total"},
	{Flag: "request-read-timeout", Kind: Int, Default: "10000", Unit: "ms, plus 1 s per --min-request-rate bytes received",
		Protects: "connections and memory from clients that announce large Kafka frames or HTTP bodies and trickle (or never send) them: the time a frame or body may take grows only with the bytes that actually arrived",
		Answer:   "Kafka: the connection is closed; HTTP: 408 with Connection: close; what the frame or body held is released",
		Metric:   `floodgate_connections_closed_total{reason="slow_frame"}, floodgate_connections_closed_total{reason="slow_body"}`},
	{Flag: "min-request-rate", Kind: Int, Default: "65536", Unit: "bytes/s",
		Protects: "the time budget of --request-read-timeout: each such many bytes received buy one more second",
		Answer:   "as --request-read-timeout",
		Metric:   `floodgate_connections_closed_total{reason="slow_frame"}`},
	{Flag: "send-timeout", Kind: Int, Default: "60000", Unit: "ms",
		Protects: "responses held for a client that stopped reading them (a parked connection)",
		Answer:   "the connection is closed and its queued responses released",
		Metric:   `floodgate_connections_closed_total{reason="send_timeout"}`},
	{Flag: "max-fetch-bytes", Kind: Int, Default: "52428800", Unit: "bytes",
		Protects: "memory and bandwidth of one Fetch response",
		Answer:   "the Fetch response is capped (at least one whole batch is still returned)",
		Metric:   "floodgate_bytes_out_total"},
	{Flag: "memory-limit-bytes", Kind: Int, Default: "1073741824", Unit: "bytes",
		Protects: "bytes held by requests being received, in-flight requests and queued responses (charged as bytes arrive, never the announced size)",
		Answer:   "reading pauses near the limit (only between requests); a request whose bytes or answer do not fit gets REQUEST_TIMED_OUT (7) or HTTP 503; past the high-water mark (7/8) new connections are refused as at --max-connections (THROTTLING_QUOTA_EXCEEDED or HTTP 503)",
		Metric:   "floodgate_memory_used_bytes"},
	{Flag: "memory-limit-per-ip-percent", Kind: Int, Default: "25", Unit: "% of --memory-limit-bytes",
		Protects: "everyone else's part of the memory budget: one source IP holds at most this share",
		Answer:   "as --memory-limit-bytes, for that IP only",
		Metric:   `floodgate_requests_refused_total{reason="memory_per_ip"}`},
	{Flag: "max-inflight-requests", Kind: Int, Default: "1000", Unit: "requests per connection",
		Protects: "memory and fairness: one connection cannot queue unbounded work",
		Answer:   "the connection is not read until responses drain (TCP backpressure)",
		Metric:   "floodgate_requests_in_flight"},
	{Flag: "max-queued-requests", Kind: Int, Default: "1000", Unit: "requests",
		Protects: "the worker pool queue shared by Kafka and HTTP",
		Answer:   "the connection is not read until the queue drains (TCP backpressure)",
		Metric:   "floodgate_request_queue_depth"},
	{Flag: "produce-rate-limit", Kind: Int, Default: "10000", Unit: "Produce requests/s per client (0 = off)",
		Protects: "broker CPU and disk from one producer",
		Answer:   "delay: served with throttle_time_ms and the connection is not read that long; reject: THROTTLING_QUOTA_EXCEEDED (89)",
		Metric:   `floodgate_requests_throttled_total{api="Produce"}`},
	{Flag: "fetch-rate-limit", Kind: Int, Default: "1000", Unit: "Fetch requests/s per client (0 = off)",
		Protects: "broker CPU from one consumer",
		Answer:   "delay: served with throttle_time_ms and the connection is not read that long; reject: THROTTLING_QUOTA_EXCEEDED (89)",
		Metric:   `floodgate_requests_throttled_total{api="Fetch"}`},
	{Flag: "max-upstream-connections-per-broker", Kind: Int, Default: "1000", Unit: "connections per upstream broker (gateway mode)",
		Protects: "the upstream cluster from floodgate's client count",
		Answer:   "nothing fails: beyond it client connections share the least-loaded upstream connections",
		Metric:   "floodgate_gateway_upstream_connections"},
	{Flag: "quota-key", Kind: Enum, Default: "client-id-and-ip", Unit: "client-id-and-ip|client-id|ip", Enum: []string{"client-id", "ip", "client-id-and-ip"},
		Protects: "defines what a client is for the rate limits: client-id-and-ip (Kafka's default for unauthenticated clients: one bucket per client id on each source IP, and one IP gets at most 16 clients' rate whatever ids it sends), client-id (falls back to ip when empty) or ip",
		Answer:   "-", Metric: "-"},
	{Flag: "throttle-mode", Kind: Enum, Default: "delay", Unit: "delay|reject", Enum: []string{"delay", "reject"},
		Protects: "chooses how rate limits answer",
		Answer:   "delay (KIP-219, every client copes) or reject (error 89: franz-go and kafka-go retry, sarama, librdkafka and kafkajs fail the record)",
		Metric:   "floodgate_throttle_time_seconds"},
	{Flag: "produce-byte-rate", Kind: Int, Default: "0", Unit: "Produce bytes/s per client (0 = off)",
		Protects: "broker disk and network from one producer (Kafka's producer_byte_rate)",
		Answer:   "always delay, as Kafka: served with throttle_time_ms = the time the bytes over the rate take to drain, and the connection is not read that long",
		Metric:   `floodgate_byte_rate_throttled_total{api="Produce"}`},
	{Flag: "fetch-byte-rate", Kind: Int, Default: "0", Unit: "Fetch response bytes/s per client (0 = off)",
		Protects: "broker network from one consumer (Kafka's consumer_byte_rate)",
		Answer:   "always delay, as Kafka: the response carries throttle_time_ms for the bytes it returned over the rate, and the client's next request is not read until they drained",
		Metric:   `floodgate_byte_rate_throttled_total{api="Fetch"}`},
}

// Lookup returns the limit with the given flag name.
func Lookup(flag string) (Limit, bool) {
	for _, l := range Table {
		if l.Flag == flag {
			return l, true
		}
	}
	return Limit{}, false
}

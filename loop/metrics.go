package loop

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/floodgate/floodgate/limits"
)

// apiSlots bounds the per-API metric arrays.
const apiSlots = 128

// serverMetrics are the loop's counters and gauges. Per-API series are
// created once at start so the request path never builds a metric name.
type serverMetrics struct {
	set           *metrics.Set
	connsAccepted *metrics.Counter
	// limitReached counts connections refused at a connection limit, by
	// reason (the documents' connection_limit_reached_total).
	limitReached map[string]*metrics.Counter
	rejectedMax  *metrics.Counter
	// rejectedBy holds the refusal counters made at start for reasons a
	// flood can hit (the PROXY protocol's, when it is on).
	rejectedBy   map[string]*metrics.Counter
	bytesIn      *metrics.Counter
	bytesOut     *metrics.Counter
	sendfileOut  *metrics.Counter // of bytesOut, sent from files (zero-copy Fetch)
	splicedOut   *metrics.Counter // of bytesOut, spliced from pipes (forwarded Fetch answers)
	spliced      *metrics.Counter // forwarded answers relayed through a pipe
	tooLarge     *metrics.Counter
	malformed    *metrics.Counter
	panics       *metrics.Counter
	throttleTime *metrics.PrometheusHistogram
	// requests and the throttled counters are per-API series created on
	// an API's first use, so /metrics carries no always-zero series for the
	// ~90 APIs a client never asks for.
	requests apiCounters
	// latency is created on an API's first answer (latencyName names it),
	// so APIs never asked for write no empty histogram of 18 buckets.
	latency        [apiSlots]atomic.Pointer[metrics.PrometheusHistogram]
	latencyName    [apiSlots]string
	throttledDelay apiCounters
	// closes counts closed connections by cause.
	closes       closeCounters
	throttledRej apiCounters
	// Refused connections (refuse.go): answered by listener, closed at once
	// for want of a slot or descriptor, closed silent at their deadline.
	refusedAnswered   [2]*metrics.Counter
	refusedUnanswered *metrics.Counter
	refusedTimedOut   *metrics.Counter
	// byteThrottled counts Produce [0] and Fetch [1] requests over their
	// byte rate.
	byteThrottled [2]*metrics.Counter
	tlsHandshakes *metrics.Counter
}

func newServerMetrics(set *metrics.Set, s *Server) *serverMetrics {
	m := &serverMetrics{set: set, closes: closeCounters{set: set}}
	m.connsAccepted = set.NewCounter("floodgate_connections_accepted_total")
	m.limitReached = map[string]*metrics.Counter{}
	for reason, label := range connLimitReasons {
		m.limitReached[reason] = set.GetOrCreateCounter(`floodgate_connection_limit_reached_total{reason="` + label + `"}`)
	}
	m.rejectedMax = set.NewCounter(`floodgate_connections_rejected_total{reason="max_connections"}`)
	m.bytesIn = set.NewCounter("floodgate_bytes_in_total")
	m.bytesOut = set.NewCounter("floodgate_bytes_out_total")
	m.sendfileOut = set.NewCounter("floodgate_sendfile_bytes_total")
	m.splicedOut = set.NewCounter("floodgate_spliced_bytes_total")
	m.spliced = set.NewCounter("floodgate_spliced_answers_total")
	m.tooLarge = set.NewCounter("floodgate_request_too_large_total")
	m.malformed = set.NewCounter("floodgate_malformed_requests_total")
	m.panics = set.NewCounter("floodgate_request_panics_total")
	m.throttleTime = set.NewPrometheusHistogramExt("floodgate_throttle_time_seconds", throttleBuckets)
	m.refusedAnswered[kindKafka] = set.NewCounter(`floodgate_connections_refused_answered_total{listener="kafka"}`)
	m.refusedAnswered[kindHTTP] = set.NewCounter(`floodgate_connections_refused_answered_total{listener="http"}`)
	m.refusedUnanswered = set.NewCounter("floodgate_connections_refused_unanswered_total")
	m.byteThrottled[0] = set.NewCounter(`floodgate_byte_rate_throttled_total{api="Produce"}`)
	m.byteThrottled[1] = set.NewCounter(`floodgate_byte_rate_throttled_total{api="Fetch"}`)
	m.refusedTimedOut = set.NewCounter("floodgate_connections_refused_timed_out_total")
	m.requests.init(set, `floodgate_requests_total{api=%q}`)
	m.throttledDelay.init(set, `floodgate_requests_throttled_total{api=%q,mode="delay"}`)
	m.throttledRej.init(set, `floodgate_requests_throttled_total{api=%q,mode="reject"}`)
	for k := 0; k < apiSlots; k++ {
		if name := kmsg.NameForKey(int16(k)); name != "Unknown" {
			m.latencyName[k] = fmt.Sprintf(`floodgate_request_duration_seconds{api=%q}`, name)
		}
	}
	// The Kafka document's connections_total (the current count) is
	// floodgate_connections_active: a gauge named _total is refused by
	// Prometheus' linter. Accepted connections: floodgate_connections_accepted_total.
	set.NewGauge("floodgate_connections_active", func() float64 { return float64(s.active.Load()) })
	set.NewGauge("floodgate_connections_refusing", func() float64 {
		if s.refuse == nil {
			return 0
		}
		return float64(s.refuse.used.Load())
	})
	set.NewGauge("floodgate_connections_parked", func() float64 { return float64(s.parked.Load()) })
	m.tlsHandshakes = set.NewCounter("floodgate_tls_handshakes_total")
	set.NewGauge("floodgate_tls_connections_active", func() float64 { return float64(s.tlsActive.Load()) })
	set.NewGauge("floodgate_memory_used_bytes", func() float64 { return float64(s.budget.Used()) })
	set.NewGauge("floodgate_memory_limit_bytes", func() float64 { return float64(s.budget.Limit()) })
	set.NewGauge("floodgate_request_queue_depth", func() float64 { return float64(s.pool.depth()) })
	set.NewGauge("floodgate_requests_in_flight", func() float64 { return float64(s.inflight.Load()) })
	set.NewGauge("floodgate_max_connections", func() float64 { return float64(s.lim().MaxConnections) })
	set.NewGauge(`floodgate_socket_buffer_bytes{direction="send"}`, func() float64 { return float64(s.sockSend.Load()) })
	set.NewGauge(`floodgate_socket_buffer_bytes{direction="receive"}`, func() float64 { return float64(s.sockReceive.Load()) })
	set.NewGauge("floodgate_process_resident_bytes", func() float64 { return float64(ResidentBytes()) })
	return m
}

// apiCounters is one counter per Kafka API, each created on its API's
// first use: the name is built once at start, the counter when first
// needed, so the request path neither formats a name nor locks after that.
type apiCounters struct {
	set   *metrics.Set
	names [apiSlots]string
	ctrs  [apiSlots]atomic.Pointer[metrics.Counter]
}

// init names the counters after format (with the API name as %q).
func (a *apiCounters) init(set *metrics.Set, format string) {
	a.set = set
	for k := range a.names {
		if name := kmsg.NameForKey(int16(k)); name != "Unknown" {
			a.names[k] = fmt.Sprintf(format, name)
		}
	}
}

// inc counts one request of API key; keys floodgate has no name for are
// not counted.
func (a *apiCounters) inc(key int16) {
	if key < 0 || int(key) >= apiSlots || a.names[key] == "" {
		return
	}
	c := a.ctrs[key].Load()
	if c == nil {
		c = a.set.GetOrCreateCounter(a.names[key])
		a.ctrs[key].Store(c)
	}
	c.Inc()
}

// latencyBuckets are the upper bounds (seconds) of
// floodgate_request_duration_seconds: from 100 µs (an in-memory answer) to
// 30 s (a long poll at its longest usual wait).
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// throttleBuckets are the upper bounds (seconds) of
// floodgate_throttle_time_seconds.
var throttleBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60}

// observeLatency records a request's time d to its answer under its API,
// creating the API's histogram on its first answer.
func (m *serverMetrics) observeLatency(key int16, d time.Duration) {
	if key < 0 || int(key) >= apiSlots || m.latencyName[key] == "" {
		return
	}
	i := int(key)
	h := m.latency[i].Load()
	if h == nil {
		h = m.set.GetOrCreatePrometheusHistogramExt(m.latencyName[i], latencyBuckets)
		m.latency[i].Store(h)
	}
	h.Update(d.Seconds())
}

// counter returns a labelled counter, creating it on first use (cold paths only).
func (m *serverMetrics) counter(name string) *metrics.Counter {
	return m.set.GetOrCreateCounter(name)
}

// connLimitReasons maps the reasons of a refused connection that are
// connection limits to their floodgate_connection_limit_reached_total label.
var connLimitReasons = map[string]string{
	"max_connections":        "max_connections",
	"max_connections_per_ip": "max_connections_per_ip",
	"memory":                 "memory_budget",
	"process_memory":         "process_memory",
	proxyPending:             "proxy_protocol_max_pending",
}

// rejected counts a refused connection.
func (m *serverMetrics) rejected(reason string) {
	if c := m.limitReached[reason]; c != nil {
		c.Inc()
	}
	if reason == "max_connections" { // the one a flood hits: no name building
		m.rejectedMax.Inc()
		return
	}
	if c := m.rejectedBy[reason]; c != nil { // made at start: no name building
		c.Inc()
		return
	}
	m.counter(`floodgate_connections_rejected_total{reason="` + reason + `"}`).Inc()
}

// closed counts a connection floodgate closed, by reason.
func (m *serverMetrics) closed(cause closeCause) { m.closes.inc(cause) }

// ResidentBytes returns the process's resident set size from /proc, or 0.
func ResidentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// httpRefused counts an HTTP request refused by a limit (a flag name;
// the series carries its published label, limits.Label).
func (m *serverMetrics) httpRefused(status int, limit string) {
	switch limit {
	case "max-header-size-bytes", "max-header-count", "max-header-name-bytes", "max-header-value-bytes":
		m.counter("floodgate_header_size_exceeded_total").Inc()
	case "max-body-size-bytes":
		m.counter("floodgate_body_size_exceeded_total").Inc()
	case "max-decompressed-size-bytes", "max-decompression-ratio":
		m.counter("floodgate_decompression_rejected_total").Inc()
	}
	m.counter(`floodgate_http_refused_total{limit="` + limits.Label(limit) + `",code="` + strconv.Itoa(status) + `"}`).Inc()
}

// countErrors counts the error codes a response carries, by API and code
// (floodgate_request_errors_total{api,code}). Successful responses cost a
// type switch and a scan of their partitions; series are built only for
// codes that occur.
func (m *serverMetrics) countErrors(key int16, resp kmsg.Response) {
	add := func(code int16) {
		if code != 0 {
			m.counter(`floodgate_request_errors_total{api="` + kmsg.NameForKey(key) + `",code="` + strconv.Itoa(int(code)) + `"}`).Inc()
		}
	}
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.MetadataResponse:
		for i := range r.Topics {
			add(r.Topics[i].ErrorCode)
		}
	case *kmsg.OffsetCommitResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.ApiVersionsResponse:
		add(r.ErrorCode)
	case *kmsg.FindCoordinatorResponse:
		add(r.ErrorCode)
	case *kmsg.JoinGroupResponse:
		add(r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		add(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		add(r.ErrorCode)
	case *kmsg.InitProducerIDResponse:
		add(r.ErrorCode)
	}
}

package httpapi

import (
	"bytes"
	"fmt"
	"strings"
)

// MetricDoc is one metric a limits document names: floodgate's series, its
// type and its meaning (written as the HELP line of /metrics).
type MetricDoc struct {
	// Document is the document that names it ("kafka": the Kafka server's
	// resource limits issue, "proxy": the proxy's limits page).
	Document string
	// Name is the family name floodgate exposes.
	Name string
	// Type is the Prometheus type.
	Type string
	// Help is the meaning, as the document gives it.
	Help string
}

// MetricDocs are the metrics the two limits documents name, with the
// meaning they give them; old series whose meaning moved are listed with
// DEPRECATED in their HELP and go in the next release.
var MetricDocs = []MetricDoc{
	{"kafka", "floodgate_connections_total", "gauge", "Current client connections, Kafka and HTTP (the document's connections_total). Until this release it counted accepted connections: that count is floodgate_connections_accepted_total."},
	{"kafka", "floodgate_connections_active", "gauge", "Current client connections, Kafka and HTTP (parked ones included); same as floodgate_connections_total."},
	{"kafka", "floodgate_connections_accepted_total", "counter", "Connections accepted and handed to an event loop since start."},
	{"kafka", "floodgate_connections_rejected_total", "counter", "Connections refused at accept or registration, by reason (max_connections, max_connections_per_ip, memory, process_memory, register_failed)."},
	{"kafka", "floodgate_connection_limit_reached_total", "counter", "Connections refused because a connection limit was reached, by reason: max_connections, max_connections_per_ip, memory_budget, process_memory. DEPRECATED reasons in_flight, in_flight_per_worker, route, memory and queue count refused HTTP requests, now floodgate_http_requests_refused_total{reason}; they go in the next release."},
	{"kafka", "floodgate_requests_throttled_total", "counter", "Kafka requests over their rate limit, by API and mode (delay: served with throttle_time_ms; reject: THROTTLING_QUOTA_EXCEEDED)."},
	{"kafka", "floodgate_memory_used_bytes", "gauge", "Bytes the memory budget (--memory-limit-bytes) holds: requests arriving, in flight, and answers not yet written."},
	{"kafka", "floodgate_process_resident_bytes", "gauge", "Resident memory of the process (RSS)."},
	{"kafka", "floodgate_request_queue_depth", "gauge", "Requests waiting in the worker pool's queue (--max-queued-requests)."},
	{"kafka", "floodgate_requests_in_flight", "gauge", "Requests read and not yet answered, Kafka and HTTP (--max-in-flight-requests)."},
	{"kafka", "floodgate_request_too_large_total", "counter", "Kafka requests over --max-request-size, answered MESSAGE_TOO_LARGE and discarded as they streamed in."},
	{"proxy", "floodgate_http_requests_total", "counter", "HTTP answers by route and status code."},
	{"proxy", "floodgate_http_requests_refused_total", "counter", "HTTP requests refused with 503 by a concurrency or memory limit, by reason: in_flight, in_flight_per_worker, route, memory, queue."},
	{"proxy", "floodgate_header_size_exceeded_total", "counter", "HTTP requests refused with 431 by a header limit."},
	{"proxy", "floodgate_body_size_exceeded_total", "counter", "HTTP requests refused with 413 by a body size limit."},
	{"proxy", "floodgate_decompression_rejected_total", "counter", "HTTP request bodies refused while inflating (413: size or ratio; 415: unknown Content-Encoding)."},
	{"proxy", "floodgate_rate_limit_exceeded_total", "counter", "HTTP requests refused with 429 by a rate limit, by scope (global, client, route)."},
	{"proxy", "floodgate_memory_usage_bytes", "gauge", "Resident memory of the process (RSS), watched against --max-memory-bytes and --max-memory-percent."},
}

// metricHelp indexes MetricDocs by family name.
var metricHelp = func() map[string]*MetricDoc {
	m := make(map[string]*MetricDoc, len(MetricDocs))
	for i := range MetricDocs {
		m[MetricDocs[i].Name] = &MetricDocs[i]
	}
	return m
}()

// appendWithHelp copies a Prometheus text exposition to dst, writing the
// HELP and TYPE lines of each documented family before its first sample.
func appendWithHelp(dst *bytes.Buffer, src []byte) {
	written := map[string]bool{}
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i+1], src[i+1:]
		} else {
			src = nil
		}
		if len(line) > 0 && line[0] != '#' {
			end := bytes.IndexAny(line, "{ ")
			if end > 0 {
				name := string(line[:end])
				if d := metricHelp[name]; d != nil && !written[name] {
					written[name] = true
					fmt.Fprintf(dst, "# HELP %s %s\n# TYPE %s %s\n", name, d.Help, name, d.Type)
				}
			}
		}
		dst.Write(line)
	}
}

// MetricDocsMarkdown renders README's table of the documents' metrics.
func MetricDocsMarkdown() string {
	var b strings.Builder
	b.WriteString("| document | metric | type | meaning |\n|---|---|---|---|\n")
	for _, d := range MetricDocs {
		doc := "Kafka server"
		if d.Document == "proxy" {
			doc = "proxy"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", doc, d.Name, d.Type, d.Help)
	}
	return b.String()
}

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
	{"kafka", "floodgate_connections_active", "gauge", "Current client connections, Kafka and HTTP (parked ones included): the Kafka document's connections_total (floodgate_connections_total, a gauge Prometheus' linter refuses under that name, was removed)."},
	{"kafka", "floodgate_connections_accepted_total", "counter", "Connections accepted and handed to an event loop since start."},
	{"kafka", "floodgate_connections_rejected_total", "counter", "Connections refused at accept or registration, by reason (max_connections, max_connections_per_ip, memory, process_memory, register_failed, proxy_untrusted, proxy_pending, proxy_timeout, proxy_malformed, proxy_closed)."},
	{"kafka", "floodgate_connection_limit_reached_total", "counter", "Connections refused because a connection limit was reached, by reason: max_connections, max_connections_per_ip, memory_budget, process_memory. DEPRECATED reasons in_flight, in_flight_per_worker, route, memory and queue count refused HTTP requests, now floodgate_http_requests_refused_total{reason}; they go in the next release."},
	{"kafka", "floodgate_requests_throttled_total", "counter", "Kafka requests over their rate limit, by API and mode (delay: served with throttle_time_ms; reject: THROTTLING_QUOTA_EXCEEDED)."},
	{"kafka", "floodgate_memory_used_bytes", "gauge", "Bytes the memory budget (--request-memory-bytes) holds: requests arriving, in flight, and answers not yet written."},
	{"kafka", "floodgate_process_resident_bytes", "gauge", "DEPRECATED: use process_resident_memory_bytes; goes in the next release. Resident memory of the process (RSS)."},
	{"kafka", "floodgate_request_queue_depth", "gauge", "Requests waiting in the worker pool's queue (--max-queued-requests)."},
	{"kafka", "floodgate_requests_in_flight", "gauge", "Requests read and not yet answered, Kafka and HTTP (--max-in-flight-requests)."},
	{"kafka", "floodgate_request_too_large_total", "counter", "Kafka requests over --max-request-size, answered MESSAGE_TOO_LARGE and discarded as they streamed in."},
	{"proxy", "floodgate_http_requests_total", "counter", "HTTP answers by route and status code."},
	{"proxy", "floodgate_http_requests_refused_total", "counter", "HTTP requests refused with 503 by a concurrency or memory limit, by reason: in_flight, in_flight_per_worker, route, memory, queue."},
	{"proxy", "floodgate_header_size_exceeded_total", "counter", "HTTP requests refused with 431 by a header limit."},
	{"proxy", "floodgate_body_size_exceeded_total", "counter", "HTTP requests refused with 413 by a body size limit."},
	{"proxy", "floodgate_decompression_rejected_total", "counter", "HTTP request bodies refused while inflating (413: size or ratio; 415: unknown Content-Encoding)."},
	{"proxy", "floodgate_rate_limit_exceeded_total", "counter", "HTTP requests refused with 429 by a rate limit, by scope (global, client, route)."},
	{"proxy", "floodgate_memory_usage_bytes", "gauge", "DEPRECATED: use process_resident_memory_bytes; goes in the next release. Resident memory of the process (RSS), watched against --max-process-memory-bytes and --max-process-memory-percent."},
}

// metricHelp indexes MetricDocs by family name.
var metricHelp = func() map[string]*MetricDoc {
	m := make(map[string]*MetricDoc, len(MetricDocs))
	for i := range MetricDocs {
		m[MetricDocs[i].Name] = &MetricDocs[i]
	}
	return m
}()

// seriesHelp is the HELP text of the families the documents do not name.
// Every floodgate_ family needs one (TestEveryFamilyHasHelp checks the
// names in the source): Prometheus' linter refuses a family without.
var seriesHelp = map[string]string{
	"floodgate_accept_errors_total":                  "accept(2) errors on a listener, by listener and errno.",
	"floodgate_accept_waits_total":                   "Times a listener's acceptor waited because the server was at capacity with no room to answer a refusal, by listener.",
	"floodgate_batches_in_total":                     "Record batches the broker appended.",
	"floodgate_build_info":                           "Always 1; the labels say what was built: version, VCS commit and Go version.",
	"floodgate_byte_rate_throttled_total":            "Produce and Fetch requests over their byte rate, by API.",
	"floodgate_bytes_in_total":                       "Bytes read from client connections.",
	"floodgate_bytes_out_total":                      "Bytes written to client connections.",
	"floodgate_committed_offsets":                    "Committed group offsets held (--max-committed-offsets).",
	"floodgate_committed_offsets_bytes":              "Bytes of committed offsets and their metadata held.",
	"floodgate_committed_offsets_expired_total":      "Committed offsets removed after their retention.",
	"floodgate_connections_closed_total":             "Connections floodgate closed, by reason (idle, slow_frame, malformed, http_close, write_error, panic, park_failed, refused_no_error_field, gone_at_accept).",
	"floodgate_connections_parked":                   "Connections parked (not read) while a limit holds them.",
	"floodgate_kafka_frame_buffers_allocated_total":  "Produce request frame buffers allocated because the size class's pool had none (loop/framepool.go).",
	"floodgate_kafka_frame_buffers_taken_total":      "Produce request frames read into pooled buffers; minus the allocated ones, those that reused a buffer.",
	"floodgate_proxy_protocol_pending":               "Connections waiting for their PROXY protocol header (bounded by --proxy-protocol-max-pending).",
	"floodgate_connections_refused_answered_total":   "Refused connections that were answered (Kafka error or HTTP 503) before closing, by listener.",
	"floodgate_connections_refused_timed_out_total":  "Refused connections closed at their answer deadline without the answer written.",
	"floodgate_connections_refused_unanswered_total": "Refused connections closed at once, for want of a slot or descriptor to answer them.",
	"floodgate_connections_refusing":                 "Refused connections being answered now.",
	"floodgate_fetch_wait_refused_total":             "Fetches answered at once because --max-waiting-fetches fetches were waiting.",
	"floodgate_fetch_waiter_panics_total":            "Panics recovered in a waiting fetch's wake-up.",
	"floodgate_fetch_waiting":                        "Fetches waiting for data (long polls).",
	"floodgate_gateway_requests_forwarded_total":     "Gateway requests forwarded upstream.",
	"floodgate_gateway_produce_in_pieces_total":      "Gateway Produce requests forwarded upstream in the pieces they arrived in, never joined.",
	"floodgate_gateway_upstream_connections":         "Gateway connections to upstream brokers.",
	"floodgate_gateway_upstream_errors_total":        "Gateway requests that failed upstream.",
	"floodgate_group_limit_refusals_total":           "Group requests refused by a group limit, by limit.",
	"floodgate_group_members":                        "Members of consumer groups.",
	"floodgate_group_metadata_bytes":                 "Bytes of group member metadata held.",
	"floodgate_group_rebalances_total":               "Consumer group rebalances.",
	"floodgate_groups":                               "Consumer groups.",
	"floodgate_http_handler_panics_total":            "Panics recovered in HTTP handlers (answered 500).",
	"floodgate_http_limit_tripped_total":             "HTTP limits tripped, by limit flag.",
	"floodgate_http_refused_total":                   "HTTP requests refused by the event loop, by limit and status code.",
	"floodgate_malformed_requests_total":             "Kafka requests that could not be parsed (the connection is closed).",
	"floodgate_max_connections":                      "The --max-connections limit.",
	"floodgate_socket_buffer_bytes":                  "The kernel's size of client sockets' buffers (--socket-send-buffer, --socket-receive-buffer; twice the value asked, capped by net.core.wmem_max / rmem_max), 0 when left to autotuning.",
	"floodgate_memory_limit_bytes":                   "The request memory budget (--request-memory-bytes).",
	"floodgate_memory_limit_process_bytes":           "The process memory limit in force (lower of --max-process-memory-bytes and --max-process-memory-percent; 0 = off).",
	"floodgate_offsets_log_bytes":                    "Bytes of the committed offsets log on disk.",
	"floodgate_parks_total":                          "Connections parked, by reason.",
	"floodgate_partitions":                           "Partitions.",
	"floodgate_produce_duplicate_batches_total":      "Idempotent produce batches recognised as duplicates (acknowledged, not appended).",
	"floodgate_produce_invalid_batches_total":        "Produce batches refused as invalid, by reason.",
	"floodgate_producer_states":                      "Idempotent producer states held (--max-producer-states).",
	"floodgate_producer_states_removed_total":        "Idempotent producer states removed, by reason (expired, max_producer_states).",
	"floodgate_records_in_total":                     "Records the broker appended.",
	"floodgate_request_duration_seconds":             "Kafka request time from its last byte read to its answer queued, by API; a long-poll Fetch counts until it parks, not its wait for data (floodgate_fetch_waiting counts the waiters).",
	"floodgate_request_errors_total":                 "Kafka error codes answered, by API and code.",
	"floodgate_request_panics_total":                 "Panics recovered in Kafka request handlers.",
	"floodgate_requests_refused_total":               "Requests refused by a limit, by limit or reason.",
	"floodgate_requests_total":                       "Kafka requests, by API.",
	"floodgate_responses_refused_total":              "Answers refused for want of memory, by reason.",
	"floodgate_rest_corrupt_batches_total":           "Corrupt stored batches met by REST fetches (answered 500).",
	"floodgate_retention_deleted_batches_total":      "Batches deleted by retention.",
	"floodgate_segment_file_evictions":               "Segment files closed to stay under --max-open-segment-files, since start.",
	"floodgate_segment_files_limit":                  "The --max-open-segment-files limit.",
	"floodgate_segment_files_open":                   "Segment files open.",
	"floodgate_sendfile_bytes_total":                 "Record bytes sent from segment files with sendfile(2) (zero-copy Fetch, plaintext connections).",
	"floodgate_spliced_bytes_total":                  "Answer bytes sent to clients from pipes with splice(2) (forwarded Fetch answers relayed without a copy, gateway mode).",
	"floodgate_spliced_answers_total":                "Forwarded Fetch answers relayed to the client through a pipe (gateway mode).",
	"floodgate_gateway_fetch_spliced_total":          "Upstream Fetch answers spliced into a pipe instead of read into memory (gateway mode).",
	"floodgate_gateway_fetch_buffered_total":         "Upstream Fetch answers large enough for a pipe that were read into memory, by reason: no_pipe (the pool was in use), client_share (the client connection held its share of the pipes), pipe_full (the pipe filled short of its size).",
	"floodgate_gateway_pipes_open":                   "Pipes the gateway holds open for relaying Fetch answers (two descriptors each).",
	"floodgate_gateway_pipes_in_use":                 "Pipes holding an answer now (spliced in, not yet written to the client).",
	"floodgate_sendfile_sections_held":               "Sections of segment files held by Fetch answers not yet written (each keeps its file open).",
	"floodgate_sendfile_sections_limit":              "The bound on sections held at once (half of --max-open-segment-files).",
	"floodgate_sendfile_sections_refused":            "Fetch reads served by copy because the section bound was reached, since start.",
	"floodgate_segments_fenced_total":                "Segments fenced (no longer appended to) after a write error.",
	"floodgate_throttle_time_seconds":                "Delay given to Kafka requests over a rate limit (throttle_time_ms), in seconds.",
	"floodgate_tls_connections_active":               "TLS connections open (handshake done), parked ones included.",
	"floodgate_tls_handshake_failures_total":         "TLS handshakes that failed, by reason (timeout, evicted, not_tls, no_client_certificate, bad_certificate, no_common_version_or_cipher, client_alert, client_closed, shutdown, other).",
	"floodgate_tls_handshakes_total":                 "TLS handshakes completed on the TLS listeners.",
	"floodgate_topics":                               "Topics.",
	"floodgate_topics_file_writes_total":             "Writes of the topics file.",
	"process_resident_memory_bytes":                  "Resident memory of the process (RSS), in bytes.",

	// REST consumer instances.
	"floodgate_rest_consumer_instances":               "REST consumer instances (--max-rest-consumer-instances).",
	"floodgate_rest_consumer_buffered_bytes":          "Fetched bytes REST consumer instances hold while building answers (--max-rest-consumer-buffered-bytes).",
	"floodgate_rest_consumer_instances_created_total": "REST consumer instances created.",
	"floodgate_rest_consumer_instances_deleted_total": "REST consumer instances deleted by their clients.",
	"floodgate_rest_consumer_instances_expired_total": "REST consumer instances deleted after --rest-consumer-instance-timeout without a request.",
	"floodgate_admin_connections_refused_total":       "Connections to --admin-listen closed at once: their address already held 8.",
	"floodgate_gateway_fetch_clamped_total":           "Forwarded Fetch requests whose byte limits were lowered to --max-fetch-bytes (gateway mode).",
	"floodgate_gateway_unmapped_brokers_total":        "Upstream brokers named to clients at port 0: no port was left in --gateway-listen-ports for them (gateway mode).",
	"floodgate_gateway_upstream_moves_total":          "Upstream brokers seen answering at a new address; their connections to the old one were retired (gateway mode).",
	"floodgate_sasl_authenticated_total":              "Kafka connections that completed SASL authentication, by mechanism.",
	"floodgate_sasl_authentication_failed_total":      "SASL authentications that failed (wrong user or password, or a malformed exchange).",
	"floodgate_sasl_refused_total":                    "Kafka connections closed by the SASL rules, by reason (unauthenticated request, frame too large, timeout, ...).",
	"floodgate_acl_denied_total":                      "Kafka requests (or parts of them) denied by the ACLs, by API.",
	"floodgate_http_auth_refused_total":               "HTTP requests refused by --http-auth, by reason.",
	"floodgate_acl_undecodable_total":                 "Gateway Kafka requests refused under --auth-required because they do not decode, so the ACLs cannot be checked.",
}

// helpFor is the HELP text of a family: the documents' meaning, the
// table above, or for the Go runtime and process families the library
// writes, where they come from.
func helpFor(family string) string {
	if d := metricHelp[family]; d != nil {
		return d.Help
	}
	if h, ok := seriesHelp[family]; ok {
		return h
	}
	switch {
	case strings.HasPrefix(family, "go_"):
		return "Go runtime metric " + family + " (runtime/metrics, written by VictoriaMetrics/metrics)."
	case strings.HasPrefix(family, "process_"):
		return "Process metric " + family + " (from /proc, written by VictoriaMetrics/metrics)."
	}
	return "floodgate metric " + family + "."
}

// libraryRetyped are families VictoriaMetrics/metrics types as gauges that
// only grow (read from /proc/self/io): counters, as their _total says.
var libraryRetyped = map[string]string{
	"process_io_read_bytes_total":            "counter",
	"process_io_read_syscalls_total":         "counter",
	"process_io_storage_read_bytes_total":    "counter",
	"process_io_storage_written_bytes_total": "counter",
	"process_io_write_syscalls_total":        "counter",
	"process_io_written_bytes_total":         "counter",
}

// libraryDropped are families of the library whose names Prometheus'
// linter refuses (a counter or gauge ending in _count reads as a
// histogram's count); they are left out of /metrics.
var libraryDropped = map[string]bool{
	"go_cgo_calls_count": true,
	"go_cpu_count":       true,
	"go_gc_forced_count": true,
}

// appendWithHelp copies a Prometheus text exposition to dst with one HELP
// and one TYPE line per family. With metrics.ExposeMetadata(true) (set in
// main) the library writes both, the HELP empty: its text is filled in.
// Without it, the documented families get both lines before their first
// sample.
func appendWithHelp(dst *bytes.Buffer, src []byte) {
	written := map[string]bool{}
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i+1], src[i+1:]
		} else {
			src = nil
		}
		if family := lineFamily(line); libraryDropped[family] {
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			if f := strings.Fields(string(rest)); len(f) == 2 && libraryRetyped[f[0]] != "" {
				fmt.Fprintf(dst, "# TYPE %s %s\n", f[0], libraryRetyped[f[0]])
				continue
			}
		}
		if rest, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			family := string(bytes.TrimSpace(rest))
			if i := strings.IndexByte(family, ' '); i >= 0 {
				family = family[:i]
			}
			written[family] = true
			fmt.Fprintf(dst, "# HELP %s %s\n", family, helpFor(family))
			continue
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

// lineFamily is the metric name a sample, HELP or TYPE line is about.
func lineFamily(line []byte) string {
	if rest, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
		line = rest
	} else if rest, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
		line = rest
	} else if len(line) > 0 && line[0] == '#' {
		return ""
	}
	if end := bytes.IndexAny(line, "{ \n"); end >= 0 {
		return string(line[:end])
	}
	return string(line)
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

package limits

import (
	"fmt"
	"time"
)

// Kind says how a limit's value is read from its text (a flag, a profile,
// a config file).
type Kind uint8

// Kinds of limit values.
const (
	// Int is a whole number (a count, a rate, a percentage).
	Int Kind = iota
	// Float is a decimal number (ratios, percentages).
	Float
	// Enum is one word out of a fixed list.
	Enum
	// Duration is a time: a Go duration (10s, 10m, 1h) or a bare number
	// in the row's unit (milliseconds for the Kafka-style -ms flags).
	Duration
	// Size is a byte count: bare bytes or a number with a unit (10MiB,
	// 1GB, 1.5MiB).
	Size
)

// Categories group the flags in --help.
const (
	CatServer      = "Server"
	CatConnections = "Connections"
	CatRequests    = "Requests"
	CatKafka       = "Kafka requests"
	CatHTTP        = "HTTP"
	CatRates       = "Rate limits & quotas"
	CatMemory      = "Memory"
	CatStorage     = "Storage & topics"
	CatGroups      = "Consumer groups"
	CatGateway     = "Gateway"
	CatSecurity    = "Security"
)

// Limit describes one limit floodgate enforces. Table and HTTPTable are
// lists of them; the Field binds a row to its configuration struct.
type Limit struct {
	// Flag is the command-line flag name without dashes.
	Flag string
	// Aliases are other accepted flag names (former names among them).
	Aliases []string
	// Kind is how the value is parsed.
	Kind Kind
	// Default is the default value as written on the command line, in the
	// row's unit.
	Default string
	// Unit names the unit of the value (bytes, ms, requests/s, ...).
	Unit string
	// Help is the one short sentence --help shows; the long explanation
	// (Protects, Answer, Metric) is README's tuning table.
	Help string
	// Category groups the flag in --help.
	Category string
	// Protects says what the limit protects.
	Protects string
	// Answer is what a client sees when the limit trips.
	Answer string
	// Metric is the metric to watch for this limit.
	Metric string
	// Enum lists the words of an Enum limit; a field bound with IndexOf
	// holds the index of its word.
	Enum []string
	// Field is the limit's value in its configuration struct.
	Field Field
	// Min and Max bound the value in the row's unit (Max 0: no upper
	// bound); OffValue, when set, is a value outside them that turns the
	// limit off (-1).
	Min, Max int64
	OffValue *int64
}

// Table lists every limit once. --help, the README's tuning section and
// /admin/stats are generated from or checked against it.
var Table = []Limit{
	{Flag: "max-connections", Aliases: []string{"max-total-connections"}, Kind: Int, Default: "10000", Unit: "connections",
		Help: "Connections open at once, Kafka and HTTP", Category: CatConnections,
		Protects: "file descriptors and per-connection memory",
		Answer:   "the first request is answered, then the connection closed: Kafka THROTTLING_QUOTA_EXCEEDED (89, retriable) in the request's API shape, HTTP 503 with Retry-After, Connection: close and the JSON body naming the limit; established clients are untouched",
		Metric:   `floodgate_connection_limit_reached_total{reason="max_connections"}`, Field: IntOf(func(c *Config) *int { return &c.MaxConnections }), Min: 1},
	{Flag: "max-connections-per-ip", Aliases: []string{"max-connections-per-client"}, Kind: Int, Default: "100", Unit: "connections",
		Help: "Connections open at once from one source IP", Category: CatConnections,
		Protects: "fairness between source addresses",
		Answer:   "as --max-connections: THROTTLING_QUOTA_EXCEEDED (89) or HTTP 503, then closed",
		Metric:   `floodgate_connection_limit_reached_total{reason="max_connections_per_ip"}`, Field: IntOf(func(c *Config) *int { return &c.MaxConnectionsPerIP }), Min: 1},
	{Flag: "http-connection-reserve", Kind: Int, Default: "16", Unit: "connections",
		Help: "HTTP connections allowed past --max-connections", Category: CatConnections,
		Protects: "operator access: the HTTP listener may hold this many connections beyond --max-connections, so /health and /metrics answer while the Kafka port is flooded",
		Answer:   "as --max-connections, once the reserve is used too",
		Metric:   `floodgate_connections_rejected_total{reason="max_connections"}`, Field: IntOf(func(c *Config) *int { return &c.HTTPReserve }), Min: 0},
	{Flag: "connection-idle-timeout", Kind: Duration, Default: "600000", Unit: "ms",
		Help: "Close a connection idle this long (ms)", Category: CatConnections,
		Protects: "descriptors held by clients that went away silently",
		Answer:   "the idle connection is closed",
		Metric:   `floodgate_connections_closed_total{reason="idle"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.IdleTimeout }, time.Millisecond), Min: 1},
	{Flag: "max-request-size", Kind: Size, Default: "104857600", Unit: "bytes",
		Help: "Largest Kafka request frame", Category: CatKafka,
		Protects: "memory: checked on the length prefix before any buffering",
		Answer:   "MESSAGE_TOO_LARGE (10) in the API's response shape; the frame is discarded as it streams in",
		Metric:   "floodgate_request_too_large_total", Field: Int64Of(func(c *Config) *int64 { return &c.MaxRequestSize }), Min: 64, Max: MaxFrameSize},
	{Flag: "request-read-timeout", Kind: Duration, Default: "10000", Unit: "ms, plus 1 s per --min-request-rate bytes received",
		Help: "Time to receive a request; grows with bytes (ms)", Category: CatConnections,
		Protects: "connections and memory from clients that announce large Kafka frames or HTTP bodies and trickle (or never send) them: the time a frame or body may take grows only with the bytes that actually arrived",
		Answer:   "Kafka: the connection is closed; HTTP: 408 with Connection: close; what the frame or body held is released",
		Metric:   `floodgate_connections_closed_total{reason="slow_frame"}, floodgate_connections_closed_total{reason="slow_body"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.RequestReadTimeout }, time.Millisecond), Min: 1},
	{Flag: "min-request-rate", Kind: Size, Default: "65536", Unit: "bytes/s",
		Help: "Bytes/s that buy --request-read-timeout 1 s more", Category: CatConnections,
		Protects: "the time budget of --request-read-timeout: each such many bytes received buy one more second",
		Answer:   "as --request-read-timeout",
		Metric:   `floodgate_connections_closed_total{reason="slow_frame"}`, Field: Int64Of(func(c *Config) *int64 { return &c.MinRequestRate }), Min: 1},
	{Flag: "socket-send-buffer", Aliases: []string{"socket-send-buffer-bytes"}, Kind: Size, Default: "-1", Unit: "bytes (-1 = the kernel's autotuning)",
		Help: "SO_SNDBUF of client sockets (-1 autotuning)", Category: CatConnections,
		Protects: "kernel memory: a client that stops reading leaves the server's send queue full, and Linux autotuning grows it up to net.ipv4.tcp_wmem's maximum (4 MiB by default; on loopback, whose segments are 64 KiB, past 1 MiB at the first write) per connection (Kafka's socket.send.buffer.bytes). Set on the listeners, which accepted sockets inherit; the kernel doubles the value and caps it at net.core.wmem_max",
		Answer:   "none: writes to that client wait (its connection parks, then --send-timeout)",
		Metric:   `floodgate_socket_buffer_bytes{direction="send"} (the kernel's size, 0 = autotuning), floodgate_connections_parked`, Field: Int64Of(func(c *Config) *int64 { return &c.SocketSendBuffer }), Min: 4096, Max: 1 << 30, OffValue: off(-1)},
	{Flag: "socket-receive-buffer", Aliases: []string{"socket-receive-buffer-bytes"}, Kind: Size, Default: "-1", Unit: "bytes (-1 = the kernel's autotuning)",
		Help: "SO_RCVBUF of client sockets (-1 autotuning)", Category: CatConnections,
		Protects: "kernel memory: a connection the server stops reading (backpressure) keeps what the client sends in its receive queue, which autotuning grows up to net.ipv4.tcp_rmem's maximum (6 MiB by default) per connection (Kafka's socket.receive.buffer.bytes). Set on the listeners, which accepted sockets inherit; the kernel doubles the value and caps it at net.core.rmem_max",
		Answer:   "none: the client's writes wait on a smaller TCP window",
		Metric:   `floodgate_socket_buffer_bytes{direction="receive"} (the kernel's size, 0 = autotuning)`, Field: Int64Of(func(c *Config) *int64 { return &c.SocketReceiveBuffer }), Min: 4096, Max: 1 << 30, OffValue: off(-1)},
	{Flag: "send-timeout", Kind: Duration, Default: "60000", Unit: "ms",
		Help: "Close a client not reading answers this long (ms)", Category: CatConnections,
		Protects: "responses held for a client that stopped reading them (a parked connection)",
		Answer:   "the connection is closed and its queued responses released",
		Metric:   `floodgate_connections_closed_total{reason="send_timeout"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.SendTimeout }, time.Millisecond), Min: 1},
	{Flag: "max-fetch-bytes", Kind: Size, Default: "52428800", Unit: "bytes",
		Help: "Largest Fetch response", Category: CatKafka,
		Protects: "memory and bandwidth of one Fetch response",
		Answer:   "the Fetch response is capped (at least one whole batch is still returned)",
		Metric:   "floodgate_bytes_out_total", Field: Int64Of(func(c *Config) *int64 { return &c.MaxFetchBytes }), Min: 1},
	{Flag: "request-memory-bytes", Aliases: []string{"memory-limit-bytes"}, Kind: Size, Default: "1073741824", Unit: "bytes",
		Help: "Request and answer bytes held at once", Category: CatMemory,
		Protects: "bytes held by requests being received, in-flight requests and queued responses (charged as bytes arrive, never the announced size)",
		Answer:   "reading pauses near the limit (only between requests); a request whose bytes or answer do not fit gets REQUEST_TIMED_OUT (7) or HTTP 503; past the high-water mark (7/8) new connections are refused as at --max-connections (THROTTLING_QUOTA_EXCEEDED or HTTP 503)",
		Metric:   "floodgate_memory_used_bytes", Field: Int64Of(func(c *Config) *int64 { return &c.MemoryLimitBytes }), Min: 1 << 20},
	{Flag: "request-memory-per-ip-percent", Aliases: []string{"memory-limit-per-ip-percent"}, Kind: Int, Default: "25", Unit: "% of --request-memory-bytes",
		Help: "% of --request-memory-bytes one IP may hold", Category: CatMemory,
		Protects: "everyone else's part of the memory budget: one source IP holds at most this share",
		Answer:   "as --request-memory-bytes, for that IP only",
		Metric:   `floodgate_requests_refused_total{reason="memory_per_ip"}`, Field: IntOf(func(c *Config) *int { return &c.MemoryPerIPPercent }), Min: 1, Max: 100},
	{Flag: "max-in-flight-requests-per-connection", Aliases: []string{"max-inflight-requests"}, Kind: Int, Default: "1000", Unit: "requests per connection",
		Help: "Requests in flight per connection", Category: CatKafka,
		Protects: "memory and fairness: one connection cannot queue unbounded work",
		Answer:   "the connection is not read until responses drain (TCP backpressure)",
		Metric:   "floodgate_requests_in_flight", Field: IntOf(func(c *Config) *int { return &c.MaxInflight }), Min: 1},
	{Flag: "max-queued-requests", Kind: Int, Default: "1000", Unit: "requests",
		Help: "Requests waiting for a worker", Category: CatRequests,
		Protects: "the worker pool queue shared by Kafka and HTTP",
		Answer:   "the connection is not read until the queue drains (TCP backpressure)",
		Metric:   "floodgate_request_queue_depth", Field: IntOf(func(c *Config) *int { return &c.MaxQueued }), Min: 1},
	{Flag: "produce-rate-limit", Kind: Int, Default: "10000", Unit: "Produce requests/s per client (0 = off)",
		Help: "Produce requests/s per client (0 = off)", Category: CatRates,
		Protects: "broker CPU and disk from one producer",
		Answer:   "delay: served with throttle_time_ms and the connection is not read that long; reject: THROTTLING_QUOTA_EXCEEDED (89)",
		Metric:   `floodgate_requests_throttled_total{api="Produce"}`, Field: IntOf(func(c *Config) *int { return &c.ProduceRate }), Min: 0},
	{Flag: "fetch-rate-limit", Kind: Int, Default: "1000", Unit: "Fetch requests/s per client (0 = off)",
		Help: "Fetch requests/s per client (0 = off)", Category: CatRates,
		Protects: "broker CPU from one consumer",
		Answer:   "delay: served with throttle_time_ms and the connection is not read that long; reject: THROTTLING_QUOTA_EXCEEDED (89)",
		Metric:   `floodgate_requests_throttled_total{api="Fetch"}`, Field: IntOf(func(c *Config) *int { return &c.FetchRate }), Min: 0},
	{Flag: "max-upstream-connections-per-broker", Kind: Int, Default: "1000", Unit: "connections per upstream broker (gateway mode)",
		Help: "Connections to each upstream broker", Category: CatGateway,
		Protects: "the upstream cluster from floodgate's client count",
		Answer:   "nothing fails: beyond it client connections share the least-loaded upstream connections",
		Metric:   "floodgate_gateway_upstream_connections", Field: IntOf(func(c *Config) *int { return &c.MaxUpstreamPerBroker }), Min: 1},
	{Flag: "quota-key", Kind: Enum, Default: "client-id-and-ip", Unit: "client-id-and-ip|client-id|ip|user", Enum: []string{"client-id", "ip", "client-id-and-ip", "user"},
		Help: "Key of the rate limits", Category: CatRates,
		Protects: "defines what a client is for the rate limits: client-id-and-ip (Kafka's default for unauthenticated clients: one bucket per client id on each source IP, and one IP gets at most 16 clients' rate whatever ids it sends), client-id (falls back to ip when empty) or ip",
		Answer:   "-", Metric: "-", Field: IndexOf(func(c *Config) *QuotaKey { return &c.QuotaKey })},
	{Flag: "throttle-mode", Kind: Enum, Default: "delay", Unit: "delay|reject", Enum: []string{"delay", "reject"},
		Help: "How an over-rate request is answered", Category: CatRates,
		Protects: "chooses how rate limits answer",
		Answer:   "delay (KIP-219, every client copes) or reject (error 89: franz-go and kafka-go retry, sarama, librdkafka and kafkajs fail the record)",
		Metric:   "floodgate_throttle_time_seconds", Field: IndexOf(func(c *Config) *ThrottleMode { return &c.ThrottleMode })},
	{Flag: "max-open-segment-files", Kind: Int, Default: "0", Unit: "descriptors (0 = what the open-files limit leaves after --max-connections, --http-connection-reserve and 128 reserved, at least 64)",
		Help: "Segment files open at once (0 = fit ulimit -n)", Category: CatStorage,
		Protects: "the descriptors the listeners need: partition segment files open on use and the least recently used idle ones close beyond it, so idle partitions cost no descriptor",
		Answer:   "nothing fails: a closed segment file reopens on its next read or write",
		Metric:   "floodgate_segment_files_open", Field: IntOf(func(c *Config) *int { return &c.MaxOpenSegmentFiles }), Min: MinSegmentFiles, OffValue: off(0)},
	{Flag: "max-partitions-per-topic", Kind: Int, Default: "10000", Unit: "partitions",
		Help: "Partitions of one topic", Category: CatStorage,
		Protects: "memory, inodes and start-up time; a topics.json above it is refused at start",
		Answer:   "CreateTopics and CreatePartitions: INVALID_PARTITIONS (37) with a message naming the flag",
		Metric:   `floodgate_requests_refused_total{limit="max-partitions-per-topic"}`, Field: IntOf(func(c *Config) *int { return &c.MaxPartitionsPerTopic }), Min: 1, Max: 1 << 20},
	{Flag: "max-partitions", Kind: Int, Default: "20000", Unit: "partitions, all topics together",
		Help: "Partitions of all topics together", Category: CatStorage,
		Protects: "memory, inodes and start-up time (each partition is a directory and three files)",
		Answer:   "CreateTopics and CreatePartitions: POLICY_VIOLATION (44) naming the flag; Metadata auto-creation: UNKNOWN_TOPIC_OR_PARTITION (3)",
		Metric:   `floodgate_requests_refused_total{limit="max-partitions"}`, Field: IntOf(func(c *Config) *int { return &c.MaxPartitions }), Min: 1},
	{Flag: "max-topics", Kind: Int, Default: "10000", Unit: "topics",
		Help: "Topics", Category: CatStorage,
		Protects: "memory and the size of topics.json, rewritten on every topic change",
		Answer:   "CreateTopics: POLICY_VIOLATION (44) naming the flag; Metadata auto-creation: UNKNOWN_TOPIC_OR_PARTITION (3)",
		Metric:   `floodgate_requests_refused_total{limit="max-topics"}`, Field: IntOf(func(c *Config) *int { return &c.MaxTopics }), Min: 1},
	{Flag: "max-metadata-topics", Kind: Int, Default: "10000", Unit: "topics named in one Metadata request",
		Help: "Topics named in one Metadata request", Category: CatKafka,
		Protects: "broker CPU and answer size from one request",
		Answer:   "every topic of the request: INVALID_REQUEST (42); nothing is looked up or created",
		Metric:   `floodgate_requests_refused_total{limit="max-metadata-topics"}`, Field: IntOf(func(c *Config) *int { return &c.MaxMetadataTopics }), Min: 1},
	{Flag: "max-auto-create-topics-per-request", Kind: Int, Default: "100", Unit: "topics created by one Metadata request",
		Help: "Topics one Metadata request may create", Category: CatKafka,
		Protects: "disk and the broker lock from a request naming thousands of unknown topics (all created ones cost one write of topics.json)",
		Answer:   "the topics beyond it: UNKNOWN_TOPIC_OR_PARTITION (3), retriable: the client's next Metadata creates the next ones",
		Metric:   `floodgate_requests_refused_total{limit="max-auto-create-topics-per-request"}`, Field: IntOf(func(c *Config) *int { return &c.MaxAutoCreateTopics }), Min: 1},
	{Flag: "min-segment-bytes", Kind: Size, Default: "1048576", Unit: "bytes",
		Help: "Smallest segment.bytes a topic may set", Category: CatStorage,
		Protects: "descriptors and inodes: segment.bytes=1 would make one segment (three files) per batch",
		Answer:   "CreateTopics, AlterConfigs, IncrementalAlterConfigs setting a smaller segment.bytes: INVALID_CONFIG (40) naming the flag",
		Metric:   `floodgate_requests_refused_total{limit="min-segment-bytes"}`, Field: Int64Of(func(c *Config) *int64 { return &c.MinSegmentBytes }), Min: 14, Max: 1<<31 - 1},
	{Flag: "max-groups", Kind: Int, Default: "100000", Unit: "consumer groups",
		Help: "Consumer groups", Category: CatGroups,
		Protects: "coordinator memory: groups of any state, Empty groups that only hold offsets included",
		Answer:   "JoinGroup, or OffsetCommit creating a group: COORDINATOR_NOT_AVAILABLE (15), retriable while expired groups free room",
		Metric:   `floodgate_group_limit_refusals_total{limit="max-groups"}`, Field: IntOf(func(c *Config) *int { return &c.MaxGroups }), Min: 1},
	{Flag: "group-max-members", Kind: Int, Default: "1000", Unit: "members per group",
		Help: "Members of one group (group.max.size)", Category: CatGroups,
		Protects: "coordinator memory and rebalance work (Kafka's group.max.size); members awaiting MEMBER_ID_REQUIRED count",
		Answer:   "JoinGroup: GROUP_MAX_SIZE_REACHED (81)",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-members"}`, Field: IntOf(func(c *Config) *int { return &c.GroupMaxMembers }), Min: 1},
	{Flag: "group-max-member-metadata-bytes", Kind: Size, Default: "1048576", Unit: "bytes",
		Help: "Protocols or assignment of one member", Category: CatGroups,
		Protects: "memory held for a member's session: its protocols in JoinGroup, its assignment in SyncGroup (Kafka's bound is the 1 MiB record of __consumer_offsets)",
		Answer:   "JoinGroup or SyncGroup: INVALID_REQUEST (42), checked before anything is copied",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-member-metadata-bytes"}`, Field: Int64Of(func(c *Config) *int64 { return &c.GroupMaxMemberMetadataBytes }), Min: 1},
	{Flag: "group-max-metadata-bytes", Kind: Size, Default: "16777216", Unit: "bytes per group",
		Help: "Protocols and assignments of one group", Category: CatGroups,
		Protects: "memory: protocols and assignments of all members of one group",
		Answer:   "JoinGroup: GROUP_MAX_SIZE_REACHED (81); the leader's SyncGroup: INVALID_REQUEST (42)",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-metadata-bytes"}`, Field: Int64Of(func(c *Config) *int64 { return &c.GroupMaxMetadataBytes }), Min: 1},
	{Flag: "groups-max-metadata-bytes", Kind: Size, Default: "268435456", Unit: "bytes",
		Help: "Protocols and assignments of all groups", Category: CatGroups,
		Protects: "memory: protocols and assignments of all members of all groups",
		Answer:   "JoinGroup or SyncGroup: COORDINATOR_NOT_AVAILABLE (15), retriable",
		Metric:   "floodgate_group_metadata_bytes", Field: Int64Of(func(c *Config) *int64 { return &c.GroupsMaxMetadataBytes }), Min: 1},
	{Flag: "group-min-session-timeout-ms", Kind: Duration, Default: "6000", Unit: "ms",
		Help: "Shortest session timeout a member may ask", Category: CatGroups,
		Protects: "coordinator CPU: timers of very short sessions (Kafka's group.min.session.timeout.ms)",
		Answer:   "JoinGroup: INVALID_SESSION_TIMEOUT (26)",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-min-session-timeout-ms"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.GroupMinSessionTimeout }, time.Millisecond), Min: 1},
	{Flag: "group-max-session-timeout-ms", Kind: Duration, Default: "1800000", Unit: "ms",
		Help: "Longest session timeout a member may ask", Category: CatGroups,
		Protects: "how long a silent member is kept (Kafka's group.max.session.timeout.ms)",
		Answer:   "JoinGroup: INVALID_SESSION_TIMEOUT (26)",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-session-timeout-ms"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.GroupMaxSessionTimeout }, time.Millisecond), Min: 1},
	{Flag: "offsets-retention-minutes", Kind: Duration, Default: "10080", Unit: "minutes (-1 = never)",
		Help: "Expire empty groups' offsets (min)", Category: CatGroups,
		Protects: "memory and offsets.log: offsets of groups Empty this long (or, without a protocol type, committed this long ago) expire, as Kafka's offsets.retention.minutes",
		Answer:   "the offsets and the group are deleted; OffsetFetch answers -1 afterwards",
		Metric:   "floodgate_committed_offsets_expired_total", Field: DurationOf(func(c *Config) *time.Duration { return &c.OffsetsRetention }, time.Minute), Min: 1, OffValue: off(-1)},
	{Flag: "offset-metadata-max-bytes", Kind: Size, Default: "4096", Unit: "bytes",
		Help: "Metadata of one committed offset", Category: CatGroups,
		Protects: "memory and offsets.log: metadata of one committed offset (Kafka's offset.metadata.max.bytes)",
		Answer:   "OffsetCommit: OFFSET_METADATA_TOO_LARGE (12) for that partition",
		Metric:   `floodgate_group_limit_refusals_total{limit="offset-metadata-max-bytes"}`, Field: IntOf(func(c *Config) *int { return &c.OffsetMetadataMaxBytes }), Min: 1},
	{Flag: "group-max-offsets", Kind: Int, Default: "100000", Unit: "committed offsets per group",
		Help: "Committed offsets of one group", Category: CatGroups,
		Protects: "memory and offsets.log held by one group",
		Answer:   "OffsetCommit: INVALID_COMMIT_OFFSET_SIZE (28) for a new partition",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-offsets"}`, Field: IntOf(func(c *Config) *int { return &c.GroupMaxOffsets }), Min: 1},
	{Flag: "offsets-max-bytes", Kind: Size, Default: "268435456", Unit: "bytes (80 per offset plus its metadata)",
		Help: "Committed offsets of all groups", Category: CatGroups,
		Protects: "memory and offsets.log: committed offsets of all groups",
		Answer:   "OffsetCommit: INVALID_COMMIT_OFFSET_SIZE (28) for that partition",
		Metric:   "floodgate_committed_offsets_bytes", Field: Int64Of(func(c *Config) *int64 { return &c.OffsetsMaxBytes }), Min: 1},
	{Flag: "group-max-response-bytes", Kind: Size, Default: "16777216", Unit: "bytes",
		Help: "DescribeGroups or OffsetFetch answer", Category: CatGroups,
		Protects: "memory: member metadata in one DescribeGroups answer, committed offsets in one OffsetFetch answer (repeated names cannot multiply a group); the first group is always answered whole",
		Answer:   "the groups beyond: COORDINATOR_LOAD_IN_PROGRESS (14), retriable, so clients ask for them again",
		Metric:   `floodgate_group_limit_refusals_total{limit="group-max-response-bytes"}`, Field: Int64Of(func(c *Config) *int64 { return &c.GroupMaxResponseBytes }), Min: 1},
	{Flag: "max-partitions-per-request", Kind: Int, Default: "10000", Unit: "topics + partitions (+ tagged fields) per Produce request",
		Help: "Topics + partitions in one Produce", Category: CatKafka,
		Protects: "memory: kmsg allocates ~48 bytes per partition a Produce claims (8 on the wire); counted on the raw bytes before decoding, and every array count is checked against the bytes left",
		Answer:   "INVALID_REQUEST (42) for the first max-partitions-per-request partitions, the rest left out (an answer bounded by the limit: franz-go retries partitions left out, sarama fails them)",
		Metric:   `floodgate_requests_refused_total{limit="max-partitions-per-request"}`, Field: IntOf(func(c *Config) *int { return &c.MaxPartitionsPerRequest }), Min: 1},
	{Flag: "max-non-produce-request-size", Kind: Size, Default: "1048576", Unit: "bytes",
		Help: "Largest request other than Produce", Category: CatKafka,
		Protects: "memory: kmsg allocates up to 24 bytes per byte received in structs (Metadata v0: 24 MiB per 1 MiB request, 2.4 GB at max-request-size); 1 MiB holds a SyncGroup assigning ~250k partitions",
		Answer:   "MESSAGE_TOO_LARGE (10) in the API's top-level error where its version has one, else the connection is closed",
		Metric:   `floodgate_requests_refused_total{limit="max-non-produce-request-size"}`, Field: Int64Of(func(c *Config) *int64 { return &c.MaxNonProduceRequestSize }), Min: 64},
	{Flag: "message-timestamp-after-max-ms", Kind: Duration, Default: "3600000", Unit: "ms (-1 = off)",
		Help: "Max CreateTime ahead of now (ms, -1 off)", Category: CatKafka,
		Protects: "time-based retention: a CreateTime record stamped in the year 9999 kept its partition forever (Kafka's message.timestamp.after.max.ms, 4.0 default)",
		Answer:   "INVALID_TIMESTAMP (32) for the partition",
		Metric:   `floodgate_produce_invalid_batches_total{reason="invalid_timestamp"}`, Field: MillisOf(func(c *Config) *int64 { return &c.TimestampAfterMaxMs }), Min: 1, OffValue: off(-1)},
	{Flag: "message-timestamp-before-max-ms", Kind: Duration, Default: "-1", Unit: "ms (-1 = off)",
		Help: "Max CreateTime behind now (ms, -1 off)", Category: CatKafka,
		Protects: "retention from records stamped far in the past (Kafka's message.timestamp.before.max.ms; off by default as in Kafka)",
		Answer:   "INVALID_TIMESTAMP (32) for the partition",
		Metric:   `floodgate_produce_invalid_batches_total{reason="invalid_timestamp"}`, Field: MillisOf(func(c *Config) *int64 { return &c.TimestampBeforeMaxMs }), Min: 1, OffValue: off(-1)},
	{Flag: "producer-id-expiration-ms", Kind: Duration, Default: "86400000", Unit: "ms",
		Help: "Forget an idle idempotent producer (ms)", Category: CatKafka,
		Protects: "memory: an idempotent producer's sequence state is forgotten after this long without an append (Kafka's producer.id.expiration.ms)",
		Answer:   "none while the producer appends; after it, a late retry is not recognised as a duplicate",
		Metric:   `floodgate_producer_states_removed_total{reason="expired"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.ProducerIDExpiration }, time.Millisecond), Min: 1},
	{Flag: "max-producer-states", Kind: Int, Default: "200000", Unit: "producer states (producer id × partition)",
		Help: "Idempotent producer states (id x partition)", Category: CatMemory,
		Protects: "memory (~180 bytes each): a fresh producer id per batch grew them without end",
		Answer:   "the least recently appending producer's state is forgotten; its next batch gets OUT_OF_ORDER_SEQUENCE_NUMBER (45) and the client re-initialises",
		Metric:   `floodgate_producer_states_removed_total{reason="max_producer_states"}`, Field: IntOf(func(c *Config) *int { return &c.MaxProducerStates }), Min: 1},
	{Flag: "max-waiting-fetches", Kind: Int, Default: "10000", Unit: "Fetch requests waiting for data (0 = off)",
		Help: "Long-poll Fetches waiting (0 = off)", Category: CatKafka,
		Protects: "memory and goroutines: long-poll fetches parked on partitions until data or max_wait_ms",
		Answer:   "one more long-poll fetch is answered at once with what is there (possibly nothing)",
		Metric:   "floodgate_fetch_wait_refused_total, floodgate_fetch_waiting", Field: Int64Of(func(c *Config) *int64 { return &c.MaxWaitingFetches }), Min: 0},
	{Flag: "produce-byte-rate", Kind: Size, Default: "0", Unit: "Produce bytes/s per client (0 = off)",
		Help: "Produce bytes/s per client (0 = off)", Category: CatRates,
		Protects: "broker disk and network from one producer (Kafka's producer_byte_rate)",
		Answer:   "always delay, as Kafka: served with throttle_time_ms = the time the bytes over the rate take to drain, and the connection is not read that long",
		Metric:   `floodgate_byte_rate_throttled_total{api="Produce"}`, Field: Int64Of(func(c *Config) *int64 { return &c.ProduceByteRate }), Min: 0},
	{Flag: "fetch-byte-rate", Kind: Size, Default: "0", Unit: "Fetch response bytes/s per client (0 = off)",
		Help: "Fetch bytes/s per client (0 = off)", Category: CatRates,
		Protects: "broker network from one consumer (Kafka's consumer_byte_rate)",
		Answer:   "always delay, as Kafka: the response carries throttle_time_ms for the bytes it returned over the rate, and the client's next request is not read until they drained",
		Metric:   `floodgate_byte_rate_throttled_total{api="Fetch"}`, Field: Int64Of(func(c *Config) *int64 { return &c.FetchByteRate }), Min: 0},
	{Flag: "proxy-protocol-timeout", Kind: Duration, Default: "5000", Unit: "ms",
		Help: "Time for the PROXY header (ms)", Category: CatConnections,
		Protects: "descriptors and goroutines: a connection on a --proxy-protocol listener must deliver its whole PROXY header within this time (it is read before the connection is enrolled, since the header names the client the per-IP limits count)",
		Answer:   "the connection is closed (no answer: its client is not known yet)",
		Metric:   `floodgate_connections_rejected_total{reason="proxy_timeout"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.ProxyProtocolTimeout }, time.Millisecond), Min: 1},
	{Flag: "proxy-protocol-max-pending", Kind: Int, Default: "512", Unit: "connections",
		Help: "Connections awaiting a PROXY header", Category: CatConnections,
		Protects: "descriptors and goroutines held by connections whose PROXY header has not arrived yet (one goroutine each, off the event loops)",
		Answer:   "a new connection beyond it is closed at once (no answer: its client is not known yet)",
		Metric:   `floodgate_connection_limit_reached_total{reason="proxy_protocol_max_pending"}`, Field: IntOf(func(c *Config) *int { return &c.ProxyProtocolMaxPending }), Min: 1},
	{Flag: "max-fetch-wait-ms", Kind: Duration, Default: "300000", Unit: "ms",
		Help: "Longest a Fetch may wait for data (ms)", Category: CatKafka,
		Protects: "memory and timers: a long-poll Fetch's max_wait_ms is capped, so a waiter cannot be parked for days",
		Answer:   "the Fetch is answered with what is there once this passes, as if its max_wait_ms had",
		Metric:   "floodgate_fetch_waiting", Field: DurationOf(func(c *Config) *time.Duration { return &c.MaxFetchWait }, time.Millisecond), Min: 1},
	{Flag: "memory-wait-timeout", Kind: Duration, Default: "2000", Unit: "ms (0 = refuse at once)",
		Help: "Wait for room in --request-memory-bytes (ms)", Category: CatMemory,
		Protects: "clients from errors in a short burst: a Kafka connection whose next request may not fit the request memory is not read this long while answers drain",
		Answer:   "past it the request is read and, if it still does not fit, answered REQUEST_TIMED_OUT (7), retriable",
		Metric:   `floodgate_requests_refused_total{reason="memory"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.MemoryWait }, time.Millisecond), Min: 0},
	{Flag: "sasl-authentication-timeout", Kind: Duration, Default: "10000", Unit: "ms",
		Help: "Time to authenticate with SASL (ms)", Category: CatSecurity,
		Protects: "connection slots from clients that never authenticate (with --auth-required): the time from a connection's opening to its successful SASL authentication",
		Answer:   "the connection is closed",
		Metric:   `floodgate_connections_closed_total{reason="auth_timeout"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.SASLAuthenticationTimeout }, time.Millisecond), Min: 1},
	{Flag: "sasl-failed-authentication-delay", Kind: Duration, Default: "1000", Unit: "ms",
		Help: "Delay before a failed SASL answer (ms)", Category: CatSecurity,
		Protects: "passwords from online guessing at full speed (Kafka's connection.failed.authentication.delay.ms)",
		Answer:   "a failed SASL authentication is answered SASL_AUTHENTICATION_FAILED (58) after this delay, then the connection is closed",
		Metric:   "floodgate_sasl_authentication_failed_total", Field: DurationOf(func(c *Config) *time.Duration { return &c.SASLFailedAuthenticationDelay }, time.Millisecond), Min: 0},
	{Flag: "max-tls-handshakes", Kind: Int, Default: "256", Unit: "handshakes running at once",
		Help: "TLS handshakes running at once", Category: CatSecurity,
		Protects: "CPU and goroutines: each TLS handshake runs in a goroutine off the event loop, with public-key work",
		Answer:   "the oldest handshake, if it has run for more than an eighth of --tls-handshake-timeout (a client gone silent), is closed and the new connection takes its place; otherwise the new TLS connection is closed at once (nothing can be answered before a handshake); established clients are untouched",
		Metric:   `floodgate_connections_rejected_total{reason="max_tls_handshakes"}, floodgate_tls_handshake_failures_total{reason="evicted"}`, Field: IntOf(func(c *Config) *int { return &c.MaxTLSHandshakes }), Min: 1},
	{Flag: "tls-handshake-timeout", Kind: Duration, Default: "10000", Unit: "ms",
		Help: "Time a TLS handshake may take (ms)", Category: CatSecurity,
		Protects: "handshake slots and descriptors from clients that connect to a TLS port and stall (or send plaintext)",
		Answer:   "the connection is closed",
		Metric:   `floodgate_tls_handshake_failures_total{reason="timeout"}`, Field: DurationOf(func(c *Config) *time.Duration { return &c.TLSHandshakeTimeout }, time.Millisecond), Min: 1},
	{Flag: "gateway-splice-pipes", Kind: Int, Default: "64", Unit: "pipes (gateway mode; 0 = off, at most 4096)",
		Help: "Pipes relaying Fetch answers (0 = off)", Category: CatGateway,
		Protects: "descriptors and kernel memory: pipes (2 descriptors and up to 1 MiB of kernel memory each, so 4096 is 8,192 descriptors and 4 GiB; fewer pipes when the system's pipe-user-pages-soft would not hold them) relay large Fetch answers to plaintext clients without copying; their descriptors are kept aside from --max-connections. One client connection holds at most an eighth of them, the connections of one client IP (the PROXY header's if any) a quarter",
		Answer:   "nothing fails: an answer that finds no free pipe, or whose connection or IP holds its share, is read into memory as without the relay (charged to the memory budget)",
		Metric:   `floodgate_gateway_fetch_buffered_total{reason="no_pipe"}, floodgate_gateway_fetch_buffered_total{reason="ip_share"}, floodgate_gateway_pipes_in_use`, Field: IntOf(func(c *Config) *int { return &c.GatewaySplicePipes }), Min: 0, Max: 4096},
}

// Lookup returns the Kafka-side limit called flag (or one of its aliases).
func Lookup(flag string) (Limit, bool) {
	if l, ok := lookup(Table, flag); ok {
		return *l, true
	}
	return Limit{}, false
}

// Defaults returns the configuration of the table's defaults.
func Defaults() Config {
	var c Config
	setDefaults(Table, &c)
	return c
}

// SetText sets limit flag (or an alias) from its text: a flag's value, a
// profile's, a config file's.
func (c *Config) SetText(flag, text string) error { return setText(Table, c, flag, text) }

// Value returns the configured value of a limit as it is written on the
// command line, in the row's unit.
func (c *Config) Value(flag string) string { return value(Table, c, flag) }

// Validate reports the first value no server could run with, naming its flag.
func (c *Config) Validate() error {
	if err := validate(Table, c); err != nil {
		return err
	}
	if c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		return fmt.Errorf("--group-max-session-timeout-ms=%d: must be at least --group-min-session-timeout-ms (%d)",
			c.GroupMaxSessionTimeout.Milliseconds(), c.GroupMinSessionTimeout.Milliseconds())
	}
	return nil
}

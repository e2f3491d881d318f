package limits

import "time"

// QuotaKey says what identifies a client for rate limits.
type QuotaKey uint8

// Quota keys, in the order of the --quota-key row's words.
const (
	// QuotaByClientID keys rate limits by the Kafka client id, falling back to the IP.
	QuotaByClientID QuotaKey = iota
	// QuotaByIP keys rate limits by the source IP.
	QuotaByIP
	// QuotaByClientIDAndIP keys rate limits by the client id and the
	// source IP together, as Kafka's default quotas do for unauthenticated
	// clients (user ANONYMOUS, per client id) on each address: clients
	// that keep their library's default id on different hosts do not
	// share a bucket. The default.
	QuotaByClientIDAndIP
	// QuotaByUser keys rate limits by the SASL-authenticated user, as
	// Kafka's user quotas do; a connection that did not authenticate is
	// keyed by its source IP.
	QuotaByUser
)

// QuotaClientsPerIP bounds what one source IP gets under
// QuotaByClientIDAndIP whatever client ids it sends: the rate of this many
// clients. A client that changes its id on every request would otherwise
// get a fresh bucket each time.
const QuotaClientsPerIP = 16

// ThrottleMode says how an over-rate request is answered.
type ThrottleMode uint8

// Throttle modes, in the order of the --throttle-mode row's words.
const (
	// ThrottleDelay serves the request, reports throttle_time_ms and stops reading the connection that long.
	ThrottleDelay ThrottleMode = iota
	// ThrottleReject answers THROTTLING_QUOTA_EXCEEDED without executing the request.
	ThrottleReject
)

// Config is the value of every limit. A zero rate means the limit is off.
type Config struct {
	MaxConnections       int
	MaxConnectionsPerIP  int
	HTTPReserve          int
	IdleTimeout          time.Duration
	MaxRequestSize       int64
	RequestReadTimeout   time.Duration
	MinRequestRate       int64
	SendTimeout          time.Duration
	MaxFetchBytes        int64
	MemoryLimitBytes     int64
	MemoryPerIPPercent   int
	MaxInflight          int
	MaxQueued            int
	ProduceRate          int
	FetchRate            int
	MaxUpstreamPerBroker int
	QuotaKey             QuotaKey
	ThrottleMode         ThrottleMode
	// MaxOpenSegmentFiles is the descriptor budget of partition segment
	// files; 0 means sized from the open-files limit (FitSegmentFiles).
	MaxOpenSegmentFiles   int
	MaxPartitionsPerTopic int
	MaxPartitions         int
	MaxTopics             int
	MaxMetadataTopics     int
	MaxAutoCreateTopics   int
	MinSegmentBytes       int64
	// MaxPartitionsPerRequest bounds a Produce's topics and partitions.
	MaxPartitionsPerRequest int
	// MaxNonProduceRequestSize bounds the body of other requests.
	MaxNonProduceRequestSize int64
	// TimestampAfterMaxMs and TimestampBeforeMaxMs bound CreateTime
	// timestamps around the broker's clock; -1 is off.
	TimestampAfterMaxMs, TimestampBeforeMaxMs int64
	// ProducerIDExpiration forgets idle idempotent producer states.
	ProducerIDExpiration time.Duration
	// MaxProducerStates bounds the idempotent producer states.
	MaxProducerStates int
	MaxWaitingFetches int64

	// The group coordinator's limits (broker.GroupLimits).
	MaxGroups                   int
	GroupMaxMembers             int
	GroupMaxMemberMetadataBytes int64
	GroupMaxMetadataBytes       int64
	GroupsMaxMetadataBytes      int64
	GroupMinSessionTimeout      time.Duration
	GroupMaxSessionTimeout      time.Duration
	OffsetsRetention            time.Duration // negative: never
	OffsetMetadataMaxBytes      int
	GroupMaxOffsets             int
	OffsetsMaxBytes             int64
	GroupMaxResponseBytes       int64
	// ProduceByteRate and FetchByteRate are Kafka's producer_byte_rate
	// and consumer_byte_rate per client, in bytes/s (0 = off).
	ProduceByteRate int64
	FetchByteRate   int64
	// ProxyProtocolTimeout bounds the wait for a connection's PROXY
	// header, ProxyProtocolMaxPending the connections waiting for one.
	ProxyProtocolTimeout    time.Duration
	ProxyProtocolMaxPending int
	// MaxFetchWait caps a long-poll Fetch's max_wait_ms.
	MaxFetchWait time.Duration
	// MemoryWait is how long a Kafka connection waits for room in the
	// memory budget before its next request is refused.
	MemoryWait time.Duration
	// SASLAuthenticationTimeout bounds the time from a connection's
	// opening to its SASL authentication (with --auth-required).
	SASLAuthenticationTimeout time.Duration
	// SASLFailedAuthenticationDelay delays the answer to a failed
	// authentication, after which the connection is closed.
	SASLFailedAuthenticationDelay time.Duration
	// MaxTLSHandshakes bounds the TLS handshakes running at once;
	// TLSHandshakeTimeout bounds one.
	MaxTLSHandshakes    int
	TLSHandshakeTimeout time.Duration
	// GatewaySplicePipes is the pipes the gateway keeps for relaying
	// Fetch answers without copying them; 0 turns the relay off (unlike
	// gateway.Config.SplicePipes, whose 0 is the default).
	GatewaySplicePipes int
	// SocketSendBuffer and SocketReceiveBuffer are SO_SNDBUF and
	// SO_RCVBUF of client sockets, set on the listeners (accepted sockets
	// inherit them); -1 leaves them to the kernel's autotuning.
	SocketSendBuffer, SocketReceiveBuffer int64
}

// MaxFrameSize is the absolute cap on an announced Kafka frame: a frame
// above it is not discarded byte by byte but answered by closing the
// connection, since no Kafka client sends one.
const MaxFrameSize = 1 << 30

// MemoryPerIP returns the bytes of the budget one source IP may hold.
func (c *Config) MemoryPerIP() int64 {
	return c.MemoryLimitBytes * int64(c.MemoryPerIPPercent) / 100
}

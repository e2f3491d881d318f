package limits

import (
	"fmt"
	"time"
)

// QuotaKey says what identifies a client for rate limits.
type QuotaKey uint8

// Quota keys.
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
)

// QuotaClientsPerIP bounds what one source IP gets under
// QuotaByClientIDAndIP whatever client ids it sends: the rate of this many
// clients. A client that changes its id on every request would otherwise
// get a fresh bucket each time.
const QuotaClientsPerIP = 16

// ThrottleMode says how an over-rate request is answered.
type ThrottleMode uint8

// Throttle modes.
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
	// MaxTLSHandshakes bounds the TLS handshakes running at once;
	// TLSHandshakeTimeout bounds one.
	MaxTLSHandshakes    int
	TLSHandshakeTimeout time.Duration
}

// MaxFrameSize is the absolute cap on an announced Kafka frame: a frame
// above it is not discarded byte by byte but answered by closing the
// connection, since no Kafka client sends one.
const MaxFrameSize = 1 << 30

// parseQuotaKey reads --quota-key.
func parseQuotaKey(c *Config, v string) error {
	switch v {
	case "client-id":
		c.QuotaKey = QuotaByClientID
	case "ip":
		c.QuotaKey = QuotaByIP
	case "client-id-and-ip":
		c.QuotaKey = QuotaByClientIDAndIP
	default:
		return fmt.Errorf("--quota-key=%q: want client-id-and-ip, client-id or ip", v)
	}
	return nil
}

// formatQuotaKey writes --quota-key.
func formatQuotaKey(c *Config) string {
	switch c.QuotaKey {
	case QuotaByIP:
		return "ip"
	case QuotaByClientIDAndIP:
		return "client-id-and-ip"
	}
	return "client-id"
}

// parseThrottleMode reads --throttle-mode.
func parseThrottleMode(c *Config, v string) error {
	switch v {
	case "delay":
		c.ThrottleMode = ThrottleDelay
	case "reject":
		c.ThrottleMode = ThrottleReject
	default:
		return fmt.Errorf("--throttle-mode=%q: want delay or reject", v)
	}
	return nil
}

// formatThrottleMode writes --throttle-mode.
func formatThrottleMode(c *Config) string {
	if c.ThrottleMode == ThrottleReject {
		return "reject"
	}
	return "delay"
}

// MemoryPerIP returns the bytes of the budget one source IP may hold.
func (c *Config) MemoryPerIP() int64 {
	return c.MemoryLimitBytes * int64(c.MemoryPerIPPercent) / 100
}

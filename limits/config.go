package limits

import (
	"fmt"
	"strconv"
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
)

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
}

// Defaults returns the configuration of the table's defaults.
func Defaults() Config {
	return Config{
		MaxConnections:       10000,
		MaxConnectionsPerIP:  100,
		HTTPReserve:          16,
		IdleTimeout:          600 * time.Second,
		MaxRequestSize:       104857600,
		RequestReadTimeout:   10 * time.Second,
		MinRequestRate:       64 << 10,
		SendTimeout:          60 * time.Second,
		MaxFetchBytes:        52428800,
		MemoryLimitBytes:     1 << 30,
		MemoryPerIPPercent:   25,
		MaxInflight:          1000,
		MaxQueued:            1000,
		ProduceRate:          10000,
		FetchRate:            1000,
		MaxUpstreamPerBroker: 1000,

		MaxPartitionsPerTopic:    10000,
		MaxPartitions:            20000,
		MaxTopics:                10000,
		MaxMetadataTopics:        10000,
		MaxAutoCreateTopics:      100,
		MinSegmentBytes:          1 << 20,
		MaxPartitionsPerRequest:  10000,
		MaxNonProduceRequestSize: 1 << 20,
		TimestampAfterMaxMs:      3600000,
		TimestampBeforeMaxMs:     -1,
		ProducerIDExpiration:     24 * time.Hour,
		MaxProducerStates:        200000,
		MaxWaitingFetches:        10000,

		MaxGroups:                   100000,
		GroupMaxMembers:             1000,
		GroupMaxMemberMetadataBytes: 1 << 20,
		GroupMaxMetadataBytes:       16 << 20,
		GroupsMaxMetadataBytes:      256 << 20,
		GroupMinSessionTimeout:      6 * time.Second,
		GroupMaxSessionTimeout:      30 * time.Minute,
		OffsetsRetention:            7 * 24 * time.Hour,
		OffsetMetadataMaxBytes:      4096,
		GroupMaxOffsets:             100000,
		OffsetsMaxBytes:             256 << 20,
		GroupMaxResponseBytes:       16 << 20,
	}
}

// Validate reports the first value no server could run with, naming its flag.
func (c *Config) Validate() error {
	checks := []struct {
		flag string
		v    int64
		min  int64
	}{
		{"max-connections", int64(c.MaxConnections), 1},
		{"max-connections-per-ip", int64(c.MaxConnectionsPerIP), 1},
		{"http-connection-reserve", int64(c.HTTPReserve), 0},
		{"connection-idle-timeout", c.IdleTimeout.Milliseconds(), 1},
		{"max-request-size", c.MaxRequestSize, 64},
		{"request-read-timeout", c.RequestReadTimeout.Milliseconds(), 1},
		{"max-fetch-bytes", c.MaxFetchBytes, 1},
		{"memory-limit-bytes", c.MemoryLimitBytes, 1 << 20},
		{"memory-limit-per-ip-percent", int64(c.MemoryPerIPPercent), 1},
		{"min-request-rate", c.MinRequestRate, 1},
		{"send-timeout", c.SendTimeout.Milliseconds(), 1},
		{"max-inflight-requests", int64(c.MaxInflight), 1},
		{"max-queued-requests", int64(c.MaxQueued), 1},
		{"produce-rate-limit", int64(c.ProduceRate), 0},
		{"fetch-rate-limit", int64(c.FetchRate), 0},
		{"max-upstream-connections-per-broker", int64(c.MaxUpstreamPerBroker), 1},
		{"max-open-segment-files", int64(c.MaxOpenSegmentFiles), 0},
		{"max-partitions-per-topic", int64(c.MaxPartitionsPerTopic), 1},
		{"max-partitions", int64(c.MaxPartitions), 1},
		{"max-topics", int64(c.MaxTopics), 1},
		{"max-metadata-topics", int64(c.MaxMetadataTopics), 1},
		{"max-auto-create-topics-per-request", int64(c.MaxAutoCreateTopics), 1},
		{"min-segment-bytes", c.MinSegmentBytes, 14}, // Kafka's own minimum
		{"max-partitions-per-request", int64(c.MaxPartitionsPerRequest), 1},
		{"max-non-produce-request-size", c.MaxNonProduceRequestSize, 64},
		{"message-timestamp-after-max-ms", c.TimestampAfterMaxMs, -1},
		{"message-timestamp-before-max-ms", c.TimestampBeforeMaxMs, -1},
		{"producer-id-expiration-ms", c.ProducerIDExpiration.Milliseconds(), 1},
		{"max-producer-states", int64(c.MaxProducerStates), 1},
		{"max-waiting-fetches", c.MaxWaitingFetches, 0},
		{"max-groups", int64(c.MaxGroups), 1},
		{"group-max-members", int64(c.GroupMaxMembers), 1},
		{"group-max-member-metadata-bytes", c.GroupMaxMemberMetadataBytes, 1},
		{"group-max-metadata-bytes", c.GroupMaxMetadataBytes, 1},
		{"groups-max-metadata-bytes", c.GroupsMaxMetadataBytes, 1},
		{"group-min-session-timeout-ms", c.GroupMinSessionTimeout.Milliseconds(), 1},
		{"group-max-session-timeout-ms", c.GroupMaxSessionTimeout.Milliseconds(), c.GroupMinSessionTimeout.Milliseconds()},
		{"offset-metadata-max-bytes", int64(c.OffsetMetadataMaxBytes), 1},
		{"group-max-offsets", int64(c.GroupMaxOffsets), 1},
		{"offsets-max-bytes", c.OffsetsMaxBytes, 1},
		{"group-max-response-bytes", c.GroupMaxResponseBytes, 1},
	}
	for _, ch := range checks {
		if ch.v < ch.min {
			return fmt.Errorf("--%s=%d: must be at least %d", ch.flag, ch.v, ch.min)
		}
	}
	if c.MaxOpenSegmentFiles > 0 && c.MaxOpenSegmentFiles < MinSegmentFiles {
		return fmt.Errorf("--max-open-segment-files=%d: must be 0 (sized from the open-files limit) or at least %d", c.MaxOpenSegmentFiles, MinSegmentFiles)
	}
	if c.MaxPartitionsPerTopic > 1<<20 {
		return fmt.Errorf("--max-partitions-per-topic=%d: must be at most %d", c.MaxPartitionsPerTopic, 1<<20)
	}
	if c.MinSegmentBytes > 1<<31-1 {
		return fmt.Errorf("--min-segment-bytes=%d: must be at most %d", c.MinSegmentBytes, 1<<31-1)
	}
	if c.MemoryPerIPPercent > 100 {
		return fmt.Errorf("--memory-limit-per-ip-percent=%d: must be at most 100", c.MemoryPerIPPercent)
	}
	for flag, v := range map[string]int64{"message-timestamp-after-max-ms": c.TimestampAfterMaxMs, "message-timestamp-before-max-ms": c.TimestampBeforeMaxMs} {
		if v == 0 {
			return fmt.Errorf("--%s=0: must be -1 (off) or at least 1", flag)
		}
	}
	if c.OffsetsRetention >= 0 && c.OffsetsRetention < time.Minute {
		return fmt.Errorf("--offsets-retention-minutes=%d: must be at least 1, or -1 (never)", int64(c.OffsetsRetention/time.Minute))
	}
	if c.MaxRequestSize > MaxFrameSize {
		return fmt.Errorf("--max-request-size=%d: must be at most %d", c.MaxRequestSize, MaxFrameSize)
	}
	return nil
}

// MaxFrameSize is the absolute cap on an announced Kafka frame: a frame
// above it is not discarded byte by byte but answered by closing the
// connection, since no Kafka client sends one.
const MaxFrameSize = 1 << 30

// Value returns the configured value of a limit as it is written on the
// command line.
func (c *Config) Value(flag string) string {
	switch flag {
	case "max-connections":
		return strconv.Itoa(c.MaxConnections)
	case "max-connections-per-ip":
		return strconv.Itoa(c.MaxConnectionsPerIP)
	case "http-connection-reserve":
		return strconv.Itoa(c.HTTPReserve)
	case "connection-idle-timeout":
		return strconv.FormatInt(c.IdleTimeout.Milliseconds(), 10)
	case "max-request-size":
		return strconv.FormatInt(c.MaxRequestSize, 10)
	case "request-read-timeout":
		return strconv.FormatInt(c.RequestReadTimeout.Milliseconds(), 10)
	case "min-request-rate":
		return strconv.FormatInt(c.MinRequestRate, 10)
	case "send-timeout":
		return strconv.FormatInt(c.SendTimeout.Milliseconds(), 10)
	case "memory-limit-per-ip-percent":
		return strconv.Itoa(c.MemoryPerIPPercent)
	case "max-fetch-bytes":
		return strconv.FormatInt(c.MaxFetchBytes, 10)
	case "memory-limit-bytes":
		return strconv.FormatInt(c.MemoryLimitBytes, 10)
	case "max-inflight-requests":
		return strconv.Itoa(c.MaxInflight)
	case "max-queued-requests":
		return strconv.Itoa(c.MaxQueued)
	case "produce-rate-limit":
		return strconv.Itoa(c.ProduceRate)
	case "fetch-rate-limit":
		return strconv.Itoa(c.FetchRate)
	case "max-upstream-connections-per-broker":
		return strconv.Itoa(c.MaxUpstreamPerBroker)
	case "max-open-segment-files":
		return strconv.Itoa(c.MaxOpenSegmentFiles)
	case "max-partitions-per-topic":
		return strconv.Itoa(c.MaxPartitionsPerTopic)
	case "max-partitions":
		return strconv.Itoa(c.MaxPartitions)
	case "max-topics":
		return strconv.Itoa(c.MaxTopics)
	case "max-metadata-topics":
		return strconv.Itoa(c.MaxMetadataTopics)
	case "max-auto-create-topics-per-request":
		return strconv.Itoa(c.MaxAutoCreateTopics)
	case "min-segment-bytes":
		return strconv.FormatInt(c.MinSegmentBytes, 10)
	case "max-partitions-per-request":
		return strconv.Itoa(c.MaxPartitionsPerRequest)
	case "max-non-produce-request-size":
		return strconv.FormatInt(c.MaxNonProduceRequestSize, 10)
	case "message-timestamp-after-max-ms":
		return strconv.FormatInt(c.TimestampAfterMaxMs, 10)
	case "message-timestamp-before-max-ms":
		return strconv.FormatInt(c.TimestampBeforeMaxMs, 10)
	case "producer-id-expiration-ms":
		return strconv.FormatInt(c.ProducerIDExpiration.Milliseconds(), 10)
	case "max-producer-states":
		return strconv.Itoa(c.MaxProducerStates)
	case "max-waiting-fetches":
		return strconv.FormatInt(c.MaxWaitingFetches, 10)
	case "max-groups":
		return strconv.Itoa(c.MaxGroups)
	case "group-max-members":
		return strconv.Itoa(c.GroupMaxMembers)
	case "group-max-member-metadata-bytes":
		return strconv.FormatInt(c.GroupMaxMemberMetadataBytes, 10)
	case "group-max-metadata-bytes":
		return strconv.FormatInt(c.GroupMaxMetadataBytes, 10)
	case "groups-max-metadata-bytes":
		return strconv.FormatInt(c.GroupsMaxMetadataBytes, 10)
	case "group-min-session-timeout-ms":
		return strconv.FormatInt(c.GroupMinSessionTimeout.Milliseconds(), 10)
	case "group-max-session-timeout-ms":
		return strconv.FormatInt(c.GroupMaxSessionTimeout.Milliseconds(), 10)
	case "offsets-retention-minutes":
		if c.OffsetsRetention < 0 {
			return "-1"
		}
		return strconv.FormatInt(int64(c.OffsetsRetention/time.Minute), 10)
	case "offset-metadata-max-bytes":
		return strconv.Itoa(c.OffsetMetadataMaxBytes)
	case "group-max-offsets":
		return strconv.Itoa(c.GroupMaxOffsets)
	case "offsets-max-bytes":
		return strconv.FormatInt(c.OffsetsMaxBytes, 10)
	case "group-max-response-bytes":
		return strconv.FormatInt(c.GroupMaxResponseBytes, 10)
	case "quota-key":
		if c.QuotaKey == QuotaByIP {
			return "ip"
		}
		return "client-id"
	case "throttle-mode":
		if c.ThrottleMode == ThrottleReject {
			return "reject"
		}
		return "delay"
	}
	return ""
}

// MemoryPerIP returns the bytes of the budget one source IP may hold.
func (c *Config) MemoryPerIP() int64 {
	return c.MemoryLimitBytes * int64(c.MemoryPerIPPercent) / 100
}

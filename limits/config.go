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
	MaxFetchBytes        int64
	MemoryLimitBytes     int64
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
		MaxFetchBytes:        52428800,
		MemoryLimitBytes:     1 << 30,
		MaxInflight:          1000,
		MaxQueued:            1000,
		ProduceRate:          10000,
		FetchRate:            1000,
		MaxUpstreamPerBroker: 1000,

		MaxPartitionsPerTopic: 10000,
		MaxPartitions:         20000,
		MaxTopics:             10000,
		MaxMetadataTopics:     10000,
		MaxAutoCreateTopics:   100,
		MinSegmentBytes:       1 << 20,
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

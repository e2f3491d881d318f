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
	// ProduceByteRate and FetchByteRate are Kafka's producer_byte_rate
	// and consumer_byte_rate per client, in bytes/s (0 = off).
	ProduceByteRate int64
	FetchByteRate   int64
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
		QuotaKey:             QuotaByClientIDAndIP,
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
		{"produce-byte-rate", c.ProduceByteRate, 0},
		{"fetch-byte-rate", c.FetchByteRate, 0},
	}
	for _, ch := range checks {
		if ch.v < ch.min {
			return fmt.Errorf("--%s=%d: must be at least %d", ch.flag, ch.v, ch.min)
		}
	}
	if c.MemoryPerIPPercent > 100 {
		return fmt.Errorf("--memory-limit-per-ip-percent=%d: must be at most 100", c.MemoryPerIPPercent)
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
	case "quota-key":
		switch c.QuotaKey {
		case QuotaByIP:
			return "ip"
		case QuotaByClientIDAndIP:
			return "client-id-and-ip"
		}
		return "client-id"
	case "produce-byte-rate":
		return strconv.FormatInt(c.ProduceByteRate, 10)
	case "fetch-byte-rate":
		return strconv.FormatInt(c.FetchByteRate, 10)
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

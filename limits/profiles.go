package limits

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Profile is one --limits-profile preset: the flags it sets, with their
// values as written on the command line. Flags it does not name keep their
// defaults, and a flag given explicitly wins over the profile.
type Profile struct {
	// Name is the --limits-profile value.
	Name string
	// Values are the flags the preset sets, in table order.
	Values []ProfileValue
}

// ProfileValue is one flag of a preset.
type ProfileValue struct {
	Flag  string
	Value string
}

// NoProfile is the --limits-profile value that keeps every default.
const NoProfile = "none"

// Profiles are the presets of the limits document, value for value: its
// "development", "production" and "high-traffic" presets. The document's
// "connections per client" is --max-connections-per-ip, "total
// connections" --max-connections, "per worker" the in-flight requests of
// one event loop, "memory 80%" --max-memory-percent.
var Profiles = []Profile{
	{Name: "development", Values: []ProfileValue{
		{"max-header-size-bytes", "16384"},
		{"max-header-count", "200"},
		{"max-body-size-bytes", "104857600"}, // 100 MiB
		{"max-in-flight-requests", "100000"},
		{"max-requests-per-second-global", "0"}, // no rate limits
		{"max-requests-per-second-per-client", "0"},
		{"max-requests-per-second-per-route", "0"},
	}},
	{Name: "production", Values: []ProfileValue{
		{"max-connections", "5000"},
		{"max-connections-per-ip", "50"},
		{"max-header-size-bytes", "4096"},
		{"max-header-count", "50"},
		{"max-header-name-bytes", "128"},
		{"max-header-value-bytes", "2048"},
		{"max-body-size-bytes", "1048576"},  // 1 MiB
		{"max-body-buffer-bytes", "524288"}, // 512 KiB
		{"max-in-flight-requests", "5000"},
		{"max-requests-per-second-global", "10000"},
		{"max-requests-per-second-per-client", "100"},
		{"max-memory-percent", "80"},
	}},
	{Name: "high-traffic", Values: []ProfileValue{
		{"max-connections", "50000"},
		{"max-connections-per-ip", "200"},
		{"max-header-size-bytes", "8192"},
		{"max-header-count", "100"},
		{"max-body-size-bytes", "10485760"}, // 10 MiB
		{"max-connections-per-route", "5000"},
		{"max-in-flight-requests", "50000"},
		{"max-in-flight-requests-per-worker", "5000"},
		{"max-requests-per-second-global", "100000"},
		{"max-requests-per-second-per-client", "1000"},
	}},
}

// ProfileNamed returns the preset called name; nil for NoProfile (or "").
func ProfileNamed(name string) (*Profile, error) {
	if name == "" || name == NoProfile {
		return nil, nil
	}
	for i := range Profiles {
		if Profiles[i].Name == name {
			return &Profiles[i], nil
		}
	}
	return nil, fmt.Errorf("--limits-profile=%q: want none, development, production or high-traffic", name)
}

// Value returns the value the preset gives flag, if it names it.
func (p *Profile) Value(flag string) (string, bool) {
	if p == nil {
		return "", false
	}
	for _, v := range p.Values {
		if v.Flag == flag {
			return v.Value, true
		}
	}
	return "", false
}

// ApplyProfile sets the preset's values of the Kafka-side limits (Table)
// in c, except for flags explicit reports as given on the command line.
func ApplyProfile(c *Config, name string, explicit func(flag string) bool) error {
	p, err := ProfileNamed(name)
	if err != nil || p == nil {
		return err
	}
	for _, v := range p.Values {
		if explicit(v.Flag) {
			continue
		}
		if l, ok := Lookup(v.Flag); !ok || !l.Field.bound() {
			continue // an HTTP limit: HTTPProfile sets it
		}
		if err := c.SetText(v.Flag, v.Value); err != nil {
			return fmt.Errorf("profile %s: %w", p.Name, err)
		}
	}
	return nil
}

// set sets one HTTP limit from its command-line form; false for a flag
// that is not an HTTP limit.
func (c *HTTPConfig) set(flag, value string) (bool, error) {
	i64 := func() int64 { n, _ := strconv.ParseInt(value, 10, 64); return n }
	switch flag {
	case "max-header-size-bytes":
		c.MaxHeaderBytes = int(i64())
	case "max-header-count":
		c.MaxHeaderCount = int(i64())
	case "max-header-name-bytes":
		c.MaxHeaderNameBytes = int(i64())
	case "max-header-value-bytes":
		c.MaxHeaderValueBytes = int(i64())
	case "max-body-size-bytes":
		c.MaxBodyBytes = i64()
	case "max-body-buffer-bytes":
		c.MaxBodyBufferBytes = i64()
	case "max-decompressed-size-bytes":
		c.MaxDecompressedBytes = i64()
	case "max-connections-per-route":
		c.MaxConnectionsPerRoute = int(i64())
	case "max-in-flight-requests":
		c.MaxInFlight = int(i64())
	case "max-in-flight-requests-per-worker":
		c.MaxInFlightPerWorker = int(i64())
	case "max-requests-per-second-global":
		c.RPSGlobal = int(i64())
	case "max-requests-per-second-per-client":
		c.RPSPerClient = int(i64())
	case "max-requests-per-second-per-route":
		c.RPSPerRoute = int(i64())
	case "max-memory-bytes":
		c.MaxMemoryBytes = i64()
	case "max-rest-response-bytes":
		c.MaxRESTResponseBytes = i64()
	case "max-rest-records-per-request":
		c.MaxRESTRecords = int(i64())
	case "max-rest-consumer-instances":
		c.MaxRESTConsumers = int(i64())
	case "max-rest-consumer-instances-per-client":
		c.MaxRESTConsumersPerClient = int(i64())
	case "max-rest-consumer-buffered-bytes":
		c.MaxRESTConsumerBuffered = i64()
	case "rest-consumer-instance-timeout":
		d, err := time.ParseDuration(value)
		if err != nil {
			return true, fmt.Errorf("--%s=%q: %w", flag, value, err)
		}
		c.RESTConsumerTimeout = d
		return true, nil
	case "max-decompression-ratio", "max-memory-percent":
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return true, fmt.Errorf("--%s=%q: %w", flag, value, err)
		}
		if flag == "max-memory-percent" {
			c.MaxMemoryPercent = f
		} else {
			c.MaxDecompressionRatio = f
		}
		return true, nil
	case "header-read-timeout":
		d, err := time.ParseDuration(value)
		if err != nil {
			return true, fmt.Errorf("--%s=%q: %w", flag, value, err)
		}
		c.HeaderReadTimeout = d
		return true, nil
	default:
		return false, nil
	}
	if _, err := strconv.ParseInt(value, 10, 64); err != nil {
		return true, fmt.Errorf("--%s=%q: %w", flag, value, err)
	}
	return true, nil
}

// SetText sets the HTTP limit flag from its command-line text.
func (c *HTTPConfig) SetText(flag, value string) error {
	ok, err := c.set(flag, value)
	if err == nil && !ok {
		err = fmt.Errorf("--%s: not an HTTP limit", flag)
	}
	return err
}

// ProfilesMarkdown renders the README's table of the presets: one row per
// flag any preset sets, the default and each preset's value (bold where
// the preset sets it).
func ProfilesMarkdown() string {
	var b strings.Builder
	b.WriteString("| flag | none (default) |")
	for _, p := range Profiles {
		b.WriteString(" " + p.Name + " |")
	}
	b.WriteString("\n|---|---|")
	for range Profiles {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, tbl := range [][]Limit{Table, HTTPTable} {
		for _, l := range tbl {
			named := false
			for i := range Profiles {
				if _, ok := Profiles[i].Value(l.Flag); ok {
					named = true
				}
			}
			if !named {
				continue
			}
			fmt.Fprintf(&b, "| `--%s` | %s |", l.Flag, l.Default)
			for i := range Profiles {
				if v, ok := Profiles[i].Value(l.Flag); ok {
					fmt.Fprintf(&b, " **%s** |", v)
				} else {
					fmt.Fprintf(&b, " %s |", l.Default)
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

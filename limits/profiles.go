package limits

import (
	"fmt"
	"strings"
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
// one event loop, "memory 80%" --max-process-memory-percent.
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
		{"max-process-memory-percent", "80"},
	}},
	{Name: "high-traffic", Values: []ProfileValue{
		{"max-connections", "50000"},
		{"max-connections-per-ip", "200"},
		{"max-header-size-bytes", "8192"},
		{"max-header-count", "100"},
		{"max-body-size-bytes", "10485760"}, // 10 MiB
		{"max-connections-per-route", "5000"},
		{"max-in-flight-requests", "50000"},
		{"max-in-flight-requests-per-event-loop", "5000"},
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
	return applyProfile(Table, c, name, explicit)
}

// applyProfile sets the preset's values of table's rows in cfg, except for
// flags explicit reports as given; the preset's other rows belong to the
// other table.
func applyProfile(table []Limit, cfg any, name string, explicit func(flag string) bool) error {
	p, err := ProfileNamed(name)
	if err != nil || p == nil {
		return err
	}
	for _, v := range p.Values {
		l, ok := lookup(table, v.Flag)
		if !ok || explicit(l.Flag) {
			continue
		}
		if err := setText(table, cfg, v.Flag, v.Value); err != nil {
			return fmt.Errorf("profile %s: %w", p.Name, err)
		}
	}
	return nil
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

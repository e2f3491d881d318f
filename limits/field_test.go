package limits

import (
	"strings"
	"testing"
	"time"
)

func TestEveryLimitRowIsBoundAndItsDefaultRoundTrips(t *testing.T) {
	d, h := Defaults(), HTTPDefaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("the HTTP defaults do not validate: %v", err)
	}
	for _, tt := range []struct {
		table []Limit
		value func(string) string
	}{{Table, d.Value}, {HTTPTable, h.Value}} {
		for _, l := range tt.table {
			if !l.Field.bound() {
				t.Errorf("--%s has no field in its config", l.Flag)
				continue
			}
			if got := tt.value(l.Flag); got != l.Default {
				t.Errorf("--%s: the defaults hold %q, the table says %q", l.Flag, got, l.Default)
			}
			if l.Help == "" || l.Category == "" {
				t.Errorf("--%s has no help line or no category", l.Flag)
			}
			if (l.Kind == Duration) != (l.Field.unit != 0) {
				t.Errorf("--%s: Kind Duration and a time field go together", l.Flag)
			}
			if (l.Kind == Float) != (l.Field.getF != nil) || (l.Kind == Enum) != (len(l.Enum) > 0) {
				t.Errorf("--%s: its Kind does not match its field", l.Flag)
			}
		}
	}
}

// TestFlagNamesAreUnique: a name (or alias) in both tables would make one
// of them unreachable from the command line.
func TestFlagNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, tbl := range [][]Limit{Table, HTTPTable} {
		for _, l := range tbl {
			for _, n := range append([]string{l.Flag}, l.Aliases...) {
				if prev, ok := seen[n]; ok {
					t.Errorf("--%s names both --%s and --%s", n, prev, l.Flag)
				}
				seen[n] = l.Flag
			}
		}
	}
}

func TestHTTPDefaultsAreWhatTheServerAssumes(t *testing.T) {
	h := HTTPDefaults()
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"max-header-size-bytes", h.MaxHeaderBytes, 8192},
		{"max-body-size-bytes", h.MaxBodyBytes, int64(10 << 20)},
		{"max-decompression-ratio", h.MaxDecompressionRatio, 100.0},
		{"header-read-timeout", h.HeaderReadTimeout, 10 * time.Second},
		{"max-rest-response-bytes", h.MaxRESTResponseBytes, int64(16 << 20)},
		{"limits-profile", h.Profile, NoProfile},
		{"max-process-memory-percent", h.MaxMemoryPercent, 0.0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestValuesTakeUnitsAndOldNames: sizes and durations are read with their
// units through the one parse path (flags, profiles and config files call
// SetText), a bare number stays in the row's unit, and a former flag name
// still sets its limit.
func TestValuesTakeUnitsAndOldNames(t *testing.T) {
	for _, tt := range []struct {
		flag, text string
		got        func(*Config, *HTTPConfig) any
		want       any
		value      string // the value /admin/stats shows, in the row's unit
	}{
		{"connection-idle-timeout", "10m", func(c *Config, _ *HTTPConfig) any { return c.IdleTimeout }, 10 * time.Minute, "600000"},
		{"connection-idle-timeout", "1500", func(c *Config, _ *HTTPConfig) any { return c.IdleTimeout }, 1500 * time.Millisecond, "1500"},
		{"offsets-retention-minutes", "2h", func(c *Config, _ *HTTPConfig) any { return c.OffsetsRetention }, 2 * time.Hour, "120"},
		{"offsets-retention-minutes", "-1", func(c *Config, _ *HTTPConfig) any { return c.OffsetsRetention }, -time.Minute, "-1"},
		{"message-timestamp-after-max-ms", "1h", func(c *Config, _ *HTTPConfig) any { return c.TimestampAfterMaxMs }, int64(3600000), "3600000"},
		{"max-request-size", "10MiB", func(c *Config, _ *HTTPConfig) any { return c.MaxRequestSize }, int64(10 << 20), "10485760"},
		{"max-request-size", "1.5MiB", func(c *Config, _ *HTTPConfig) any { return c.MaxRequestSize }, int64(3 << 19), "1572864"},
		{"max-fetch-bytes", "1GB", func(c *Config, _ *HTTPConfig) any { return c.MaxFetchBytes }, int64(1e9), "1000000000"},
		{"memory-limit-bytes", "512KiB", func(c *Config, _ *HTTPConfig) any { return c.MemoryLimitBytes }, int64(512 << 10), "524288"},
		{"max-inflight-requests", "7", func(c *Config, _ *HTTPConfig) any { return c.MaxInflight }, 7, "7"},
		{"max-in-flight-requests-per-worker", "9", func(_ *Config, h *HTTPConfig) any { return h.MaxInFlightPerEventLoop }, 9, "9"},
		{"max-memory-bytes", "2GiB", func(_ *Config, h *HTTPConfig) any { return h.MaxMemoryBytes }, int64(2 << 30), "2147483648"},
		{"max-memory-percent", "62.5", func(_ *Config, h *HTTPConfig) any { return h.MaxMemoryPercent }, 62.5, "62.5"},
		{"header-read-timeout", "2s", func(_ *Config, h *HTTPConfig) any { return h.HeaderReadTimeout }, 2 * time.Second, "2000"},
		{"quota-key", "ip", func(c *Config, _ *HTTPConfig) any { return c.QuotaKey }, QuotaByIP, "ip"},
		{"quota-key", "client-id", func(c *Config, _ *HTTPConfig) any { return c.QuotaKey }, QuotaByClientID, "client-id"},
		{"throttle-mode", "reject", func(c *Config, _ *HTTPConfig) any { return c.ThrottleMode }, ThrottleReject, "reject"},
		{"limits-profile", "production", func(_ *Config, h *HTTPConfig) any { return h.Profile }, "production", "production"},
		{"max-body-size-bytes", "500MB", func(_ *Config, h *HTTPConfig) any { return h.MaxBodyBytes }, int64(500e6), "500000000"},
	} {
		t.Run(tt.flag+"="+tt.text, func(t *testing.T) {
			c, h := Defaults(), HTTPDefaults()
			err, value := c.SetText(tt.flag, tt.text), c.Value(tt.flag)
			if _, ok := Lookup(tt.flag); !ok {
				err, value = h.SetText(tt.flag, tt.text), h.Value(tt.flag)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(&c, &h); got != tt.want || value != tt.value {
				t.Fatalf("holds %v (shown %q), want %v (%q)", got, value, tt.want, tt.value)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""}, {"4096", 4096, ""}, {"10MiB", 10 << 20, ""}, {"10mib", 10 << 20, ""}, {"1GB", 1e9, ""},
		{"512KiB", 512 << 10, ""}, {"1.5MiB", 1572864, ""}, {"1.1MB", 1100000, ""}, {" 8 KB ", 8000, ""},
		{"2TiB", 2 << 40, ""}, {"100B", 100, ""}, {"9223372036854775807", 1<<63 - 1, ""},
		{"1.5B", 0, "not a whole number"}, {"0.3KiB", 0, "not a whole number"},
		{"-1", 0, "want bytes"}, {"1e3", 0, "want bytes"}, {"lots", 0, "want bytes"}, {"", 0, "want bytes"},
		{"MiB", 0, "want bytes"}, {"10 PiB", 0, "want bytes"}, {"9000000TiB", 0, "too large"}, {"Inf", 0, "want bytes"},
	} {
		got, err := ParseSize(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error %q", tt.in, got, err, tt.err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		unit time.Duration
		want int64
		err  string
	}{
		{"100", time.Millisecond, 100, ""}, {"10s", time.Millisecond, 10000, ""}, {"10m", time.Millisecond, 600000, ""},
		{"1h", time.Millisecond, 3600000, ""}, {"1.5s", time.Millisecond, 1500, ""}, {"-1", time.Millisecond, -1, ""},
		{"10080", time.Minute, 10080, ""}, {"1h", time.Minute, 60, ""}, {"90s", time.Minute, 0, "not a whole number of minutes"},
		{"1500us", time.Millisecond, 0, "not a whole number of milliseconds"}, {"soon", time.Millisecond, 0, "want a duration"},
		{"", time.Millisecond, 0, "want a duration"},
	} {
		got, err := ParseDuration(tt.in, tt.unit)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseDuration(%q, %s) = %d, %v; want %d", tt.in, tt.unit, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q, %s) = %d, %v; want an error %q", tt.in, tt.unit, got, err, tt.err)
		}
	}
}

func TestHelpShowsDefaultsInReadableUnits(t *testing.T) {
	for flag, want := range map[string]string{
		"max-request-size": "100MiB", "connection-idle-timeout": "10m", "offsets-retention-minutes": "168h",
		"message-timestamp-before-max-ms": "-1", "max-connections": "10000", "min-request-rate": "64KiB",
	} {
		l, _ := Lookup(flag)
		if got := l.DefaultText(); got != want {
			t.Errorf("--%s: default shown as %q, want %q", flag, got, want)
		}
	}
}

func TestDefaultsAreWhatTheServerAssumes(t *testing.T) {
	d := Defaults()
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"max-connections", d.MaxConnections, 10000},
		{"connection-idle-timeout", d.IdleTimeout, 600 * time.Second},
		{"memory-limit-bytes", d.MemoryLimitBytes, int64(1 << 30)},
		{"offsets-retention-minutes", d.OffsetsRetention, 7 * 24 * time.Hour},
		{"quota-key", d.QuotaKey, QuotaByClientIDAndIP},
		{"throttle-mode", d.ThrottleMode, ThrottleDelay},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestValidationComesFromTheRows(t *testing.T) {
	for _, tt := range []struct {
		flag, value, want string
	}{
		{"max-connections", "0", "--max-connections=0: must be at least 1"},
		{"memory-limit-per-ip-percent", "101", "must be at most 100"},
		{"max-request-size", "2147483647", "must be at most 1073741824"},
		{"message-timestamp-after-max-ms", "0", "or -1 (off)"},
		{"offsets-retention-minutes", "-1", ""},
		{"group-max-session-timeout-ms", "1000", "must be at least --group-min-session-timeout-ms"},
		{"quota-key", "nobody", `--quota-key="nobody"`},
		{"max-connections", "lots", `--max-connections="lots": want a whole number`},
		{"max-request-size", "1.5B", "not a whole number of bytes"},
		{"gateway-splice-pipes", "4097", "--gateway-splice-pipes=4097: must be at most 4096"},
		{"gateway-splice-pipes", "-1", "must be at least 0"},
		{"gateway-splice-pipes", "0", ""},
	} {
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			c := Defaults()
			err := c.SetText(tt.flag, tt.value)
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.want == "" && c.Value(tt.flag) != tt.value {
				t.Fatalf("value %q after setting %q", c.Value(tt.flag), tt.value)
			}
		})
	}
}

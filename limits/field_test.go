package limits

import (
	"strings"
	"testing"
	"time"
)

func TestEveryLimitRowIsBoundAndItsDefaultRoundTrips(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	for _, l := range Table {
		if !l.Field.bound() {
			t.Errorf("--%s has no field in Config", l.Flag)
			continue
		}
		if got := d.Value(l.Flag); got != l.Default {
			t.Errorf("--%s: Defaults() holds %q, the table says %q", l.Flag, got, l.Default)
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

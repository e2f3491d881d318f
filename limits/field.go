package limits

import (
	"fmt"
	"strconv"
	"time"
)

// Field binds a row of Table to its value in a Config, so that defaults,
// validation, the value /admin/stats shows and the value read from a flag
// all come from the row instead of a hand-kept list per use.
type Field struct {
	// get and set read and write the value in the flag's unit (Int rows).
	get func(*Config) int64
	set func(*Config, int64)
	// parse and format read and write an Enum row's word.
	parse  func(*Config, string) error
	format func(*Config) string
}

// IntOf binds an int field.
func IntOf(p func(*Config) *int) Field {
	return Field{get: func(c *Config) int64 { return int64(*p(c)) }, set: func(c *Config, v int64) { *p(c) = int(v) }}
}

// Int64Of binds an int64 field.
func Int64Of(p func(*Config) *int64) Field {
	return Field{get: func(c *Config) int64 { return *p(c) }, set: func(c *Config, v int64) { *p(c) = v }}
}

// DurationOf binds a duration field whose flag counts units (time.Millisecond
// for an ms flag, time.Minute for a minutes flag).
func DurationOf(p func(*Config) *time.Duration, unit time.Duration) Field {
	return Field{get: func(c *Config) int64 { return int64(*p(c) / unit) }, set: func(c *Config, v int64) { *p(c) = time.Duration(v) * unit }}
}

// EnumOf binds an Enum row to a field through its parse and format.
func EnumOf(parse func(*Config, string) error, format func(*Config) string) Field {
	return Field{parse: parse, format: format}
}

// bound reports whether the row has a field in Config.
func (f Field) bound() bool { return f.get != nil || f.parse != nil }

// SetInt sets the Int limit flag to v (in the flag's unit).
func (c *Config) SetInt(flag string, v int64) error {
	l, ok := Lookup(flag)
	if !ok || l.Field.set == nil {
		return fmt.Errorf("--%s: not an integer limit", flag)
	}
	l.Field.set(c, v)
	return nil
}

// SetText sets limit flag from its command-line text.
func (c *Config) SetText(flag, text string) error {
	l, ok := Lookup(flag)
	if !ok || !l.Field.bound() {
		return fmt.Errorf("--%s: not a limit", flag)
	}
	if l.Field.parse != nil {
		return l.Field.parse(c, text)
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return fmt.Errorf("--%s=%q: want a whole number (%s)", flag, text, l.Unit)
	}
	l.Field.set(c, v)
	return nil
}

// Defaults returns the configuration of the table's defaults.
func Defaults() Config {
	var c Config
	for _, l := range Table {
		if !l.Field.bound() {
			continue
		}
		if err := c.SetText(l.Flag, l.Default); err != nil {
			panic(fmt.Sprintf("limits.Table: default of --%s: %v", l.Flag, err)) // a table bug, caught by any test
		}
	}
	return c
}

// Validate reports the first value no server could run with, naming its flag.
func (c *Config) Validate() error {
	for _, l := range Table {
		if l.Field.get == nil {
			continue
		}
		v := l.Field.get(c)
		if l.OffValue != nil && v == *l.OffValue {
			continue
		}
		if v < l.Min {
			if l.OffValue != nil {
				return fmt.Errorf("--%s=%d: must be at least %d, or %d (off)", l.Flag, v, l.Min, *l.OffValue)
			}
			return fmt.Errorf("--%s=%d: must be at least %d", l.Flag, v, l.Min)
		}
		if l.Max != 0 && v > l.Max {
			return fmt.Errorf("--%s=%d: must be at most %d", l.Flag, v, l.Max)
		}
	}
	if c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		return fmt.Errorf("--group-max-session-timeout-ms=%d: must be at least --group-min-session-timeout-ms (%d)",
			c.GroupMaxSessionTimeout.Milliseconds(), c.GroupMinSessionTimeout.Milliseconds())
	}
	return nil
}

// Value returns the configured value of a limit as it is written on the
// command line.
func (c *Config) Value(flag string) string {
	l, ok := Lookup(flag)
	switch {
	case !ok:
		return ""
	case l.Field.format != nil:
		return l.Field.format(c)
	case l.Field.get != nil:
		return strconv.FormatInt(l.Field.get(c), 10)
	}
	return ""
}

// off is the value that turns a limit off (an OffValue).
func off(v int64) *int64 { return &v }

package limits

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Field binds a row of a limits table (Table, HTTPTable) to its value in a
// configuration struct (Config, HTTPConfig), so that defaults, validation,
// the value /admin/stats shows and the value read from a flag, a profile or
// a config file all come from the row instead of a hand-kept list per use.
// The constructors are generic over the struct; a Field applied to a struct
// of another type panics, which TestEveryLimitRowIsBoundAndItsDefaultRoundTrips
// would catch for any row.
type Field struct {
	// get and set read and write an Int, Size or Duration row's value in
	// the flag's unit.
	get func(any) int64
	set func(any, int64)
	// getF and setF read and write a Float row's value.
	getF func(any) float64
	setF func(any, float64)
	// parse and format read and write a word (an Enum row bound to a
	// string).
	parse  func(any, string) error
	format func(any) string
	// unit is what one of a Duration row's bare numbers counts.
	unit time.Duration
}

// IntOf binds an int field (a count or a size).
func IntOf[C any](p func(*C) *int) Field {
	return Field{get: func(c any) int64 { return int64(*p(c.(*C))) }, set: func(c any, v int64) { *p(c.(*C)) = int(v) }}
}

// Int64Of binds an int64 field (a count or a size).
func Int64Of[C any](p func(*C) *int64) Field {
	return Field{get: func(c any) int64 { return *p(c.(*C)) }, set: func(c any, v int64) { *p(c.(*C)) = v }}
}

// MillisOf binds an int64 field that counts milliseconds (a Duration row).
func MillisOf[C any](p func(*C) *int64) Field {
	f := Int64Of(p)
	f.unit = time.Millisecond
	return f
}

// DurationOf binds a duration field whose bare numbers count unit
// (time.Millisecond for an ms flag, time.Minute for a minutes flag).
func DurationOf[C any](p func(*C) *time.Duration, unit time.Duration) Field {
	return Field{
		get:  func(c any) int64 { return int64(*p(c.(*C)) / unit) },
		set:  func(c any, v int64) { *p(c.(*C)) = time.Duration(v) * unit },
		unit: unit,
	}
}

// FloatOf binds a float64 field (a ratio or a percentage).
func FloatOf[C any](p func(*C) *float64) Field {
	return Field{getF: func(c any) float64 { return *p(c.(*C)) }, setF: func(c any, v float64) { *p(c.(*C)) = v }}
}

// IndexOf binds an Enum row to a field of a small integer type whose
// values are the indexes of the row's words (Limit.Enum).
func IndexOf[C any, T ~uint8](p func(*C) *T) Field {
	return Field{get: func(c any) int64 { return int64(*p(c.(*C))) }, set: func(c any, v int64) { *p(c.(*C)) = T(v) }}
}

// WordOf binds an Enum row to a string field holding the word itself.
func WordOf[C any](p func(*C) *string) Field {
	return Field{parse: func(c any, s string) error { *p(c.(*C)) = s; return nil }, format: func(c any) string { return *p(c.(*C)) }}
}

// bound reports whether the row has a field in its struct.
func (f Field) bound() bool { return f.get != nil || f.getF != nil || f.parse != nil }

// lookup returns the row of table called flag or one of its aliases.
func lookup(table []Limit, flag string) (*Limit, bool) {
	for i := range table {
		l := &table[i]
		if l.Flag == flag {
			return l, true
		}
		for _, a := range l.Aliases {
			if a == flag {
				return l, true
			}
		}
	}
	return nil, false
}

// parse reads text as the row's value in its unit: a whole number (Int), a
// size (Size: 10MiB, 1.5GB, or bare bytes), a duration (Duration: 10s,
// 10m, 1h, or a bare number in the row's unit) or a decimal (Float). Enum
// rows parse through their field. It returns the value as int64 (Int, Size,
// Duration) or float64 (Float).
func (l *Limit) parse(text string) (int64, float64, error) {
	text = strings.TrimSpace(text)
	var (
		n   int64
		f   float64
		err error
	)
	switch l.Kind {
	case Size:
		if l.OffValue != nil && strings.TrimSpace(text) == strconv.FormatInt(*l.OffValue, 10) {
			n = *l.OffValue // a size whose off value is negative (-1)
			break
		}
		n, err = ParseSize(text)
	case Duration:
		n, err = ParseDuration(text, l.Field.unit)
	case Float:
		f, err = strconv.ParseFloat(text, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = fmt.Errorf("not a finite number")
		}
	default:
		n, err = strconv.ParseInt(text, 10, 64)
		if err != nil {
			err = fmt.Errorf("want a whole number")
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("--%s=%q: %w (%s)", l.Flag, text, err, l.Unit)
	}
	return n, f, nil
}

// setText sets the limit flag (or an alias) of table in cfg from its text.
func setText(table []Limit, cfg any, flag, text string) error {
	l, ok := lookup(table, flag)
	if !ok || !l.Field.bound() {
		return fmt.Errorf("--%s: not a limit", flag)
	}
	if l.Kind == Enum {
		return l.setWord(cfg, strings.TrimSpace(text))
	}
	n, f, err := l.parse(text)
	if err != nil {
		return err
	}
	if l.Field.setF != nil {
		l.Field.setF(cfg, f)
	} else {
		l.Field.set(cfg, n)
	}
	return nil
}

// setWord sets an Enum row to one of its words.
func (l *Limit) setWord(cfg any, word string) error {
	for i, w := range l.Enum {
		if w != word {
			continue
		}
		if l.Field.parse != nil {
			return l.Field.parse(cfg, word)
		}
		l.Field.set(cfg, int64(i))
		return nil
	}
	return fmt.Errorf("--%s=%q: want %s", l.Flag, word, strings.Join(l.Enum, ", "))
}

// value returns the configured value of flag as written on the command
// line, in the row's unit; "" for a flag that is not in table.
func value(table []Limit, cfg any, flag string) string {
	l, ok := lookup(table, flag)
	switch {
	case !ok:
		return ""
	case l.Field.format != nil:
		return l.Field.format(cfg)
	case l.Kind == Enum:
		if i := l.Field.get(cfg); i >= 0 && i < int64(len(l.Enum)) {
			return l.Enum[i]
		}
		return ""
	case l.Field.getF != nil:
		return strconv.FormatFloat(l.Field.getF(cfg), 'g', -1, 64)
	case l.Field.get != nil:
		return strconv.FormatInt(l.Field.get(cfg), 10)
	}
	return ""
}

// setDefaults sets every row of table to its default in cfg.
func setDefaults(table []Limit, cfg any) {
	for _, l := range table {
		if !l.Field.bound() {
			continue
		}
		if err := setText(table, cfg, l.Flag, l.Default); err != nil {
			panic(fmt.Sprintf("limits table: default of --%s: %v", l.Flag, err)) // a table bug, caught by any test
		}
	}
}

// validate reports the first value in cfg outside its row's bounds.
func validate(table []Limit, cfg any) error {
	for _, l := range table {
		var v float64
		switch {
		case l.Kind == Enum:
			continue
		case l.Field.get != nil:
			n := l.Field.get(cfg)
			if l.OffValue != nil && n == *l.OffValue {
				continue
			}
			v = float64(n)
		case l.Field.getF != nil:
			v = l.Field.getF(cfg)
		default:
			continue
		}
		if v < float64(l.Min) {
			if l.OffValue != nil {
				return fmt.Errorf("--%s=%g: must be at least %d, or %d (off)", l.Flag, v, l.Min, *l.OffValue)
			}
			return fmt.Errorf("--%s=%g: must be at least %d", l.Flag, v, l.Min)
		}
		if l.Max != 0 && v > float64(l.Max) {
			return fmt.Errorf("--%s=%g: must be at most %d", l.Flag, v, l.Max)
		}
	}
	return nil
}

// off is the value that turns a limit off (an OffValue).
func off(v int64) *int64 { return &v }

// sizeUnits are the suffixes ParseSize accepts, longest first so that
// "MiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseSize parses a byte count: a bare number of bytes, or a number
// (decimals allowed) with a unit: B, KB, MB, GB, TB (powers of 1000) or
// KiB, MiB, GiB, TiB (powers of 1024), in any letter case. The result must
// be a whole number of bytes (1.5MiB is 1572864, 1.5B is refused); it is
// computed exactly, without floating point.
func ParseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, m := range sizeUnits {
		if strings.HasSuffix(u, m.suffix) {
			u, mult = strings.TrimSpace(u[:len(u)-len(m.suffix)]), m.mult
			break
		}
	}
	whole, frac, _ := strings.Cut(u, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KB, MB, GB, KiB, MiB or GiB", s)
	}
	r, ok := new(big.Rat).SetString(u)
	if !ok {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KB, MB, GB, KiB, MiB or GiB", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return r.Num().Int64(), nil
}

// ParseDuration parses a time as a count of unit: a bare whole number
// counts unit (so a Kafka-style -ms flag keeps taking milliseconds), a Go
// duration (10s, 1.5m, 1h) is converted and must be a whole number of
// unit. A negative bare number is kept as written (-1 turns some limits
// off).
func ParseDuration(s string, unit time.Duration) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 10s, 10m or 1h, or a whole number of %s", unitName(unit))
	}
	if d%unit != 0 {
		return 0, fmt.Errorf("%s is not a whole number of %s", d, unitName(unit))
	}
	return int64(d / unit), nil
}

// unitName names a Duration row's unit in messages.
func unitName(unit time.Duration) string {
	switch unit {
	case time.Millisecond:
		return "milliseconds"
	case time.Second:
		return "seconds"
	case time.Minute:
		return "minutes"
	}
	return unit.String()
}

// FormatSize writes bytes in the largest binary unit that divides them
// exactly (16MiB, 512KiB), else as bare bytes, for --help.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// FormatDuration writes d without zero parts (10m, 1h30m, 168h, 100ms),
// for --help.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// DefaultText is the row's default as --help shows it: sizes in binary
// units, durations as Go durations, off values as written.
func (l *Limit) DefaultText() string {
	n, _, err := l.parse(l.Default)
	switch {
	case err != nil || l.Kind == Float || l.Kind == Enum || (l.OffValue != nil && n == *l.OffValue):
		return l.Default
	case l.Kind == Size:
		return FormatSize(n)
	case l.Kind == Duration:
		return FormatDuration(time.Duration(n) * l.Field.unit)
	}
	return l.Default
}

package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/floodgate/floodgate/limits"
)

// tableFlags builds one flag per row of a limits table (limits.Table,
// limits.HTTPTable): name, aliases, category, the row's short help and
// default. Each is a cli.GenericFlag whose value is parsed by the row, so
// sizes (10MiB) and durations (10s) are read the same way from a flag, a
// profile or a config file.
func tableFlags(table []limits.Limit, check func(flag, text string) error) []cli.Flag {
	out := make([]cli.Flag, 0, len(table))
	for i := range table {
		l := &table[i]
		out = append(out, &cli.GenericFlag{
			Name: l.Flag, Aliases: l.Aliases, Category: l.Category, Usage: l.Help,
			Value: &limitValue{row: l, text: l.Default, check: check}, DefaultText: l.DefaultText(),
		})
	}
	return out
}

// checkKafkaLimit and checkHTTPLimit parse a value of a row of limits.Table
// and limits.HTTPTable into a scratch config, so that a bad value is
// refused where it is set (naming a config file's line, say).
func checkKafkaLimit(flag, text string) error {
	var c limits.Config
	return c.SetText(flag, text)
}

func checkHTTPLimit(flag, text string) error {
	var c limits.HTTPConfig
	return c.SetText(flag, text)
}

// applyTableFlags sets, through set (a config's SetText), every row of
// table given on the command line: what is not given keeps the default or
// the profile's value.
func applyTableFlags(c *cli.Context, table []limits.Limit, set func(flag, text string) error) error {
	for _, l := range table {
		if !c.IsSet(l.Flag) {
			continue
		}
		if err := set(l.Flag, fmt.Sprint(c.Generic(l.Flag))); err != nil {
			return err
		}
	}
	return nil
}

// limitValue is the cli.Generic of one table row: the text as given,
// checked by the row's parser when set, so a bad value is refused with the
// same message from a flag, the environment or a config file (the serve
// command's OnUsageError keeps the library from dumping the usage).
type limitValue struct {
	row   *limits.Limit
	text  string
	check func(flag, text string) error
}

// Set implements cli.Generic.
func (v *limitValue) Set(s string) error {
	if v.check != nil {
		if err := v.check(v.row.Flag, s); err != nil {
			return err
		}
	}
	v.text = s
	return nil
}

// String implements cli.Generic.
func (v *limitValue) String() string { return v.text }

// placeholder names the value in --help.
func (v *limitValue) placeholder() string { return placeholderOf(v.row) }

// placeholderOf names a row's value in --help.
func placeholderOf(l *limits.Limit) string {
	switch l.Kind {
	case limits.Size:
		return "SIZE"
	case limits.Duration:
		return "TIME"
	case limits.Enum:
		if len(l.Unit) <= 16 {
			return l.Unit // the words themselves: delay|reject
		}
		return "WORD"
	}
	return "N"
}

// durationValue is a time flag outside the limits tables: a Go duration,
// or a bare number of unit.
type durationValue struct {
	unit time.Duration
	d    time.Duration
}

// Set implements cli.Generic.
func (v *durationValue) Set(s string) error {
	n, err := limits.ParseDuration(s, v.unit)
	if err != nil {
		return err
	}
	v.d = time.Duration(n) * v.unit
	return nil
}

// String implements cli.Generic.
func (v *durationValue) String() string { return limits.FormatDuration(v.d) }

// placeholder names the value in --help.
func (v *durationValue) placeholder() string { return "TIME" }

// sizeValue is a byte-count flag outside the limits tables: bare bytes or
// a number with a unit (10MiB, 1GB).
type sizeValue struct{ n int64 }

// Set implements cli.Generic.
func (v *sizeValue) Set(s string) error {
	n, err := limits.ParseSize(s)
	if err != nil {
		return err
	}
	v.n = n
	return nil
}

// String implements cli.Generic.
func (v *sizeValue) String() string { return limits.FormatSize(v.n) }

// placeholder names the value in --help.
func (v *sizeValue) placeholder() string { return "SIZE" }

// durationFlag reads a durationValue flag.
func durationFlag(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok {
		return v.d
	}
	return 0
}

// sizeFlag reads a sizeValue flag.
func sizeFlag(c *cli.Context, name string) int64 {
	if v, ok := c.Generic(name).(*sizeValue); ok {
		return v.n
	}
	return 0
}

package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// helpLine is floodgate's cli.FlagStringer: one line per flag, "--name
// PLACEHOLDER<tab>usage (default: X)", short enough for a terminal; the
// aliases, when a flag has any, on a second line under the usage. (The
// library's own puts every alias with its placeholder before the usage, so
// one renamed flag widened its whole category past 100 characters.)
func helpLine(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	placeholder, usage := unquoteUsage(df.GetUsage())
	if g, ok := f.(*cli.GenericFlag); ok {
		if p, ok := g.Value.(interface{ placeholder() string }); ok {
			placeholder = p.placeholder()
		}
	}
	if placeholder == "" {
		placeholder = "VALUE"
	}
	names := df.Names()
	var head strings.Builder
	head.WriteString(dashed(names[0]))
	var aliases []string
	for _, a := range names[1:] {
		if len(a) == 1 {
			head.WriteString(", " + dashed(a)) // -h: short enough to stay on the line
		} else {
			aliases = append(aliases, dashed(a))
		}
	}
	if df.TakesValue() {
		head.WriteString(" " + placeholder)
	}
	line := head.String() + "\t" + usage + defaultText(f, df)
	if len(aliases) > 0 {
		// The template indents every flag line by three spaces; the tab
		// puts the aliases in the usage column of the same block.
		line += "\n   \talias " + strings.Join(aliases, ", ")
	}
	return line
}

// defaultText is " (default: X)" for a flag whose default says something.
func defaultText(f cli.Flag, df cli.DocGenerationFlag) string {
	d := df.GetDefaultText()
	if b, ok := f.(*cli.BoolFlag); ok && !b.Value {
		d = "" // a switch that is off by default
	}
	if d == "" || d == `""` {
		return ""
	}
	return " (default: " + strings.Trim(d, `"`) + ")"
}

// dashed writes a flag name as typed: -h, --name.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// unquoteUsage takes the first `word` of usage as the value's placeholder,
// as the library does: "`ADDR` of the listener" shows --x ADDR and reads
// "ADDR of the listener".
func unquoteUsage(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+1+j+1:]
}

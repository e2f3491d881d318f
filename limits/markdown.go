package limits

import (
	"fmt"
	"strings"
)

// MarkdownRows renders rows of the README's tuning table, one per limit.
func MarkdownRows(table []Limit) string {
	var b strings.Builder
	for _, l := range table {
		flag := "`--" + l.Flag + "`"
		for _, a := range l.Aliases {
			flag += " (alias `--" + a + "`)"
		}
		metric := l.Metric
		if metric != "-" {
			metric = "`" + metric + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", flag, l.Default, l.Unit, l.Protects, l.Answer, metric)
	}
	return b.String()
}

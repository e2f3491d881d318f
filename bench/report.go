package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Progress prints a one-line status, rewritten in place, at most every
// interval while a run goes on. A nil *Progress prints nothing.
type Progress struct {
	w        io.Writer
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	width    int
}

// NewProgress returns a progress printer to w (nil for none).
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		return nil
	}
	return &Progress{w: w, interval: 500 * time.Millisecond}
}

// Update prints the line if the interval has passed since the last one.
func (p *Progress) Update(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < p.interval {
		return
	}
	p.last = time.Now()
	p.print(fmt.Sprintf(format, args...))
}

func (p *Progress) print(s string) {
	pad := ""
	if n := p.width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(s)
	fmt.Fprintf(p.w, "\r%s%s", s, pad)
}

// every runs report every interval until stop is closed: the progress
// ticker of a run, started with go.
func every(stop <-chan struct{}, interval time.Duration, report func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			report()
		}
	}
}

// Done ends the progress line.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.width)+"\r")
	}
	p.width = 0
}

// Table is a plain-text or Markdown table.
type Table struct {
	Header []string
	Rows   [][]string
}

// Add appends a row; values are formatted with fmt's %v except float64,
// which is printed with up to 3 significant decimals.
func (t *Table) Add(vals ...any) {
	row := make([]string, len(vals))
	for i, v := range vals {
		row[i] = Cell(v)
	}
	t.Rows = append(t.Rows, row)
}

// Cell formats one table value.
func Cell(v any) string {
	switch x := v.(type) {
	case float64:
		return FormatFloat(x)
	case time.Duration:
		return FormatFloat(ms(x)) + " ms"
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// FormatFloat prints f compactly: thousands as integers with separators,
// small values with up to three decimals.
func FormatFloat(f float64) string {
	a := f
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1000:
		return thousands(int64(f + 0.5*sign(f)))
	case a >= 100:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case a == 0:
		return "0"
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Fprint writes the table aligned in columns.
func (t *Table) Fprint(w io.Writer) {
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = len(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(width) && len(c) > width[i] {
				width[i] = len(c)
			}
		}
	}
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(w, "  ")
			}
			if i < len(width) {
				fmt.Fprintf(w, "%-*s", width[i], c)
			}
		}
		fmt.Fprintln(w)
	}
	line(t.Header)
	sep := make([]string, len(t.Header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
}

// Markdown returns the table as GitHub Markdown.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.Header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(t.Header)) + "\n")
	for _, r := range t.Rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// Output is where a command writes its result.
type Output struct {
	// Stdout receives the table or JSON.
	Stdout io.Writer
	// JSON selects JSON instead of a table.
	JSON bool
	// Plot, when set, is the path of a chart (.svg or .png) to write.
	Plot string
}

// Emit writes the result as JSON or as its table.
func (o Output) Emit(result any, table *Table) error {
	w := o.Stdout
	if w == nil {
		w = os.Stdout
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(result); err != nil {
			return fmt.Errorf("encode JSON result: %w", err)
		}
		return nil
	}
	table.Fprint(w)
	return nil
}

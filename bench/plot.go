package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Series is one named line (X, Y pairs) or one group of bars (Y per
// category) of a chart.
type Series struct {
	Name string    `json:"name"`
	X    []float64 `json:"x,omitempty"`
	Y    []float64 `json:"y"`
}

// Chart is a line chart (Categories empty) or a grouped bar chart. It is
// data only: package bench/chart draws it, so that the server binary,
// which embeds these tools as `floodgate bench`, does not link a plotting
// stack.
type Chart struct {
	Title  string `json:"title"`
	XLabel string `json:"x_label"`
	YLabel string `json:"y_label"`
	// LogX and LogY select logarithmic axes (line charts only).
	LogX bool `json:"log_x,omitempty"`
	LogY bool `json:"log_y,omitempty"`
	// Categories, when set, makes a grouped bar chart: Series[i].Y[j] is
	// the bar of series i in category j.
	Categories []string `json:"categories,omitempty"`
	Series     []Series `json:"series"`
}

// Save writes the chart's data as JSON to path (a .json file). Draw it
// with the benchmark suite: `go run ./bench/suite chart IN.json OUT.png`.
func (c Chart) Save(path string) error {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".json" {
		return fmt.Errorf("--plot %q: floodgate writes chart data as .json; draw it with `go run ./bench/suite chart %s OUT.png`", path, path)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode chart %q: %w", c.Title, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write chart data %s: %w", path, err)
	}
	return nil
}

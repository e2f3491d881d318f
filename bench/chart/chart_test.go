package chart

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/floodgate/floodgate/bench"
)

func TestDraw(t *testing.T) {
	dir := t.TempDir()
	line := bench.Chart{Title: "t", XLabel: "x", YLabel: "y", LogY: true, Series: []bench.Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1, 10}}, {Name: "b", X: []float64{1, 2}, Y: []float64{0, 3}}}}
	bars := bench.Chart{Title: "b", Categories: []string{"p50", "p99"}, Series: []bench.Series{{Name: "a", Y: []float64{1, 2}}, {Name: "b", Y: []float64{2, 3}}}}
	for _, tt := range []struct {
		name    string
		c       bench.Chart
		file    string
		wantErr bool
	}{
		{"svg line", line, "a.svg", false}, {"png bars", bars, "b.png", false}, {"bad ext", line, "c.txt", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.file)
			err := Draw(tt.c, p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Draw: %v", err)
			}
			if !tt.wantErr {
				if st, err := os.Stat(p); err != nil || st.Size() == 0 {
					t.Fatalf("chart not written: %v", err)
				}
			}
		})
	}
}

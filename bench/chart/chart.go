// Package chart draws the benchmark charts (bench.Chart) with gonum/plot.
// It is linked by the benchmark suite only, never by the server binary.
package chart

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/floodgate/floodgate/bench"
)

var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, // floodgate first: blue
	color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff},
	color.RGBA{0x8c, 0x56, 0x4b, 0xff},
}

// Draw writes c to path; the extension (.svg, .png, .pdf) selects the
// format.
func Draw(c bench.Chart, path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".svg" && ext != ".png" && ext != ".pdf" {
		return fmt.Errorf("chart %q: want a .svg, .png or .pdf file", path)
	}
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	if len(c.Categories) > 0 {
		if err := bars(c, p); err != nil {
			return err
		}
	} else {
		if c.LogX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		if c.LogY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		for i, s := range c.Series {
			xys := make(plotter.XYs, 0, len(s.Y))
			for j := range s.Y {
				if j >= len(s.X) {
					break
				}
				if (c.LogX && s.X[j] <= 0) || (c.LogY && s.Y[j] <= 0) {
					continue
				}
				xys = append(xys, plotter.XY{X: s.X[j], Y: s.Y[j]})
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("chart %q series %q: %w", c.Title, s.Name, err)
			}
			col := palette[i%len(palette)]
			l.Color, pts.Color = col, col
			l.Width = vg.Points(1.5)
			pts.Shape = plotutil.Shape(i)
			p.Add(l, pts)
			p.Legend.Add(s.Name, l, pts)
		}
	}
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("write chart %s: %w", path, err)
	}
	return nil
}

func bars(c bench.Chart, p *plot.Plot) error {
	n := len(c.Series)
	w := vg.Points(60 / float64(max(n, 1)))
	for i, s := range c.Series {
		vals := make(plotter.Values, len(c.Categories))
		for j := range vals {
			if j < len(s.Y) {
				vals[j] = s.Y[j]
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("chart %q series %q: %w", c.Title, s.Name, err)
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(b)
		p.Legend.Add(s.Name, b)
	}
	p.NominalX(c.Categories...)
	return nil
}

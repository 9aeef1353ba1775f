package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot colours: one per series, and red for level changes.
var (
	colP50   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colP99   = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colWS    = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colSSE   = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colPoll  = color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}
	colLevel = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

const plotW, plotH = 9 * vg.Inch, 4 * vg.Inch

// writePlots draws a run's timeline into dir and returns the file names:
// latency p50/p99, deliveries/s, memory, CPU, and level and tier mix, each
// with the level changes as dashed vertical lines.
func writePlots(dir string, r *RunResult) ([]string, error) {
	if len(r.Timeline) < 2 {
		return nil, nil
	}
	prefix := fmt.Sprintf("%s-%d", r.Workload, r.Users)
	var files []string
	add := func(name string, err error) error {
		if err == nil {
			files = append(files, name)
		}
		return err
	}
	ts := r.Timeline
	col := func(f func(Sample) float64) plotter.XYs {
		xy := make(plotter.XYs, len(ts))
		for i, s := range ts {
			xy[i].X, xy[i].Y = s.T, f(s)
		}
		return xy
	}
	name := prefix + "-latency.png"
	err := add(name, savePlot(filepath.Join(dir, name), r, "Delivery latency per interval", "ms", []series{
		{"p50", colP50, col(func(s Sample) float64 { return s.P50MS })},
		{"p99", colP99, col(func(s Sample) float64 { return s.P99MS })},
	}))
	if err != nil {
		return files, err
	}
	name = prefix + "-throughput.png"
	if err := add(name, savePlot(filepath.Join(dir, name), r, "Deliveries per second", "deliveries/s", []series{
		{"deliveries/s", colP50, col(func(s Sample) float64 { return s.DeliveriesPerSec })},
	})); err != nil {
		return files, err
	}
	name = prefix + "-memory.png"
	if err := add(name, savePlot(filepath.Join(dir, name), r, "Memory", "MB", []series{
		{"server RSS", colP50, col(func(s Sample) float64 { return float64(s.ServerRSS) / 1e6 })},
		{"server heap", colP99, col(func(s Sample) float64 { return float64(s.ServerHeap) / 1e6 })},
		{"chatload RSS", colWS, col(func(s Sample) float64 { return float64(s.LoadRSS) / 1e6 })},
	})); err != nil {
		return files, err
	}
	name = prefix + "-cpu.png"
	if err := add(name, savePlot(filepath.Join(dir, name), r, "CPU", "cores busy", []series{
		{"server", colP50, col(func(s Sample) float64 { return s.ServerCPU })},
		{"chatload", colWS, col(func(s Sample) float64 { return s.LoadCPU })},
	})); err != nil {
		return files, err
	}
	name = prefix + "-levels.png"
	return files, add(name, saveLevels(filepath.Join(dir, name), r, col))
}

// series is one line of a plot.
type series struct {
	name string
	col  color.Color
	xy   plotter.XYs
}

// newPlot makes a plot of series against time with the level changes
// marked.
func newPlot(r *RunResult, title, ylabel string, ss []series, step bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s, %d users", title, r.Workload, r.Users)
	p.X.Label.Text = "seconds since the run started"
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	ymax := 1.0
	for _, s := range ss {
		l, err := plotter.NewLine(s.xy)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = s.col, vg.Points(1.5)
		if step {
			l.StepStyle = plotter.PostStep
		}
		p.Add(l)
		p.Legend.Add(s.name, l)
		for _, pt := range s.xy {
			ymax = max(ymax, pt.Y)
		}
	}
	for i, lc := range r.Levels {
		v, err := plotter.NewLine(plotter.XYs{{X: lc.T, Y: 0}, {X: lc.T, Y: ymax}})
		if err != nil {
			return nil, err
		}
		v.Color, v.Dashes, v.Width = colLevel, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1)
		p.Add(v)
		if i == 0 {
			p.Legend.Add("level change", v)
		}
	}
	return p, nil
}

func savePlot(path string, r *RunResult, title, ylabel string, ss []series) error {
	p, err := newPlot(r, title, ylabel, ss, false)
	if err != nil {
		return err
	}
	return p.Save(plotW, plotH, path)
}

// saveLevels draws the level (top) over the tier mix of the tool's
// clients (bottom) in one image.
func saveLevels(path string, r *RunResult, col func(func(Sample) float64) plotter.XYs) error {
	// The level is read with the scrape, which may come late under load:
	// plot it at the scrape's time.
	level := make(plotter.XYs, len(r.Timeline))
	for i, s := range r.Timeline {
		level[i].X, level[i].Y = s.T, float64(s.ClientLevel)
		if s.Level >= 0 {
			level[i].Y = float64(s.Level)
		}
		if s.ServerAt > 0 {
			level[i].X = s.ServerAt
		}
	}
	top, err := newPlot(r, "Degradation level", "level", []series{{"level", colLevel, level}}, true)
	if err != nil {
		return err
	}
	top.Y.Max = 3
	tier := func(t string) plotter.XYs { return col(func(s Sample) float64 { return float64(s.Tiers[t]) }) }
	bottom, err := newPlot(r, "Clients connected per tier", "clients", []series{
		{"websocket", colWS, tier(tierNames[0])}, {"sse", colSSE, tier(tierNames[1])}, {"poll", colPoll, tier(tierNames[2])},
	}, false)
	if err != nil {
		return err
	}
	img := vgimg.New(plotW, 2*plotH)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, draw.New(img))
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

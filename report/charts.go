package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"github.com/distill-ml/distill/eval"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartDPI renders charts at 4/3 of the CSS pixel density, so they stay
// sharp when a browser scales them to the page.
const chartDPI = 128

// curveSeries is one run's values per epoch; NaN where the epoch lacks it.
type curveSeries struct {
	label  string
	dashed bool // the hard-label baseline
	epochs []int
	values []float64
}

// seriesStyle returns the line and point plotters of series i (colour and
// marker by index, baselines dashed) for the data xy.
func seriesStyle(i int, s curveSeries, xy plotter.XYs) (*plotter.Line, *plotter.Scatter, error) {
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return nil, nil, err
	}
	l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
	l.Width = vg.Points(1.5)
	pts.Shape = plotutil.Shape(i)
	if s.dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	return l, pts, nil
}

// curveLegend is the legend of series, for figurePNG.
func curveLegend(series []curveSeries) (plot.Legend, error) {
	lg := plot.NewLegend()
	for i, s := range series {
		l, pts, err := seriesStyle(i, s, plotter.XYs{{}})
		if err != nil {
			return lg, err
		}
		lg.Add(s.label, l, pts)
	}
	return lg, nil
}

// curveChart draws one metric per epoch for every run, a line with points
// each, styled by seriesStyle. It returns nil when no run has a value.
func curveChart(title, ylabel string, series []curveSeries) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	drawn := false
	maxEpoch := 1
	for i, s := range series {
		var xy plotter.XYs
		for j, e := range s.epochs {
			if v := s.values[j]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				xy = append(xy, plotter.XY{X: float64(e), Y: v})
				maxEpoch = max(maxEpoch, e)
			}
		}
		if len(xy) == 0 {
			continue
		}
		drawn = true
		l, pts, err := seriesStyle(i, s, xy)
		if err != nil {
			return nil, err
		}
		p.Add(l, pts)
	}
	if !drawn {
		return nil, nil
	}
	p.X.Tick.Marker = integerTicks{}
	if maxEpoch == 1 {
		p.X.Min, p.X.Max = 0.5, 1.5
	}
	return p, nil
}

// figurePNG draws plots side by side, each w×h, and the legend lg of labels
// (when there are any) in a column to their right, as one PNG, and returns
// it with its width.
func figurePNG(plots []*plot.Plot, w, h vg.Length, lg *plot.Legend, labels []string) ([]byte, vg.Length, error) {
	var lw vg.Length
	if lg != nil && len(labels) > 0 {
		for _, s := range labels {
			lw = max(lw, lg.TextStyle.Width(s))
		}
		lw += lg.ThumbnailWidth + lg.TextStyle.Width("  ") + vg.Points(16)
	}
	W := vg.Length(len(plots))*w + lw
	c := vgimg.NewWith(vgimg.UseWH(W, h), vgimg.UseDPI(chartDPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(c)
	for i, p := range plots {
		left := vg.Length(i) * w
		p.Draw(draw.Crop(dc, left, -(W - left - w), 0, 0))
	}
	if lw > 0 {
		lg.Top, lg.Left = true, true
		lg.YOffs = -vg.Points(24) // below the plots' titles
		lg.Draw(draw.Crop(dc, W-lw+vg.Points(8), 0, 0, 0))
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, 0, fmt.Errorf("report: png: %w", err)
	}
	return buf.Bytes(), W, nil
}

// integerTicks labels whole numbers only, at most about 10 of them.
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []plot.Tick {
	step := math.Max(1, math.Ceil((hi-lo)/10))
	var t []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		t = append(t, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return t
}

// reliabilityChart draws a reliability diagram (Guo et al. 2017, fig. 1):
// for each non-empty confidence bin a bar from its lower to its upper edge
// as high as the accuracy in it, the mean confidence of the bin as a point,
// and the diagonal of perfect calibration.
func reliabilityChart(r *eval.Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: ECE %.4f", r.Name, *r.ECE)
	p.X.Label.Text = "top-1 confidence"
	p.Y.Label.Text = "accuracy (vs " + r.ECEReference + ")"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	fill := color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}
	var bars []plot.Plotter
	var conf plotter.XYs
	for _, b := range r.Reliability {
		if b.Rows == 0 || b.Accuracy == nil {
			continue
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: b.Lo, Y: 0}, {X: b.Lo, Y: *b.Accuracy}, {X: b.Hi, Y: *b.Accuracy}, {X: b.Hi, Y: 0}})
		if err != nil {
			return nil, err
		}
		poly.Color = fill
		poly.LineStyle.Color = color.White
		bars = append(bars, poly)
		conf = append(conf, plotter.XY{X: *b.Confidence, Y: *b.Accuracy})
	}
	p.Add(bars...)
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	diag.Color = color.Gray{Y: 0x60}
	p.Add(diag)
	if len(conf) > 0 {
		pts, err := plotter.NewScatter(conf)
		if err != nil {
			return nil, err
		}
		pts.Color = color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}
		pts.Shape = draw.CircleGlyph{}
		p.Add(pts)
	}
	return p, nil
}

// confusionGrid is a confusion matrix as a heat map grid: column c is the
// prediction, row r the label C−1−r (so label 0 is at the top); the value
// is the row-normalised fraction, the colour of a cell.
type confusionGrid struct {
	counts [][]int64
	frac   [][]float64
}

func newConfusionGrid(counts [][]int64) confusionGrid {
	g := confusionGrid{counts: counts, frac: make([][]float64, len(counts))}
	for y, row := range counts {
		var n int64
		for _, v := range row {
			n += v
		}
		g.frac[y] = make([]float64, len(row))
		for c, v := range row {
			if n > 0 {
				g.frac[y][c] = float64(v) / float64(n)
			}
		}
	}
	return g
}

func (g confusionGrid) Dims() (c, r int)   { return len(g.counts), len(g.counts) }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 { return g.frac[len(g.counts)-1-r][c] }

// blues is a white-to-dark-blue palette of n colours.
type blues int

func (n blues) Colors() []color.Color {
	cs := make([]color.Color, n)
	for i := range cs {
		t := float64(i) / float64(n-1)
		// From white (255,255,255) to (8,48,107), Brewer's darkest blue.
		cs[i] = color.RGBA{R: uint8(255 - t*(255-8)), G: uint8(255 - t*(255-48)), B: uint8(255 - t*(255-107)), A: 255}
	}
	return cs
}

// confusionChart draws the confusion matrix as a heat map coloured by the
// fraction of each label's rows, annotated with the counts when there are
// at most 20 classes.
func confusionChart(r *eval.Result) (*plot.Plot, error) {
	C := len(r.Confusion)
	g := newConfusionGrid(r.Confusion)
	p := plot.New()
	p.Title.Text = r.Name + ": confusion matrix"
	p.X.Label.Text = "prediction"
	p.Y.Label.Text = "label"
	h := plotter.NewHeatMap(g, blues(64))
	h.Min, h.Max = 0, 1
	p.Add(h)
	var xt, yt plot.ConstantTicks
	for i := range C {
		lab := strconv.Itoa(i)
		if C > 20 && i%5 != 0 {
			lab = ""
		}
		xt = append(xt, plot.Tick{Value: float64(i), Label: lab})
		yt = append(yt, plot.Tick{Value: float64(C - 1 - i), Label: lab})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	if C <= 20 {
		var xy plotter.XYLabels
		var styles []text.Style
		base := p.X.Tick.Label // the default text style
		base.XAlign, base.YAlign = draw.XCenter, draw.YCenter
		base.Font.Size = vg.Points(math.Max(5, math.Min(9, 90/float64(C))))
		for y, row := range r.Confusion {
			for c, v := range row {
				if v == 0 {
					continue
				}
				xy.XYs = append(xy.XYs, plotter.XY{X: float64(c), Y: float64(C - 1 - y)})
				xy.Labels = append(xy.Labels, strconv.FormatInt(v, 10))
				st := base
				if g.frac[y][c] > 0.5 {
					st.Color = color.White
				}
				styles = append(styles, st)
			}
		}
		if len(xy.XYs) > 0 {
			l, err := plotter.NewLabels(xy)
			if err != nil {
				return nil, err
			}
			l.TextStyle = styles
			p.Add(l)
		}
	}
	return p, nil
}

// perClassChart draws grouped bars of per-class accuracy, one bar per
// model in each class group. The y axis starts at lo (bars are clipped
// there), given in the caption.
func perClassChart(models []*eval.Result, lo float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "per-class accuracy"
	p.X.Label.Text = "class (label)"
	p.Y.Label.Text = "accuracy"
	p.Add(plotter.NewGrid())
	C := 0
	for _, m := range models {
		C = max(C, len(m.PerClass))
	}
	width := vg.Points(math.Max(2, math.Min(14, 300/float64(C*len(models)))))
	for i, m := range models {
		vals := make(plotter.Values, C)
		for c := range vals {
			if c < len(m.PerClass) && m.PerClass[c].Accuracy != nil {
				vals[c] = *m.PerClass[c].Accuracy
			}
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(i)-float64(len(models)-1)/2) * width
		p.Add(b)
	}
	p.Y.Min, p.Y.Max = lo, 1
	var xt plot.ConstantTicks
	for c := range C {
		lab := strconv.Itoa(c)
		if C > 30 && c%5 != 0 {
			lab = ""
		}
		xt = append(xt, plot.Tick{Value: float64(c), Label: lab})
	}
	p.X.Tick.Marker = xt
	return p, nil
}

// perClassLegend is the legend of perClassChart's bars.
func perClassLegend(models []*eval.Result) (plot.Legend, []string) {
	lg := plot.NewLegend()
	var names []string
	for i, m := range models {
		b, _ := plotter.NewBarChart(plotter.Values{0}, 1)
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		lg.Add(m.Name, b)
		names = append(names, m.Name)
	}
	return lg, names
}

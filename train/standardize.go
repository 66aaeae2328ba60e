package train

import (
	"fmt"
	"math"
)

// Standardize maps the teacher's raw input to zero mean and unit variance
// per feature, so the student takes exactly the input the teacher takes:
//
//	y_i = (x_i − mean_i) / std_i     x, y [n, Size]; mean, std [Size]
//
// Mean and Std are fixed buffers ("input_mean", "input_std" in the
// checkpoint), not trained; export writes them as the graph's first ops
// (Sub, Div). A constant feature has std 1 (see Moments).
type Standardize struct {
	Size      int
	Mean, Std *Param // Grad unused
	rows      int
}

// NewStandardize returns the identity standardization (mean 0, std 1).
func NewStandardize(size int) *Standardize {
	s := &Standardize{Size: size,
		Mean: &Param{Name: "input_mean", Shape: []int{size}},
		Std:  &Param{Name: "input_std", Shape: []int{size}},
	}
	NewParams(s.Mean, s.Std)
	for i := range s.Std.Data {
		s.Std.Data[i] = 1
	}
	return s
}

func (l *Standardize) InSize() int  { return l.Size }
func (l *Standardize) OutSize() int { return l.Size }

// Params returns nil: Mean and Std are not trained.
func (l *Standardize) Params() []*Param { return nil }

// Set copies mean and std in. It fails unless both have Size values and
// every std is finite and > 0.
func (l *Standardize) Set(mean, std []float32) error {
	if len(mean) != l.Size || len(std) != l.Size {
		return fmt.Errorf("train: input standardization has %d means and %d stds, the input has %d values", len(mean), len(std), l.Size)
	}
	for i := range mean {
		if !(std[i] > 0) || math.IsInf(float64(std[i]), 0) || math.IsNaN(float64(mean[i])) || math.IsInf(float64(mean[i]), 0) {
			return fmt.Errorf("train: input standardization of feature %d: mean %v std %v (want finite, std > 0)", i, mean[i], std[i])
		}
	}
	copy(l.Mean.Data, mean)
	copy(l.Std.Data, std)
	return nil
}

// Forward writes dst = (x − mean)/std; dst may be x.
func (l *Standardize) Forward(dst, x Mat) {
	checkShapes("Standardize", dst, x, l.Size, l.Size)
	l.rows = x.Rows
	m, s := l.Mean.Data, l.Std.Data
	for r := range x.Rows {
		xr, yr := x.Row(r), dst.Row(r)
		for j, v := range xr {
			yr[j] = (v - m[j]) / s[j]
		}
	}
}

// Backward writes dx = dy/std; dx may be dy.
func (l *Standardize) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	s := l.Std.Data
	for r := range l.rows {
		d, g := dx.Row(r), dy.Row(r)
		for j, v := range g {
			d[j] = v / s[j]
		}
	}
}

// Moments accumulates per-feature mean and standard deviation over rows
// streamed through Add, in float64 with Chan et al.'s pairwise update
// (each batch's mean and M2, then merged), so one pass suffices.
type Moments struct {
	n        float64
	mean, m2 []float64
	bm, bm2  []float64
}

// NewMoments returns an empty accumulator for size features.
func NewMoments(size int) *Moments {
	return &Moments{mean: make([]float64, size), m2: make([]float64, size), bm: make([]float64, size), bm2: make([]float64, size)}
}

// Add accumulates rows×size values x (row-major).
func (m *Moments) Add(x []float32, rows int) {
	d := len(m.mean)
	if rows == 0 {
		return
	}
	clear(m.bm)
	clear(m.bm2)
	for r := range rows {
		for j, v := range x[r*d : (r+1)*d] {
			m.bm[j] += float64(v)
		}
	}
	nb := float64(rows)
	for j := range m.bm {
		m.bm[j] /= nb
	}
	for r := range rows {
		for j, v := range x[r*d : (r+1)*d] {
			t := float64(v) - m.bm[j]
			m.bm2[j] += t * t
		}
	}
	n := m.n + nb
	for j := range m.mean {
		delta := m.bm[j] - m.mean[j]
		m.mean[j] += delta * nb / n
		m.m2[j] += m.bm2[j] + delta*delta*m.n*nb/n
	}
	m.n = n
}

// Standardization modes (Options.Standardize, --standardize).
const (
	// StandardizeAuto is per channel for inputs with a per-sample shape of
	// rank ≥ 2 (images: [C,H,W]) and per feature otherwise (tabular data).
	StandardizeAuto = "auto"
	// StandardizeFeature gives every input value its own mean and std.
	StandardizeFeature = "feature"
	// StandardizeChannel gives all values of a channel (the first axis of
	// the input shape; the whole input for rank < 2) one mean and std, as
	// torchvision's Normalize does. On MNIST per-feature statistics blow
	// up the rare ink of near-blank border pixels (std ≈ 0.001) to
	// hundreds of standard deviations: 262 test errors for a 784-800-800-10
	// student on hard labels against 234 per channel, and 128 against 97
	// with distillation (10 epochs, same seed).
	StandardizeChannel = "channel"
	// StandardizeNone leaves the input as the teacher takes it (mean 0,
	// std 1).
	StandardizeNone = "none"
)

// ParseStandardize checks a --standardize value; "" means StandardizeAuto.
func ParseStandardize(s string) (string, error) {
	switch s {
	case "", StandardizeAuto:
		return StandardizeAuto, nil
	case StandardizeFeature, StandardizeChannel, StandardizeNone:
		return s, nil
	}
	return "", fmt.Errorf("train: unknown standardization %q (want auto, feature, channel or none)", s)
}

// Result returns the per-feature means and population standard
// deviations (divisor n). A feature whose std is 0, or below
// 1e-6·max(1, |mean|) (float32 noise), gets std 1: it is constant and only
// centered, as sklearn's StandardScaler does.
func (m *Moments) Result() (mean, std []float32) {
	return m.ResultMode(StandardizeFeature, nil)
}

// ResultMode returns the standardization of mode for an input of the
// given per-sample shape (see the Standardize constants), as one mean and
// std per feature. Per channel, a channel's mean is the average of its
// features' means and its variance the average of their second moments
// about it.
func (m *Moments) ResultMode(mode string, shape []int) (mean, std []float32) {
	d := len(m.mean)
	mean, std = make([]float32, d), make([]float32, d)
	if mode == StandardizeAuto {
		mode = StandardizeFeature
		if len(shape) >= 2 {
			mode = StandardizeChannel
		}
	}
	stdOf := func(v, mu float64) float32 {
		s := 0.0
		if m.n > 0 && v > 0 {
			s = math.Sqrt(v)
		}
		if !(s > 1e-6*max(1, math.Abs(mu))) {
			s = 1
		}
		return float32(s)
	}
	switch mode {
	case StandardizeNone:
		for j := range std {
			std[j] = 1
		}
	case StandardizeChannel:
		channels := 1
		if len(shape) >= 2 && shape[0] > 0 && d%shape[0] == 0 {
			channels = shape[0]
		}
		per := d / channels
		for c := range channels {
			f := m.mean[c*per : (c+1)*per]
			var mu, v float64
			for _, x := range f {
				mu += x
			}
			mu /= float64(per)
			for j, x := range f {
				v += m.m2[c*per+j]/max(m.n, 1) + (x-mu)*(x-mu)
			}
			s := stdOf(v/float64(per), mu)
			for j := c * per; j < (c+1)*per; j++ {
				mean[j], std[j] = float32(mu), s
			}
		}
	default:
		for j := range m.mean {
			mean[j] = float32(m.mean[j])
			std[j] = stdOf(m.m2[j]/max(m.n, 1), m.mean[j])
		}
	}
	return mean, std
}

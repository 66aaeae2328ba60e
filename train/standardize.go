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

// Result returns the means and the population standard deviations
// (divisor n). A feature whose std is 0, or below 1e-6·max(1, |mean|)
// (float32 noise), gets std 1: it is constant and only centered, as
// sklearn's StandardScaler does.
func (m *Moments) Result() (mean, std []float32) {
	mean, std = make([]float32, len(m.mean)), make([]float32, len(m.mean))
	for j := range m.mean {
		mean[j] = float32(m.mean[j])
		s := 0.0
		if m.n > 0 {
			s = math.Sqrt(m.m2[j] / m.n)
		}
		if !(s > 1e-6*max(1, math.Abs(m.mean[j]))) {
			s = 1
		}
		std[j] = float32(s)
	}
	return mean, std
}

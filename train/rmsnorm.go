package train

import "math"

// RMSNormEps is the ε of RMSNorm, Llama's rms_norm_eps.
const RMSNormEps = 1e-5

// RMSNorm scales each sample by the reciprocal of its root mean square,
// then by a learned gain (Zhang & Sennrich 2019, "Root Mean Square Layer
// Normalization"; Hugging Face's LlamaRMSNorm, which computes in float32
// as here):
//
//	rstd = 1/√(mean(x²) + ε),  x̂ = x·rstd,  y = x̂·γ    γ "NAME.weight" [Size]
//
// Backward, from ∂rstd/∂x_j = −rstd³·x_j/d:
//
//	dγ = Σ_rows dy·x̂
//	dx = rstd·(dy·γ − x̂·mean(dy·γ·x̂))
type RMSNorm struct {
	Size  int
	Gamma *Param

	x, y   Mat
	rstd   []float32 // per row, kept for Backward
	part   []float64 // dγ's partial sums, [chunks][Size]
	dy, dx Mat
	fwd    func(lo, hi int)
	bwdR   func(lo, hi int)
	bwdC   func(lo, hi int)
}

// NewRMSNorm returns an RMSNorm over size values; its gain is 1 once
// storage is assigned (call Init after NewParams).
func NewRMSNorm(name string, size int) *RMSNorm {
	l := &RMSNorm{Size: size, Gamma: &Param{Name: name + ".weight", Shape: []int{size}}}
	l.fwd, l.bwdR, l.bwdC = l.forwardRows, l.backwardRows, l.backwardCols
	return l
}

func (l *RMSNorm) InSize() int      { return l.Size }
func (l *RMSNorm) OutSize() int     { return l.Size }
func (l *RMSNorm) Params() []*Param { return []*Param{l.Gamma} }

// Init sets γ = 1, Llama's initialization.
func (l *RMSNorm) Init() {
	for i := range l.Gamma.Data {
		l.Gamma.Data[i] = 1
	}
}

// Forward computes dst = RMSNorm(x). dst must not be x.
func (l *RMSNorm) Forward(dst, x Mat) {
	checkShapes("RMSNorm", dst, x, l.Size, l.Size)
	l.x, l.y = x, dst
	l.rstd = grow(l.rstd, x.Rows)
	par().run(x.Rows, max(1, 8192/l.Size), l.fwd)
}

func (l *RMSNorm) forwardRows(lo, hi int) {
	d := l.Size
	g := l.Gamma.Data
	for r := lo; r < hi; r++ {
		x := l.x.Data[r*d : (r+1)*d]
		y := l.y.Data[r*d : (r+1)*d]
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		rstd := float32(1 / math.Sqrt(ss/float64(d)+RMSNormEps))
		l.rstd[r] = rstd
		for j, v := range x {
			y[j] = v * rstd * g[j]
		}
	}
}

// Backward computes dx (when dx.Data is not nil) and dγ (overwritten).
func (l *RMSNorm) Backward(dx, dy Mat) {
	if dy.Rows != l.x.Rows || dy.Cols != l.Size || (dx.Data != nil && (dx.Rows != dy.Rows || dx.Cols != l.Size)) {
		panic("train: RMSNorm: Backward shapes do not match Forward")
	}
	l.dy, l.dx = dy, dx
	// Rows (dx, a per-row reduction), then columns (dγ, a reduction
	// over rows), each independent of the thread count.
	if dx.Data != nil {
		par().run(dy.Rows, max(1, 8192/l.Size), l.bwdR)
	}
	chunks := (dy.Rows + rmsChunk - 1) / rmsChunk
	l.part = growF64(l.part, chunks*l.Size)
	par().run(chunks, 1, l.bwdC)
	gg := l.Gamma.Grad
	for j := range l.Size {
		var s float64
		for c := range chunks {
			s += l.part[c*l.Size+j]
		}
		gg[j] = float32(s)
	}
}

func (l *RMSNorm) backwardRows(lo, hi int) {
	d := l.Size
	g := l.Gamma.Data
	for r := lo; r < hi; r++ {
		x := l.x.Data[r*d : (r+1)*d]
		dy := l.dy.Data[r*d : (r+1)*d]
		dx := l.dx.Data[r*d : (r+1)*d]
		rstd := l.rstd[r]
		var s float64 // Σ dy·γ·x̂
		for j, v := range x {
			s += float64(dy[j]) * float64(g[j]) * float64(v*rstd)
		}
		m := float32(s / float64(d))
		for j, v := range x {
			dx[j] = rstd * (dy[j]*g[j] - v*rstd*m)
		}
	}
}

// backwardCols sums dγ_j = Σ_rows dy·x̂ over chunks [lo, hi) of
// rmsChunk rows, each into its own float64 partial sums (read row by
// row), which Backward adds in chunk order: the result does not depend
// on the thread count.
func (l *RMSNorm) backwardCols(lo, hi int) {
	d := l.Size
	for c := lo; c < hi; c++ {
		part := l.part[c*d : (c+1)*d]
		clear(part)
		for r := c * rmsChunk; r < min((c+1)*rmsChunk, l.dy.Rows); r++ {
			x, dy, rstd := l.x.Data[r*d:(r+1)*d], l.dy.Data[r*d:(r+1)*d], l.rstd[r]
			for j, v := range x {
				part[j] += float64(dy[j]) * float64(v*rstd)
			}
		}
	}
}

// rmsChunk is the number of rows of one partial sum of dγ.
const rmsChunk = 256

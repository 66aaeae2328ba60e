package train

import "math"

// LayerNormEps is the ε of LayerNorm, torch.nn.LayerNorm's default.
const LayerNormEps = 1e-5

// LayerNorm normalizes each sample over its Size values, then scales and
// shifts, with an optional fused activation (torch.nn.LayerNorm followed by
// the activation):
//
//	μ = mean(x),  σ² = mean((x − μ)²)  (biased, as PyTorch)
//	x̂ = (x − μ)·rstd,  rstd = 1/√(σ² + ε)
//	z = x̂·γ + β,  y = act(z)           γ "NAME.weight", β "NAME.bias" [Size]
//
// Backward (llm.c layernorm_backward), with g = dy·act'(z):
//
//	dβ = Σ_rows g,  dγ = Σ_rows g·x̂
//	dx̂ = g·γ
//	dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
type LayerNorm struct {
	Size        int
	Act         Activation
	Gamma, Beta *Param

	x, y       Mat
	mean, rstd []float32 // per row, kept for Backward
	dy, dx     Mat
	fwd, bwdR  func(lo, hi int)
	bwdC       func(lo, hi int)
}

// NewLayerNorm returns a LayerNorm over size values with γ = 1 and β = 0
// once storage is assigned (call Init after NewParams).
func NewLayerNorm(name string, size int, act Activation) *LayerNorm {
	l := &LayerNorm{Size: size, Act: act.norm(),
		Gamma: &Param{Name: name + ".weight", Shape: []int{size}},
		Beta:  &Param{Name: name + ".bias", Shape: []int{size}},
	}
	l.fwd, l.bwdR, l.bwdC = l.forwardRows, l.backwardRows, l.backwardCols
	return l
}

func (l *LayerNorm) InSize() int      { return l.Size }
func (l *LayerNorm) OutSize() int     { return l.Size }
func (l *LayerNorm) Params() []*Param { return []*Param{l.Gamma, l.Beta} }

// Init sets γ = 1, β = 0, torch's initialization.
func (l *LayerNorm) Init() {
	for i := range l.Gamma.Data {
		l.Gamma.Data[i] = 1
	}
	clear(l.Beta.Data)
}

// Forward computes dst = act(LayerNorm(x)). dst must not be x.
func (l *LayerNorm) Forward(dst, x Mat) {
	checkShapes("LayerNorm", dst, x, l.Size, l.Size)
	l.x, l.y = x, dst
	l.mean = grow(l.mean, x.Rows)
	l.rstd = grow(l.rstd, x.Rows)
	par().run(x.Rows, max(1, 8192/l.Size), l.fwd)
}

func (l *LayerNorm) forwardRows(lo, hi int) {
	d := l.Size
	g, b := l.Gamma.Data, l.Beta.Data
	for r := lo; r < hi; r++ {
		x := l.x.Data[r*d : (r+1)*d]
		y := l.y.Data[r*d : (r+1)*d]
		var s float64
		for _, v := range x {
			s += float64(v)
		}
		mu := s / float64(d)
		var ss float64
		for _, v := range x {
			t := float64(v) - mu
			ss += t * t
		}
		rstd := 1 / math.Sqrt(ss/float64(d)+LayerNormEps)
		m32, r32 := float32(mu), float32(rstd)
		l.mean[r], l.rstd[r] = m32, r32
		for j, v := range x {
			y[j] = (v-m32)*r32*g[j] + b[j]
		}
		if l.Act != Identity {
			// The pre-activation z is recomputed in Backward, not stored.
			l.Act.apply(y, y)
		}
	}
}

// Backward computes dx, dγ and dβ from dy (overwritten with dy·act'(z)).
func (l *LayerNorm) Backward(dx, dy Mat) {
	if dy.Rows != l.x.Rows || dy.Cols != l.Size || (dx.Data != nil && (dx.Rows != dy.Rows || dx.Cols != l.Size)) {
		panic("train: LayerNorm: Backward shapes do not match Forward")
	}
	l.dy, l.dx = dy, dx
	// Rows: act' and dx (per-row reductions); then columns: dγ, dβ
	// (reductions over rows), each independent of the thread count.
	par().run(dy.Rows, max(1, 8192/l.Size), l.bwdR)
	par().run(l.Size, 64, l.bwdC)
}

func (l *LayerNorm) backwardRows(lo, hi int) {
	d := l.Size
	g, b := l.Gamma.Data, l.Beta.Data
	var zbuf [256]float32
	for r := lo; r < hi; r++ {
		dy := l.dy.Data[r*d : (r+1)*d]
		if l.Act != Identity {
			y := l.y.Data[r*d : (r+1)*d]
			if l.Act.needsInput() {
				// Recompute z = x̂·γ + β in chunks.
				for j0 := 0; j0 < d; j0 += len(zbuf) {
					j1 := min(j0+len(zbuf), d)
					z := zbuf[:j1-j0]
					x := l.x.Data[r*d+j0 : r*d+j1]
					for j, v := range x {
						z[j] = (v-l.mean[r])*l.rstd[r]*g[j0+j] + b[j0+j]
					}
					l.Act.backward(dy[j0:j1], y[j0:j1], z)
				}
			} else {
				l.Act.backward(dy, y, nil)
			}
		}
		if l.dx.Data == nil {
			continue
		}
		x := l.x.Data[r*d : (r+1)*d]
		m, s := l.mean[r], l.rstd[r]
		var sumD, sumDX float64
		for j, v := range x {
			dn := float64(dy[j] * g[j])
			sumD += dn
			sumDX += dn * float64((v-m)*s)
		}
		meanD, meanDX := float32(sumD/float64(d)), float32(sumDX/float64(d))
		dx := l.dx.Data[r*d : (r+1)*d]
		for j, v := range x {
			dx[j] = s * (dy[j]*g[j] - meanD - (v-m)*s*meanDX)
		}
	}
}

func (l *LayerNorm) backwardCols(lo, hi int) {
	d := l.Size
	dg, db := l.Gamma.Grad[lo:hi], l.Beta.Grad[lo:hi]
	clear(dg)
	clear(db)
	for r := range l.dy.Rows {
		dy := l.dy.Data[r*d+lo : r*d+hi]
		x := l.x.Data[r*d+lo : r*d+hi]
		m, s := l.mean[r], l.rstd[r]
		for j, v := range dy {
			db[j] += v
			dg[j] += v * (x[j] - m) * s
		}
	}
}

package train

import (
	"math"
	"math/rand/v2"
)

// BatchNorm2d normalizes each channel of [C, H, W] samples over the batch
// and the positions (Ioffe & Szegedy 2015), as torch.nn.BatchNorm2d:
//
//	training: μ_c, σ²_c = mean and biased variance of x[·, c, ·, ·] over
//	          the M = n·H·W values of the batch;
//	          running_mean ← (1−m)·running_mean + m·μ,
//	          running_var  ← (1−m)·running_var + m·σ²·M/(M−1)   (m = Momentum, 0.1)
//	eval:     μ, σ² = running_mean, running_var
//	x̂ = (x − μ)/√(σ² + ε),   y = γ_c·x̂ + β_c
//
// Backward (training: μ and σ² depend on x), per channel over its M
// values, with ĝ = dy·γ:
//
//	dγ = Σ dy·x̂,   dβ = Σ dy
//	dx = (1/√(σ²+ε)) · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))
//
// In eval mode dx = ĝ/√(σ²+ε). The running statistics are buffers, not
// parameters: RunningMean and RunningVar (state_dict "NAME.running_mean",
// "NAME.running_var").
type BatchNorm2d struct {
	C, H, W     int
	Eps         float64
	Momentum    float64
	Gamma, Beta *Param // "NAME.weight", "NAME.bias" [C]
	RunningMean []float32
	RunningVar  []float32
	training    bool

	x, y       Mat
	mean, rstd []float32 // of the last Forward, per channel
}

// NewBatchNorm2d returns batch normalization of C×H×W samples, in
// training mode, γ = 1, β = 0 once Init runs, running statistics 0 and 1.
func NewBatchNorm2d(name string, c, h, w int) *BatchNorm2d {
	b := &BatchNorm2d{C: c, H: h, W: w, Eps: 1e-5, Momentum: 0.1, training: true,
		Gamma:       &Param{Name: name + ".weight", Shape: []int{c}},
		Beta:        &Param{Name: name + ".bias", Shape: []int{c}},
		RunningMean: make([]float32, c), RunningVar: make([]float32, c),
		mean: make([]float32, c), rstd: make([]float32, c),
	}
	for i := range b.RunningVar {
		b.RunningVar[i] = 1
	}
	return b
}

func (b *BatchNorm2d) InSize() int      { return b.C * b.H * b.W }
func (b *BatchNorm2d) OutSize() int     { return b.InSize() }
func (b *BatchNorm2d) Params() []*Param { return []*Param{b.Gamma, b.Beta} }

// Init sets γ = 1 and β = 0, torch's initialization.
func (b *BatchNorm2d) Init(*rand.Rand) {
	for i := range b.Gamma.Data {
		b.Gamma.Data[i], b.Beta.Data[i] = 1, 0
	}
}

// SetTraining switches between batch statistics (training) and the
// running ones (evaluation); it implements Stochastic.
func (b *BatchNorm2d) SetTraining(training bool, _ *rand.Rand) { b.training = training }

// Forward normalizes x into dst. It panics on a shape mismatch.
func (b *BatchNorm2d) Forward(dst, x Mat) {
	checkShapes("BatchNorm2d", dst, x, b.InSize(), b.OutSize())
	b.x, b.y = x, dst
	hw := b.H * b.W
	m := x.Rows * hw
	for c := range b.C {
		var mean, v float64
		if b.training && m > 0 {
			for r := range x.Rows {
				for _, xv := range x.Row(r)[c*hw : (c+1)*hw] {
					mean += float64(xv)
				}
			}
			mean /= float64(m)
			for r := range x.Rows {
				for _, xv := range x.Row(r)[c*hw : (c+1)*hw] {
					d := float64(xv) - mean
					v += d * d
				}
			}
			v /= float64(m)
			unbiased := v
			if m > 1 {
				unbiased = v * float64(m) / float64(m-1)
			}
			b.RunningMean[c] = float32((1-b.Momentum)*float64(b.RunningMean[c]) + b.Momentum*mean)
			b.RunningVar[c] = float32((1-b.Momentum)*float64(b.RunningVar[c]) + b.Momentum*unbiased)
		} else {
			mean, v = float64(b.RunningMean[c]), float64(b.RunningVar[c])
		}
		rstd := 1 / math.Sqrt(v+b.Eps)
		b.mean[c], b.rstd[c] = float32(mean), float32(rstd)
		g, be := b.Gamma.Data[c], b.Beta.Data[c]
		for r := range x.Rows {
			xs, ys := x.Row(r)[c*hw:(c+1)*hw], dst.Row(r)[c*hw:(c+1)*hw]
			for i, xv := range xs {
				ys[i] = (xv-float32(mean))*float32(rstd)*g + be
			}
		}
	}
}

// Backward computes dγ, dβ (overwritten) and, if dx.Data is non-nil, dx.
func (b *BatchNorm2d) Backward(dx, dy Mat) {
	checkShapes("BatchNorm2d", dy, b.x, b.InSize(), b.OutSize())
	hw := b.H * b.W
	m := float64(b.x.Rows * hw)
	for c := range b.C {
		mean, rstd, g := b.mean[c], b.rstd[c], b.Gamma.Data[c]
		var sdy, sdyx float64 // Σ dy, Σ dy·x̂
		for r := range b.x.Rows {
			xs, gs := b.x.Row(r)[c*hw:(c+1)*hw], dy.Row(r)[c*hw:(c+1)*hw]
			for i, gv := range gs {
				sdy += float64(gv)
				sdyx += float64(gv) * float64((xs[i]-mean)*rstd)
			}
		}
		b.Gamma.Grad[c], b.Beta.Grad[c] = float32(sdyx), float32(sdy)
		if dx.Data == nil {
			continue
		}
		// mean(ĝ) = γ·Σdy/M, mean(ĝ·x̂) = γ·Σdy·x̂/M.
		mg, mgx := float32(float64(g)*sdy/m), float32(float64(g)*sdyx/m)
		for r := range b.x.Rows {
			xs, gs, ds := b.x.Row(r)[c*hw:(c+1)*hw], dy.Row(r)[c*hw:(c+1)*hw], dx.Row(r)[c*hw:(c+1)*hw]
			for i, gv := range gs {
				if !b.training {
					ds[i] = gv * g * rstd
					continue
				}
				xh := (xs[i] - mean) * rstd
				ds[i] = rstd * (gv*g - mg - xh*mgx)
			}
		}
	}
}

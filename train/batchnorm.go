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
//
// The channels are split over the threads (SetThreads); each channel's
// sums run over its values in sample order on one thread, in float32
// within a sample's H×W map (8-lane AVX2 partial sums) and float64 across
// samples, so the results do not depend on the thread count. The
// variance merges the maps' own squared deviations (Chan et al.), so it
// takes one pass over the batch and one over each map while it is in L1. The output
// pass is one kernel, y = (x − μ)·(γ/√(σ²+ε)) + β; Sequential fuses a
// following ReLU or ReLU6 into it (forwardClamp) and Backward then masks
// dy by the clamped output in its first pass.
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
	lo, hi     float32   // the clamp of the last Forward (−Inf, +Inf: none)
	dx, dy     Mat       // the Backward in progress
	fwd, bwd   func(lo, hi int)
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
	b.fwd, b.bwd = b.forwardChannels, b.backwardChannels
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
func (b *BatchNorm2d) Forward(dst, x Mat) { b.forwardClamp(dst, x, negInf, posInf) }

// forwardClamp is Forward followed by y = min(max(y, lo), hi) in the same
// pass (a fused ReLU or ReLU6); the next Backward differentiates both.
func (b *BatchNorm2d) forwardClamp(dst, x Mat, lo, hi float32) {
	checkShapes("BatchNorm2d", dst, x, b.InSize(), b.OutSize())
	b.x, b.y, b.lo, b.hi = x, dst, lo, hi
	par().run(b.C, 1, b.fwd)
}

// forwardChannels normalizes channels [c0, c1).
func (b *BatchNorm2d) forwardChannels(c0, c1 int) {
	x, dst := b.x, b.y
	hw := b.H * b.W
	m := x.Rows * hw
	for c := c0; c < c1; c++ {
		var mean, v float64
		if b.training && m > 0 {
			// Per sample, the sum and the squared deviations from the
			// sample's own mean (a second pass over its map, in L1), merged
			// into the batch's in float64 (Chan, Golub & LeVeque 1979):
			// δ = mean_b − mean, mean += δ·n_b/n, M2 += M2_b + δ²·n·n_b/(n + n_b).
			var m2 float64
			for r := range x.Rows {
				seg := x.Row(r)[c*hw : (c+1)*hw]
				sm := float64(sum(seg)) / float64(hw)
				sm2 := float64(sqDev(seg, float32(sm)))
				na := float64(r * hw)
				d := sm - mean
				mean += d * float64(hw) / (na + float64(hw))
				m2 += sm2 + d*d*na*float64(hw)/(na+float64(hw))
			}
			v = m2 / float64(m)
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
		scale := float32(float64(b.Gamma.Data[c]) * rstd)
		for r := range x.Rows {
			affine(dst.Row(r)[c*hw:(c+1)*hw], x.Row(r)[c*hw:(c+1)*hw], float32(mean), scale, b.Beta.Data[c], b.lo, b.hi)
		}
	}
}

// Backward computes dγ, dβ (overwritten) and, if dx.Data is non-nil, dx.
// After forwardClamp it first sets dy to 0 where the clamp was active (it
// overwrites dy).
func (b *BatchNorm2d) Backward(dx, dy Mat) {
	checkShapes("BatchNorm2d", dy, b.x, b.InSize(), b.OutSize())
	b.dx, b.dy = dx, dy
	par().run(b.C, 1, b.bwd)
	b.dx, b.dy = Mat{}, Mat{}
}

// backwardChannels differentiates channels [c0, c1).
func (b *BatchNorm2d) backwardChannels(c0, c1 int) {
	x, dx, dy := b.x, b.dx, b.dy
	hw := b.H * b.W
	m := float64(x.Rows * hw)
	clamped := b.lo != negInf || b.hi != posInf
	for c := c0; c < c1; c++ {
		mean, rstd, g := b.mean[c], float64(b.rstd[c]), float64(b.Gamma.Data[c])
		var sdy, sdyx float64 // Σ dy, Σ dy·(x − μ)
		for r := range x.Rows {
			gs, xs := dy.Row(r)[c*hw:(c+1)*hw], x.Row(r)[c*hw:(c+1)*hw]
			var s, sx float32
			if clamped {
				s, sx = dotDevMask(gs, b.y.Row(r)[c*hw:(c+1)*hw], xs, mean, b.lo, b.hi)
			} else {
				s, sx = dotDev(gs, xs, mean)
			}
			sdy += float64(s)
			sdyx += float64(sx)
		}
		sdyxh := rstd * sdyx // Σ dy·x̂
		b.Gamma.Grad[c], b.Beta.Grad[c] = float32(sdyxh), float32(sdy)
		if dx.Data == nil {
			continue
		}
		// dx = rstd·(γ·dy − mean(ĝ) − x̂·mean(ĝ·x̂)), mean(ĝ) = γ·Σdy/M,
		// mean(ĝ·x̂) = γ·Σdy·x̂/M, x̂ = (x − μ)·rstd; in eval mode
		// dx = rstd·γ·dy.
		a, bx, k := float32(rstd*g), float32(0), float32(0)
		if b.training {
			bx = float32(-rstd * rstd * g * sdyxh / m)
			k = float32(-rstd * g * sdy / m)
		}
		for r := range x.Rows {
			ds, gs := dx.Row(r)[c*hw:(c+1)*hw], dy.Row(r)[c*hw:(c+1)*hw]
			if !b.training {
				affine(ds, gs, 0, a, 0, negInf, posInf)
				continue
			}
			axpbyc(ds, gs, x.Row(r)[c*hw:(c+1)*hw], a, bx, mean, k)
		}
	}
}

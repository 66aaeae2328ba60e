package train

import (
	"fmt"
	"math"
)

// Optimizer names.
const (
	AdamW = "adamw"
	SGD   = "sgd"
)

// Optimizer updates parameter sets from their gradients. State returns its
// per-parameter state tensors (for checkpoints), named by prefix + the
// parameter name as PyTorch's optimizer state_dict calls them
// ("exp_avg.", "exp_avg_sq.", "momentum_buffer.").
type Optimizer interface {
	// Step applies one update with learning rate lr to every set, in order.
	Step(lr float64)
	// Steps returns the number of Steps taken (AdamW's bias-correction t).
	Steps() int64
	// SetSteps sets the step count (when resuming).
	SetSteps(t int64)
	// State returns the state tensors, views that loading may overwrite.
	State() []*Param
}

// optimGroup is one parameter set and its state slices.
type optimGroup struct {
	ps   *Params
	m, v []float32
}

// AdamWOptimizer is Adam with decoupled weight decay, as torch.optim.AdamW
// (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101; reference:
// https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html). For
// every value, at step t:
//
//	w ← w·(1 − lr·λ)
//	m ← β₁·m + (1 − β₁)·g
//	v ← β₂·v + (1 − β₂)·g²
//	w ← w − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + ε)
//
// With λ = 0 it is Adam.
type AdamWOptimizer struct {
	Beta1, Beta2, Eps, WeightDecay float64
	groups                         []optimGroup
	t                              int64
	// per Step, for the parallel loop
	cur    *optimGroup
	stepFn func(lo, hi int)
	k      adamConsts
}

// NewAdamW returns AdamW over the parameter sets with torch's defaults
// β₁ = 0.9, β₂ = 0.999, ε = 1e-8 and the given weight decay λ.
func NewAdamW(weightDecay float64, sets ...*Params) *AdamWOptimizer {
	o := &AdamWOptimizer{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay}
	for _, ps := range sets {
		o.groups = append(o.groups, optimGroup{ps: ps, m: make([]float32, len(ps.Data)), v: make([]float32, len(ps.Data))})
	}
	o.stepFn = o.update
	return o
}

func (o *AdamWOptimizer) Steps() int64     { return o.t }
func (o *AdamWOptimizer) SetSteps(t int64) { o.t = t }

// Step applies one AdamW update.
func (o *AdamWOptimizer) Step(lr float64) {
	o.t++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.t))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.t))
	o.k = adamConsts{float32(o.Beta1), float32(1 - o.Beta1), float32(o.Beta2), float32(1 - o.Beta2),
		float32(1 - lr*o.WeightDecay), float32(lr / bc1), float32(1 / math.Sqrt(bc2)), float32(o.Eps)}
	for i := range o.groups {
		o.cur = &o.groups[i]
		par().run(len(o.cur.ps.Data), 1<<16, o.stepFn)
	}
}

// update applies the step to values [lo, hi) of the current group.
func (o *AdamWOptimizer) update(lo, hi int) {
	g := o.cur
	adamw(g.ps.Data[lo:hi], g.ps.Grad[lo:hi], g.m[lo:hi], g.v[lo:hi], &o.k)
}

// State returns exp_avg.NAME and exp_avg_sq.NAME for every parameter.
func (o *AdamWOptimizer) State() []*Param {
	var out []*Param
	for _, g := range o.groups {
		out = append(out, views("exp_avg.", g.ps, g.m)...)
	}
	for _, g := range o.groups {
		out = append(out, views("exp_avg_sq.", g.ps, g.v)...)
	}
	return out
}

// views returns Params named prefix+p.Name viewing flat in the layout of ps.
func views(prefix string, ps *Params, flat []float32) []*Param {
	out := make([]*Param, 0, len(ps.List))
	off := 0
	for _, p := range ps.List {
		n := p.Size()
		out = append(out, &Param{Name: prefix + p.Name, Shape: p.Shape, Data: flat[off : off+n : off+n]})
		off += n
	}
	return out
}

// SGDOptimizer is stochastic gradient descent with momentum μ and L2
// weight decay λ, as torch.optim.SGD (dampening 0, not Nesterov):
//
//	g ← g + λ·w
//	b ← μ·b + g      (b starts at 0, so the first b is g)
//	w ← w − lr·b     (w ← w − lr·g when μ = 0)
type SGDOptimizer struct {
	Momentum, WeightDecay float64
	groups                []optimGroup
	t                     int64
	lr                    float32
	cur                   *optimGroup
	stepFn                func(lo, hi int)
}

// NewSGD returns SGD over the parameter sets.
func NewSGD(momentum, weightDecay float64, sets ...*Params) *SGDOptimizer {
	o := &SGDOptimizer{Momentum: momentum, WeightDecay: weightDecay}
	for _, ps := range sets {
		g := optimGroup{ps: ps}
		if momentum != 0 {
			g.m = make([]float32, len(ps.Data))
		}
		o.groups = append(o.groups, g)
	}
	o.stepFn = o.update
	return o
}

func (o *SGDOptimizer) Steps() int64     { return o.t }
func (o *SGDOptimizer) SetSteps(t int64) { o.t = t }

// Step applies one SGD update.
func (o *SGDOptimizer) Step(lr float64) {
	o.t++
	o.lr = float32(lr)
	for i := range o.groups {
		o.cur = &o.groups[i]
		par().run(len(o.cur.ps.Data), 1<<16, o.stepFn)
	}
}

func (o *SGDOptimizer) update(lo, hi int) {
	g := o.cur
	w, gr := g.ps.Data[lo:hi], g.ps.Grad[lo:hi]
	gr = gr[:len(w)]
	wd, mu, lr := float32(o.WeightDecay), float32(o.Momentum), o.lr
	if g.m == nil {
		for i := range w {
			w[i] -= lr * (gr[i] + wd*w[i])
		}
		return
	}
	b := g.m[lo:hi]
	b = b[:len(w)]
	for i := range w {
		bi := mu*b[i] + gr[i] + wd*w[i]
		b[i] = bi
		w[i] -= lr * bi
	}
}

// State returns momentum_buffer.NAME for every parameter (none without
// momentum).
func (o *SGDOptimizer) State() []*Param {
	var out []*Param
	for _, g := range o.groups {
		if g.m != nil {
			out = append(out, views("momentum_buffer.", g.ps, g.m)...)
		}
	}
	return out
}

// newOptimizer builds the optimizer of the options over sets.
func newOptimizer(o *Options, sets ...*Params) (Optimizer, error) {
	switch o.Optimizer {
	case AdamW:
		a := NewAdamW(o.WeightDecay, sets...)
		if o.AdamBeta2 != 0 {
			a.Beta2 = o.AdamBeta2
		}
		return a, nil
	case SGD:
		return NewSGD(o.Momentum, o.WeightDecay, sets...), nil
	}
	return nil, fmt.Errorf("train: unknown optimizer %q, want adamw or sgd", o.Optimizer)
}

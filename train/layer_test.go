package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// Gradient checks: every layer's Backward against central finite
// differences (gonum diff/fd) of the scalar f = Σ R ⊙ layer(x), R random,
// so dy = R. The layers compute in float32, whose rounding (≈6e-8
// relative) divided by the step 2h = 2e-2 bounds the difference noise at
// about 1e-5 for outputs of order 1; with central differences the
// truncation error is O(h²) ≈ 1e-4 times the third derivative. Hence
// the tolerances: 2e-3 absolute or relative.
const (
	fdStep   = 1e-2
	gradAbs  = 2e-3
	gradRel  = 2e-3
	reluGap  = 0.05 // ReLU inputs are kept this far from the kink
	fdTrials = 20
)

type layerCase struct {
	name string
	make func() Layer
	// kink returns the values that must stay away from 0 (ReLU
	// pre-activations), computed after Forward; nil if smooth.
	kink func(l Layer) []float32
}

func layerCases() []layerCase {
	var cases []layerCase
	for _, act := range []Activation{Identity, ReLU, GELU, Tanh} {
		cases = append(cases, layerCase{
			name: "Linear/" + string(act),
			make: func() Layer { return NewLinear("fc", 5, 4, act) },
			kink: func(l Layer) []float32 {
				if act != ReLU {
					return nil
				}
				// Recompute z = x·Wᵀ + b.
				ll := l.(*Linear)
				z := make([]float32, ll.x.Rows*ll.Out)
				for r := range ll.x.Rows {
					for o := range ll.Out {
						s := ll.B.Data[o]
						for i := range ll.In {
							s += ll.x.Data[r*ll.In+i] * ll.W.Data[o*ll.In+i]
						}
						z[r*ll.Out+o] = s
					}
				}
				return z
			},
		})
		cases = append(cases, layerCase{
			name: "LayerNorm/" + string(act),
			make: func() Layer { return NewLayerNorm("ln", 6, act) },
			kink: func(l Layer) []float32 {
				if act != ReLU {
					return nil
				}
				ln := l.(*LayerNorm)
				z := make([]float32, ln.x.Rows*ln.Size)
				for r := range ln.x.Rows {
					for j := range ln.Size {
						z[r*ln.Size+j] = (ln.x.Data[r*ln.Size+j]-ln.mean[r])*ln.rstd[r]*ln.Gamma.Data[j] + ln.Beta.Data[j]
					}
				}
				return z
			},
		})
		if act != Identity {
			cases = append(cases, layerCase{
				name: "Activation/" + string(act),
				make: func() Layer { return NewActivationLayer(act, 7) },
				kink: func(l Layer) []float32 {
					if act != ReLU {
						return nil
					}
					return l.(*ActivationLayer).x.Data
				},
			})
		}
	}
	cases = append(cases,
		layerCase{name: "RMSNorm", make: func() Layer { return NewRMSNorm("norm", 6) }},
		layerCase{name: "RoPE", make: func() Layer { return NewRoPE(3, 2, 4, RoPETheta) }},
		// One causal sequence of 3 (the masked half of the scores
		// included), 4 query heads on 2 KV heads, rotated.
		layerCase{name: "Attention", make: func() Layer { return NewAttention(3, 4, 2, 4, NewRoPE(3, 4, 4, RoPETheta)) }},
		layerCase{name: "Attention/MHA-noRoPE", make: func() Layer { return NewAttention(3, 2, 2, 3, nil) }},
		// Query blocks of 2 rows: [0, 2) against keys [0, 2), then [2, 3)
		// against all three.
		layerCase{name: "Attention/blocks", make: func() Layer {
			a := NewAttention(3, 4, 2, 4, NewRoPE(3, 4, 4, RoPETheta))
			a.block = 2
			return a
		}},
		layerCase{name: "SwiGLU", make: func() Layer { return NewSwiGLU(5) }},
		// Convolutions: plain 3×3 with padding; stride 2 with dilation 2
		// on a non-square input; grouped; depthwise (groups = C, F = 2C).
		layerCase{name: "Conv2d/3x3-pad1", make: func() Layer { return mustConv(NewConv2d("c", 2, 4, 4, 3, 3, 3, 1, 1, 1, 1)) }},
		layerCase{name: "Conv2d/stride2-dilation2", make: func() Layer { return mustConv(NewConv2d("c", 2, 6, 5, 2, 2, 3, 2, 1, 2, 1)) }},
		layerCase{name: "Conv2d/groups2", make: func() Layer { return mustConv(NewConv2d("c", 4, 4, 3, 6, 2, 2, 1, 0, 1, 2)) }},
		layerCase{name: "Conv2d/depthwise", make: func() Layer { return mustConv(NewConv2d("c", 3, 4, 4, 6, 3, 3, 1, 1, 1, 3)) }},
		// The paths of Conv2d (see its doc): the direct one (one input
		// channel per output) with stride 2, with stride 3 and dilation 2,
		// a 1×1 kernel of stride 2 (most of the stride-1 grid unread), and
		// a one-channel input with a 5×5 kernel; 1×1 without im2col, its
		// channel rows gathered for a chunk of the 3 samples (one sample
		// group) and x used in place (chunks of one sample); the padded
		// grid with a chunk of 3 samples and with 1.
		layerCase{name: "Conv2d/depthwise-stride2", make: func() Layer { return mustConv(NewConv2d("c", 2, 5, 6, 2, 3, 3, 2, 1, 1, 2)) }},
		layerCase{name: "Conv2d/depthwise-stride3-dilation2", make: func() Layer { return mustConv(NewConv2d("c", 2, 7, 6, 4, 3, 2, 3, 2, 2, 2)) }},
		layerCase{name: "Conv2d/depthwise-1x1-stride2", make: func() Layer { return mustConv(NewConv2d("c", 2, 5, 5, 2, 1, 1, 2, 0, 1, 2)) }},
		layerCase{name: "Conv2d/1-channel-5x5", make: func() Layer { return mustConv(NewConv2d("c", 1, 6, 5, 3, 5, 5, 1, 2, 1, 1)) }},
		layerCase{name: "Conv2d/1x1-chunk", make: func() Layer { return oneGroup(mustConv(NewConv2d("c", 3, 3, 4, 4, 1, 1, 1, 0, 1, 1)), 0) }},
		layerCase{name: "Conv2d/1x1-per-sample", make: func() Layer { return oneGroup(mustConv(NewConv2d("c", 4, 3, 3, 6, 1, 1, 1, 0, 1, 2)), 1) }},
		layerCase{name: "Conv2d/grid-chunk", make: func() Layer { return oneGroup(mustConv(NewConv2d("c", 2, 4, 5, 3, 3, 3, 1, 1, 1, 1)), 0) }},
		layerCase{name: "Conv2d/grid-per-sample-dilation2", make: func() Layer { return oneGroup(mustConv(NewConv2d("c", 2, 5, 5, 3, 3, 2, 1, 2, 2, 1)), 1) }},
		// Pooling: the max case keeps each window's two largest inputs
		// apart (kink), as ReLU's inputs are kept from 0.
		layerCase{name: "MaxPool2d", make: func() Layer { return mustPool(NewPool2d(true, 1, 4, 4, 2, 2)) }, kink: maxPoolGaps},
		layerCase{name: "MaxPool2d/3x3-stride2", make: func() Layer { return mustPool(NewPool2d(true, 2, 5, 6, 3, 2)) }, kink: maxPoolGaps},
		layerCase{name: "AvgPool2d/overlap", make: func() Layer { return mustPool(NewPool2d(false, 2, 5, 4, 3, 1)) }},
		layerCase{name: "GlobalAvgPool", make: func() Layer { return NewGlobalAvgPool(3, 2, 3) }},
		layerCase{name: "BatchNorm2d/train", make: func() Layer { return NewBatchNorm2d("bn", 2, 2, 3) }},
		layerCase{name: "ReLU6", make: func() Layer { return NewReLU6(8) }, kink: func(l Layer) []float32 {
			var z []float32
			for _, v := range l.(*ReLU6).x.Data {
				z = append(z, v, v-6)
			}
			return z
		}},
		// A whole small CNN through Sequential: conv without bias, BatchNorm
		// (training), ReLU6, average pooling, conv with bias, global pooling,
		// fc. (No max pooling or ReLU, whose kinks the chain would hide.)
		layerCase{name: "CNN", make: func() Layer {
			n, err := NewCNN("conv3x3:2,bn,relu6,avgpool2,dwconv3x3:s2,gap,fc:10", 1, 4, 4, 10)
			if err != nil {
				panic(err)
			}
			return n
		}, kink: func(l Layer) []float32 {
			var z []float32
			for _, v := range bnOutput(l.(*CNN).Layers[1].(*BatchNorm2d)) { // ReLU6's input (fused into the BatchNorm)
				z = append(z, v, v-6)
			}
			return z
		}},
		layerCase{name: "BatchNorm2d/eval", make: func() Layer {
			b := NewBatchNorm2d("bn", 2, 2, 3)
			copy(b.RunningMean, []float32{0.5, -1})
			copy(b.RunningVar, []float32{2, 0.25})
			b.SetTraining(false, nil)
			return b
		}},
		layerCase{name: "GELUTanh", make: func() Layer { return NewGELUTanh(5) }},
		layerCase{name: "Dropout", make: func() Layer { return NewDropout(7, 0.3) }},
		layerCase{name: "Standardize", make: func() Layer {
			s := NewStandardize(4)
			if err := s.Set([]float32{1, -2, 0.5, 3}, []float32{2, 0.5, 1, 4}); err != nil {
				panic(err)
			}
			return s
		}},
	)
	return cases
}

func TestLayerGradients(t *testing.T) {
	for _, tc := range layerCases() {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			var l Layer
			var x, R Mat
			var reset func()
			for trial := range fdTrials {
				rng := rand.New(rand.NewPCG(uint64(trial), 1))
				l = tc.make()
				ps := NewParams(l.Params()...)
				for i := range ps.Data {
					ps.Data[i] = float32(rng.NormFloat64())
				}
				reset = func() {}
				if d, ok := l.(*Dropout); ok {
					reset = func() { d.SetTraining(true, rand.New(rand.NewPCG(7, 7))) }
				}
				x = randMat(rng, n, l.InSize(), 1)
				R = randMat(rng, n, l.OutSize(), 1)
				y := Mat{Rows: n, Cols: l.OutSize(), Data: make([]float32, n*l.OutSize())}
				reset()
				l.Forward(y, x)
				ok := true
				if tc.kink != nil {
					for _, z := range tc.kink(l) {
						if math.Abs(float64(z)) < reluGap {
							ok = false
						}
					}
				}
				if ok {
					break
				}
				if trial == fdTrials-1 {
					t.Fatal("no trial kept ReLU inputs away from 0")
				}
			}
			y := Mat{Rows: n, Cols: l.OutSize(), Data: make([]float32, n*l.OutSize())}
			f := func() float64 {
				reset()
				l.Forward(y, x)
				var s float64
				for i, v := range y.Data {
					s += float64(v) * float64(R.Data[i])
				}
				return s
			}
			// Analytic gradients.
			f()
			dx := Mat{Rows: n, Cols: l.InSize(), Data: make([]float32, n*l.InSize())}
			dy := Mat{Rows: n, Cols: l.OutSize(), Data: append([]float32(nil), R.Data...)}
			l.Backward(dx, dy)
			check := func(what string, vals []float32, grad []float32) {
				t.Helper()
				want := fd.Gradient(nil, func(v []float64) float64 {
					old := append([]float32(nil), vals...)
					for i := range vals {
						vals[i] = float32(v[i])
					}
					s := f()
					copy(vals, old)
					return s
				}, f64(vals), &fd.Settings{Formula: fd.Central, Step: fdStep})
				for i := range want {
					if !scalar.EqualWithinAbsOrRel(float64(grad[i]), want[i], gradAbs, gradRel) {
						t.Errorf("d/d%s[%d] = %.6g, finite differences %.6g", what, i, grad[i], want[i])
					}
				}
			}
			check("x", x.Data, dx.Data)
			for _, p := range l.Params() {
				g := append([]float32(nil), p.Grad...)
				check(p.Name, p.Data, g)
			}
		})
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestLinearMatchesNaive checks the fused Linear forward (sgemm + bias +
// activation) against a direct float64 loop on a size where the gemm uses
// its blocked path and several threads.
func TestLinearMatchesNaive(t *testing.T) {
	defer SetThreads(Threads())
	for _, threads := range []int{1, 2} {
		SetThreads(threads)
		rng := rand.New(rand.NewPCG(3, 3))
		l := NewLinear("fc", 67, 45, GELU)
		NewParams(l.Params()...)
		l.Init(rng)
		x := randMat(rng, 33, 67, 1)
		y := Mat{Rows: 33, Cols: 45, Data: make([]float32, 33*45)}
		l.Forward(y, x)
		for r := range 33 {
			for o := range 45 {
				s := float64(l.B.Data[o])
				for i := range 67 {
					s += float64(x.Data[r*67+i]) * float64(l.W.Data[o*67+i])
				}
				want := 0.5 * s * (1 + math.Erf(s/math.Sqrt2)) // exact erf
				if got := float64(y.Data[r*45+o]); !scalar.EqualWithinAbsOrRel(got, want, 1e-5, 1e-5) {
					t.Fatalf("threads %d: y[%d,%d] = %v, want %v", threads, r, o, got, want)
				}
			}
		}
	}
}

// TestDropoutStatistics checks the keep rate and scaling, and that
// evaluation mode is the identity.
func TestDropoutStatistics(t *testing.T) {
	d := NewDropout(1000, 0.25)
	d.SetTraining(true, rand.New(rand.NewPCG(1, 2)))
	x := Mat{Rows: 10, Cols: 1000, Data: make([]float32, 10000)}
	for i := range x.Data {
		x.Data[i] = 1
	}
	y := Mat{Rows: 10, Cols: 1000, Data: make([]float32, 10000)}
	d.Forward(y, x)
	kept := 0
	for _, v := range y.Data {
		switch v {
		case 0:
		case 1 / 0.75:
			kept++
		default:
			t.Fatalf("value %v, want 0 or 1/0.75", v)
		}
	}
	// 10000 Bernoulli(0.75): sd ≈ 43, so ±200 is > 4.5 sd.
	if kept < 7300 || kept > 7700 {
		t.Errorf("kept %d of 10000, want ≈ 7500", kept)
	}
	d.SetTraining(false, nil)
	d.Forward(y, x)
	for _, v := range y.Data {
		if v != 1 {
			t.Fatal("evaluation mode is not the identity")
		}
	}
}

func TestMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	x := randMat(rng, 101, 3, 2)
	for r := range 101 {
		x.Data[r*3+1] += 10
		x.Data[r*3+2] = 4 // constant feature → std 1
	}
	m := NewMoments(3)
	m.Add(x.Data[:40*3], 40)
	m.Add(x.Data[40*3:], 61)
	mean, std := m.Result()
	for j := range 3 {
		var s, ss float64
		for r := range 101 {
			s += float64(x.Data[r*3+j])
		}
		mu := s / 101
		for r := range 101 {
			d := float64(x.Data[r*3+j]) - mu
			ss += d * d
		}
		sd := math.Sqrt(ss / 101)
		if j == 2 {
			sd = 1
		}
		if !scalar.EqualWithinAbsOrRel(float64(mean[j]), mu, 1e-6, 1e-6) || !scalar.EqualWithinAbsOrRel(float64(std[j]), sd, 1e-6, 1e-6) {
			t.Errorf("feature %d: mean %v std %v, want %v %v", j, mean[j], std[j], mu, sd)
		}
	}
}

func ExampleParseLayer() {
	for _, s := range []string{"1", "h2", "3"} {
		h, err := ParseLayer(s, 2)
		fmt.Println(h, err)
	}
	// Output:
	// 1 <nil>
	// 2 <nil>
	// 0 train: student layer "3": want a hidden block 1..2 (or h1..h2)
}

// TestNormCDF checks the erf approximation against math.Erf over the range
// that matters (beyond ±8, Φ is 0 or 1 in float32).
func TestNormCDF(t *testing.T) {
	for x := -8.0; x <= 8; x += 1e-3 {
		cdf, pdf := normCDF(x)
		if want := 0.5 * (1 + math.Erf(x/math.Sqrt2)); math.Abs(cdf-want) > 1e-7 {
			t.Fatalf("Φ(%v) = %v, exact %v", x, cdf, want)
		}
		if want := math.Exp(-x*x/2) / math.Sqrt(2*math.Pi); math.Abs(pdf-want) > 1e-15 {
			t.Fatalf("φ(%v) = %v, exact %v", x, pdf, want)
		}
	}
}

// bnOutput recomputes the output of b's last Forward before any fused
// clamp: (x − μ)·rstd·γ + β.
func bnOutput(b *BatchNorm2d) []float32 {
	hw := b.H * b.W
	z := make([]float32, b.x.Rows*b.InSize())
	for r := range b.x.Rows {
		for c := range b.C {
			for q := range hw {
				i := r*b.InSize() + c*hw + q
				z[i] = (b.x.Data[i]-b.mean[c])*b.rstd[c]*b.Gamma.Data[c] + b.Beta.Data[c]
			}
		}
	}
	return z
}

// oneGroup makes l treat a batch as one sample group, so that its chunks
// hold several samples, and if cs > 0 sets the samples per chunk.
func oneGroup(l *Conv2d, cs int) *Conv2d {
	l.maxGroups = 1
	if cs > 0 {
		l.cs = cs
	}
	return l
}

func mustConv(l *Conv2d, err error) *Conv2d {
	if err != nil {
		panic(err)
	}
	return l
}

// TestConv2dMatchesNaive compares Conv2d's forward with the definition
// evaluated directly in float64, for each case of TestLayerGradients.
func TestConv2dMatchesNaive(t *testing.T) {
	for _, tc := range layerCases() {
		l, ok := tc.make().(*Conv2d)
		if !ok {
			continue
		}
		rng := rand.New(rand.NewPCG(5, 5))
		NewParams(l.Params()...)
		l.Init(rng)
		const n = 3
		x := randMat(rng, n, l.InSize(), 1)
		y := Mat{Rows: n, Cols: l.OutSize(), Data: make([]float32, n*l.OutSize())}
		l.Forward(y, x)
		cg, fg := l.C/l.Groups, l.F/l.Groups
		for r := range n {
			for f := range l.F {
				g := f / fg
				for i := range l.Ho {
					for j := range l.Wo {
						s := float64(l.Bias.Data[f])
						for c := range cg {
							for u := range l.Kh {
								for v := range l.Kw {
									yy, xx := i*l.Stride-l.Pad+u*l.Dilation, j*l.Stride-l.Pad+v*l.Dilation
									if yy < 0 || yy >= l.H || xx < 0 || xx >= l.W {
										continue
									}
									w := l.Weight.Data[((f*cg+c)*l.Kh+u)*l.Kw+v]
									s += float64(w) * float64(x.Data[r*l.InSize()+((g*cg+c)*l.H+yy)*l.W+xx])
								}
							}
						}
						if got := float64(y.Data[r*l.OutSize()+(f*l.Ho+i)*l.Wo+j]); !scalar.EqualWithinAbsOrRel(got, s, 1e-5, 1e-5) {
							t.Fatalf("%s: y[%d,%d,%d,%d] = %v, want %v", tc.name, r, f, i, j, got, s)
						}
					}
				}
			}
		}
	}
	if _, err := NewConv2d("c", 3, 4, 4, 4, 3, 3, 1, 1, 1, 2); err == nil {
		t.Error("groups 2 of 3 channels accepted")
	}
	if _, err := NewConv2d("c", 1, 2, 2, 1, 5, 5, 1, 0, 1, 1); err == nil {
		t.Error("a 5x5 kernel on a 2x2 input accepted")
	}
}

func mustPool(p *Pool2d, err error) *Pool2d {
	if err != nil {
		panic(err)
	}
	return p
}

// maxPoolGaps returns, per window of the last Forward, the gap between
// its largest and second-largest inputs (a finite-difference step across
// a tie would cross the kink of max).
func maxPoolGaps(l Layer) []float32 {
	p := l.(*Pool2d)
	var gaps []float32
	xs := p.lastX
	for r := range p.rows {
		x := xs.Row(r)
		for c := range p.C {
			for i := range p.Ho {
				for j := range p.Wo {
					best, second := float32(-1e30), float32(-1e30)
					for u := range p.K {
						for w := range p.K {
							if v := x[c*p.H*p.W+(i*p.Stride+u)*p.W+j*p.Stride+w]; v > best {
								best, second = v, best
							} else if v > second {
								second = v
							}
						}
					}
					gaps = append(gaps, best-second)
				}
			}
		}
	}
	return gaps
}

// TestPoolAndBatchNormMatchNaive: max and average pooling against their
// definitions; BatchNorm2d's training output has per-channel mean β and
// variance γ² (biased, over batch and positions), its running statistics
// move by the momentum, and in eval mode it uses them.
func TestPoolAndBatchNormMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	p := mustPool(NewPool2d(true, 2, 5, 5, 2, 2))
	x := randMat(rng, 2, p.InSize(), 1)
	y := Mat{Rows: 2, Cols: p.OutSize(), Data: make([]float32, 2*p.OutSize())}
	p.Forward(y, x)
	if p.Ho != 2 || p.Wo != 2 {
		t.Fatalf("5x5 pooled 2/2: %dx%d, want 2x2 (floor)", p.Ho, p.Wo)
	}
	for r := range 2 {
		for c := range 2 {
			for i := range 2 {
				for j := range 2 {
					want := float32(math.Inf(-1))
					for u := range 2 {
						for v := range 2 {
							want = max(want, x.Data[r*50+c*25+(2*i+u)*5+2*j+v])
						}
					}
					if got := y.Data[r*8+c*4+i*2+j]; got != want {
						t.Fatalf("max pool [%d,%d,%d,%d] = %v, want %v", r, c, i, j, got, want)
					}
				}
			}
		}
	}
	b := NewBatchNorm2d("bn", 3, 2, 2)
	NewParams(b.Params()...)
	copy(b.Gamma.Data, []float32{1, 2, 0.5})
	copy(b.Beta.Data, []float32{0, -1, 3})
	x = randMat(rng, 5, b.InSize(), 2)
	y = Mat{Rows: 5, Cols: b.InSize(), Data: make([]float32, 5*b.InSize())}
	b.Forward(y, x)
	for c := range 3 {
		var s, s2, xs, xs2 float64
		for r := range 5 {
			for q := range 4 {
				v := float64(y.Data[r*12+c*4+q])
				s, s2 = s+v, s2+v*v
				xv := float64(x.Data[r*12+c*4+q])
				xs, xs2 = xs+xv, xs2+xv*xv
			}
		}
		mean, vr := s/20, s2/20-(s/20)*(s/20)
		g, be := float64(b.Gamma.Data[c]), float64(b.Beta.Data[c])
		xm, xv := xs/20, (xs2/20-(xs/20)*(xs/20))*20/19
		if math.Abs(mean-be) > 1e-5 || math.Abs(vr-g*g*(1-1e-5/(xv*19/20+1e-5))) > 1e-3 {
			t.Errorf("channel %d: output mean %v variance %v, want %v and about %v", c, mean, vr, be, g*g)
		}
		if math.Abs(float64(b.RunningMean[c])-0.1*xm) > 1e-5 || math.Abs(float64(b.RunningVar[c])-(0.9+0.1*xv)) > 1e-4 {
			t.Errorf("channel %d: running mean %v var %v, want %v and %v", c, b.RunningMean[c], b.RunningVar[c], 0.1*xm, 0.9+0.1*xv)
		}
	}
	b.SetTraining(false, nil)
	b.Forward(y, x)
	for c := range 3 {
		want := (float64(x.Data[c*4])-float64(b.RunningMean[c]))/math.Sqrt(float64(b.RunningVar[c])+1e-5)*float64(b.Gamma.Data[c]) + float64(b.Beta.Data[c])
		if math.Abs(float64(y.Data[c*4])-want) > 1e-5 {
			t.Errorf("eval channel %d: %v, want %v", c, y.Data[c*4], want)
		}
	}
}

// TestConvLayerAllocs: after the first step, convolution (its im2col
// buffers kept), pooling and batch normalization allocate nothing.
func TestConvLayerAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, l := range []Layer{mustConv(NewConv2d("c", 3, 8, 8, 6, 3, 3, 1, 1, 1, 3)), mustPool(NewPool2d(true, 3, 8, 8, 2, 2)),
		mustPool(NewPool2d(false, 3, 8, 8, 2, 2)), NewGlobalAvgPool(3, 8, 8), NewBatchNorm2d("bn", 3, 8, 8)} {
		NewParams(l.Params()...)
		if c, ok := l.(*Conv2d); ok {
			c.Init(rng)
		}
		x := randMat(rng, 4, l.InSize(), 1)
		y := Mat{Rows: 4, Cols: l.OutSize(), Data: make([]float32, 4*l.OutSize())}
		dx := Mat{Rows: 4, Cols: l.InSize(), Data: make([]float32, 4*l.InSize())}
		step := func() {
			l.Forward(y, x)
			l.Backward(dx, y)
		}
		step()
		if n := testing.AllocsPerRun(10, step); n != 0 {
			t.Errorf("%T: a step allocates %v times", l, n)
		}
	}
}

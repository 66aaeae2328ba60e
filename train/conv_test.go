package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// TestConvPaths pins which way Conv2d computes each gradient-checked case
// (see its doc), so the checks keep covering every path.
func TestConvPaths(t *testing.T) {
	want := map[string]string{
		"Conv2d/3x3-pad1":                    "grid",
		"Conv2d/stride2-dilation2":           "im2col",
		"Conv2d/groups2":                     "grid",
		"Conv2d/depthwise":                   "direct",
		"Conv2d/depthwise-stride2":           "direct",
		"Conv2d/depthwise-stride3-dilation2": "direct",
		"Conv2d/depthwise-1x1-stride2":       "direct",
		"Conv2d/1-channel-5x5":               "direct",
		"Conv2d/1x1-chunk":                   "1x1 chunk",
		"Conv2d/1x1-per-sample":              "1x1",
		"Conv2d/grid-chunk":                  "grid chunk",
		"Conv2d/grid-per-sample-dilation2":   "grid",
	}
	seen := 0
	for _, tc := range layerCases() {
		l, ok := tc.make().(*Conv2d)
		if !ok {
			continue
		}
		seen++
		got := convPath(l, 3)
		if got != want[tc.name] {
			t.Errorf("%s: path %q, want %q", tc.name, got, want[tc.name])
		}
	}
	if seen != len(want) {
		t.Errorf("%d Conv2d cases, want %d", seen, len(want))
	}
}

// convPath names the path l takes for a batch of n samples, with
// "chunk" when a chunk holds several samples.
func convPath(l *Conv2d, n int) string {
	path := "im2col"
	switch {
	case l.direct:
		return "direct"
	case l.oneByOne:
		path = "1x1"
	case l.gridded:
		path = "grid"
	}
	groups := min(n, convMaxGroups)
	if l.maxGroups > 0 {
		groups = min(groups, l.maxGroups)
	}
	if l.cs > 1 && n/groups > 1 {
		path += " chunk"
	}
	return path
}

// convConfigs are convolutions at the sizes of the CNN presets (and the
// im2col path), for the tests at a realistic batch.
var convConfigs = []struct {
	name                                       string
	c, h, w, f, kh, kw, stride, pad, dil, grps int
}{
	{"tiny-conv2", 8, 14, 14, 16, 3, 3, 1, 1, 1, 1},
	{"tiny-conv3", 16, 7, 7, 32, 3, 3, 1, 1, 1, 1},
	{"lenet5-conv2", 6, 14, 14, 16, 5, 5, 1, 0, 1, 1},
	{"stem", 1, 28, 28, 16, 3, 3, 1, 1, 1, 1},
	{"dw-s2", 16, 28, 28, 16, 3, 3, 2, 1, 1, 16},
	{"dw", 32, 7, 7, 32, 3, 3, 1, 1, 1, 32},
	{"1x1-14", 16, 14, 14, 32, 1, 1, 1, 0, 1, 1},
	{"1x1-4", 64, 4, 4, 128, 1, 1, 1, 0, 1, 1},
	{"strided", 4, 9, 9, 6, 3, 3, 2, 1, 1, 1},
	{"grouped", 8, 6, 6, 4, 3, 3, 1, 1, 1, 2},
}

// TestConv2dBatchMatchesSamples runs each of convConfigs on a batch of 41
// (16 sample groups of 2 and 3, chunks of several samples) and on each
// sample alone: the outputs and dx agree within float32 rounding, and the
// weight and bias gradients with the float64 sum of the per-sample ones.
// The sums have up to 41·Ho·Wo terms of O(1): 1e-4 relative or 1e-3
// absolute allows their float32 rounding.
func TestConv2dBatchMatchesSamples(t *testing.T) {
	const n = 41
	for _, cfg := range convConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			l := mustConv(NewConv2d("c", cfg.c, cfg.h, cfg.w, cfg.f, cfg.kh, cfg.kw, cfg.stride, cfg.pad, cfg.dil, cfg.grps))
			NewParams(l.Params()...)
			rng := rand.New(rand.NewPCG(6, 6))
			l.Init(rng)
			x := randMat(rng, n, l.InSize(), 1)
			dy := randMat(rng, n, l.OutSize(), 1)
			y := Mat{Rows: n, Cols: l.OutSize(), Data: make([]float32, n*l.OutSize())}
			dx := Mat{Rows: n, Cols: l.InSize(), Data: make([]float32, n*l.InSize())}
			l.Forward(y, x)
			l.Backward(dx, Mat{Rows: n, Cols: l.OutSize(), Data: append([]float32(nil), dy.Data...)})
			gw, gb := append([]float32(nil), l.Weight.Grad...), append([]float32(nil), l.Bias.Grad...)
			sw, sb := make([]float64, len(gw)), make([]float64, len(gb))
			y1 := Mat{Rows: 1, Cols: l.OutSize(), Data: make([]float32, l.OutSize())}
			dx1 := Mat{Rows: 1, Cols: l.InSize(), Data: make([]float32, l.InSize())}
			for r := range n {
				l.Forward(y1, Mat{Rows: 1, Cols: l.InSize(), Data: x.Row(r)})
				l.Backward(dx1, Mat{Rows: 1, Cols: l.OutSize(), Data: append([]float32(nil), dy.Row(r)...)})
				for i, v := range y1.Data {
					if got := y.Row(r)[i]; !scalar.EqualWithinAbsOrRel(float64(got), float64(v), 1e-5, 1e-5) {
						t.Fatalf("sample %d: y[%d] = %v in the batch, %v alone", r, i, got, v)
					}
				}
				for i, v := range dx1.Data {
					if got := dx.Row(r)[i]; !scalar.EqualWithinAbsOrRel(float64(got), float64(v), 1e-5, 1e-5) {
						t.Fatalf("sample %d: dx[%d] = %v in the batch, %v alone", r, i, got, v)
					}
				}
				for i, v := range l.Weight.Grad {
					sw[i] += float64(v)
				}
				for i, v := range l.Bias.Grad {
					sb[i] += float64(v)
				}
			}
			for i := range gw {
				if !scalar.EqualWithinAbsOrRel(float64(gw[i]), sw[i], 1e-3, 1e-4) {
					t.Fatalf("dW[%d] = %v, per-sample sum %v", i, gw[i], sw[i])
				}
			}
			for i := range gb {
				if !scalar.EqualWithinAbsOrRel(float64(gb[i]), sb[i], 1e-3, 1e-4) {
					t.Fatalf("db[%d] = %v, per-sample sum %v", i, gb[i], sb[i])
				}
			}
		})
	}
}

// TestCNNThreadsAgree: a training step of each preset (and a spec with
// both pooling kinds, a strided and a grouped convolution) gives the same
// logits, dx, parameter gradients and updated parameters, bit for bit, on
// 1, 2 and 3 threads, through CNN's Sequential (fused activations) and
// through Train's step (the Student's layer loop): every sum runs over
// fixed sample groups or channels in a fixed order.
func TestCNNThreadsAgree(t *testing.T) {
	defer SetThreads(Threads())
	for _, arch := range []string{"tiny", "dws", "lenet5", "conv3x3:8:s2,relu,conv3x3:8,bn,maxpool2,conv1x1:6,avgpool2,flatten,fc:10"} {
		t.Run(arch[:min(len(arch), 8)], func(t *testing.T) {
			var first, firstStudent []float32
			for _, threads := range []int{1, 2, 3} {
				SetThreads(threads)
				s := newCNNStep(t, arch, 37, 3)
				s.net.Forward(s.y, s.x)
				if _, err := s.kd.Loss(s.dlogit, s.y, &s.t, nil); err != nil {
					t.Fatal(err)
				}
				dx := Mat{Rows: s.x.Rows, Cols: s.x.Cols, Data: make([]float32, len(s.x.Data))}
				s.net.Backward(dx, s.dlogit)
				got := append(append(append([]float32(nil), s.y.Data...), dx.Data...), s.ps.Grad...)

				tr, bt := newCNNTrainer(t, arch, 37, 3)
				if _, err := tr.step(bt, 1e-3); err != nil {
					t.Fatal(err)
				}
				student := append(append([]float32(nil), tr.s.Params.Grad...), tr.s.Params.Data...)
				if first == nil {
					first, firstStudent = got, student
					continue
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(first[i]) {
						t.Fatalf("%d threads: value %d (of logits, dx, gradients) = %v, 1 thread gave %v", threads, i, got[i], first[i])
					}
				}
				for i := range student {
					if math.Float32bits(student[i]) != math.Float32bits(firstStudent[i]) {
						t.Fatalf("%d threads: Train's step: value %d (of gradients, parameters) = %v, 1 thread gave %v", threads, i, student[i], firstStudent[i])
					}
				}
			}
		})
	}
}

// TestCNNStepAllocs: after the first, a whole training step of each
// preset (forward, KD loss, backward, AdamW) allocates nothing, on 1 and
// 2 threads, through CNN's Sequential and through Train's step.
func TestCNNStepAllocs(t *testing.T) {
	defer SetThreads(Threads())
	for _, threads := range []int{1, 2} {
		for _, arch := range []string{"tiny", "dws", "lenet5"} {
			t.Run(fmt.Sprintf("%s/threads=%d", arch, threads), func(t *testing.T) {
				SetThreads(threads)
				s := newCNNStep(t, arch, 32, 1)
				s.run(t)
				if a := testing.AllocsPerRun(5, func() { s.run(t) }); a != 0 {
					t.Errorf("a step allocates %v times", a)
				}
				tr, bt := newCNNTrainer(t, arch, 32, 1)
				step := func() {
					if _, err := tr.step(bt, 1e-3); err != nil {
						t.Fatal(err)
					}
				}
				step()
				if a := testing.AllocsPerRun(5, step); a != 0 {
					t.Errorf("Train's step allocates %v times", a)
				}
			})
		}
	}
}

package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// refAT is attention transfer evaluated in float64 straight from its
// definition (Zagoruyko & Komodakis 2017, p = 2): per sample the spatial
// map q_k = Σ_c A_ck² of each side, normalized to unit L2 norm, and
// weight/n · Σ_r ‖a_s − a_t‖²; it also returns the squared distances.
func refAT(s, t []float64, n, hw int, weight float64) (float64, []float64) {
	amap := func(m []float64) []float64 {
		q := make([]float64, hw)
		for i, v := range m {
			q[i%hw] += v * v
		}
		var nn float64
		for _, v := range q {
			nn += v * v
		}
		for k := range q {
			q[k] /= math.Sqrt(nn)
		}
		return q
	}
	cs, ct := len(s)/n, len(t)/n
	var total float64
	var dist []float64
	for r := range n {
		as, at := amap(s[r*cs:(r+1)*cs]), amap(t[r*ct:(r+1)*ct])
		var e float64
		for k := range as {
			e += (as[k] - at[k]) * (as[k] - at[k])
		}
		dist = append(dist, e)
		total += e
	}
	return weight * total / float64(n), dist
}

// TestAttentionTransfer checks attentionTransfer's value, row shares and
// gradient against a float64 evaluation of the formula (the gradient by
// finite differences of it), its weight convention against the reference
// code's β/2·mean over batch and positions, and a sample whose map is all
// zero (no NaN: the loss is that of a_s = 0, its gradient 0).
func TestAttentionTransfer(t *testing.T) {
	const n, cs, ct, hw, w = 3, 3, 5, 6, 0.8 // channel counts differ: AT compares positions only
	rng := rand.New(rand.NewPCG(3, 3))
	s, tm := randMat(rng, n, cs*hw, 1), randMat(rng, n, ct*hw, 1)
	grad := Mat{Rows: n, Cols: cs * hw, Data: make([]float32, n*cs*hw)}
	rowLoss := make([]float64, n)
	buf := make([]float64, 2*hw)
	got := attentionTransfer(grad, s, tm, hw, w, rowLoss, buf)
	want, dist := refAT(f64(s.Data), f64(tm.Data), n, hw, w)
	if !scalar.EqualWithinAbsOrRel(got, want, 1e-12, 1e-9) {
		t.Errorf("loss %v, formula %v", got, want)
	}
	for r := range n {
		if !scalar.EqualWithinAbsOrRel(rowLoss[r], w*dist[r], 1e-12, 1e-9) {
			t.Errorf("row %d: share %v, formula %v", r, rowLoss[r], w*dist[r])
		}
	}
	fdGrad := fd.Gradient(nil, func(v []float64) float64 {
		l, _ := refAT(v, f64(tm.Data), n, hw, w)
		return l
	}, f64(s.Data), &fd.Settings{Formula: fd.Central, Step: 1e-6})
	for i := range fdGrad {
		if !scalar.EqualWithinAbsOrRel(float64(grad.Data[i]), fdGrad[i], 1e-6, 1e-4) {
			t.Errorf("dL/dA[%d] = %v, finite differences %v", i, grad.Data[i], fdGrad[i])
		}
	}

	// The reference code, at_loss = (at(x) − at(y)).pow(2).mean() times
	// β/2: weight β/(2·hw) gives the same term.
	const beta = 1000.0
	var mean float64
	for _, e := range dist {
		mean += e / (n * hw)
	}
	if got := attentionTransfer(grad, s, tm, hw, beta/(2*hw), nil, buf); !scalar.EqualWithinAbsOrRel(got, beta/2*mean, 1e-9, 1e-9) {
		t.Errorf("weight β/(2·hw): %v, β/2·mean %v", got, beta/2*mean)
	}

	// A dead student map: a_s = 0, so the distance is ‖a_t‖² = 1.
	clear(s.Row(1))
	clear(rowLoss)
	attentionTransfer(grad, s, tm, hw, w, rowLoss, buf)
	for i, g := range grad.Row(1) {
		if g != 0 {
			t.Errorf("dead map: gradient[%d] = %v", i, g)
		}
	}
	if !scalar.EqualWithinAbsOrRel(rowLoss[1], w, 1e-12, 1e-12) {
		t.Errorf("dead map: row loss %v, want %v", rowLoss[1], w)
	}
}

// TestFeatureHeadGradients checks every path of a feature pair — the
// Linear of a flat output, the 1×1 Conv2d regressor with the student's or
// the teacher's map average-pooled to match, attention transfer with and
// without pooling — against finite differences: dL/dx (what flows into
// the student layer) and the projection's parameter gradients; and that
// the row shares sum to the loss.
func TestFeatureHeadGradients(t *testing.T) {
	const n, w = 3, 0.7
	for _, tc := range []struct {
		name    string
		student []int
		teacher []int64
		loss    FeatureLoss
		params  int // projection values
	}{
		{"flat-mse", []int{6}, []int64{4}, MSE, 6*4 + 4},
		{"flat-cosine-teacher-map", []int{5}, []int64{2, 2, 2}, Cosine, 5*8 + 8},
		{"map-mse", []int{3, 2, 3}, []int64{4, 2, 3}, MSE, 3*4 + 4},
		{"map-cosine-pool-student", []int{3, 4, 6}, []int64{2, 2, 3}, Cosine, 3*2 + 2},
		{"map-mse-pool-teacher", []int{2, 2, 2}, []int64{3, 4, 4}, MSE, 2*3 + 3},
		{"at", []int{3, 2, 3}, []int64{5, 2, 3}, AT, 0},
		{"at-pool-student", []int{2, 6, 6}, []int64{4, 2, 2}, AT, 0},
		{"at-pool-teacher", []int{2, 2, 3}, []int64{3, 4, 6}, AT, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := newFeatureHead(0, tc.student, tc.teacher, tc.loss)
			if err != nil {
				t.Fatal(err)
			}
			ps := NewParams(h.Params()...)
			if len(ps.Data) != tc.params {
				t.Fatalf("%d projection values, want %d", len(ps.Data), tc.params)
			}
			rng := rand.New(rand.NewPCG(5, 5))
			h.Init(rng)
			h.alloc(n)
			x := randMat(rng, n, h.In, 1)
			target := randMat(rng, n, h.D, 1)
			dx := Mat{Rows: n, Cols: h.In, Data: make([]float32, n*h.In)}
			rowLoss := make([]float64, n)
			loss := h.step(dx, x, target, w, rowLoss)
			var shares float64
			for _, l := range rowLoss {
				shares += l / n
			}
			if !(loss > 0) || !scalar.EqualWithinAbsOrRel(shares, loss, 1e-9, 1e-9) {
				t.Errorf("loss %v, mean row share %v", loss, shares)
			}
			scratch := Mat{Rows: n, Cols: h.In, Data: make([]float32, n*h.In)}
			f := func() float64 { return h.step(scratch, x, target, w, nil) }
			checkParamGradients(t, tc.name, h.Params(), f)
			// checkParamGradients leaves the gradients of its last
			// evaluation; dx was computed before it.
			want := fd.Gradient(nil, func(v []float64) float64 {
				old := append([]float32(nil), x.Data...)
				for i := range v {
					x.Data[i] = float32(v[i])
				}
				l := f()
				copy(x.Data, old)
				return l
			}, f64(x.Data), &fd.Settings{Formula: central5, Step: fdStep})
			for i := range want {
				if !scalar.EqualWithinAbsOrRel(float64(dx.Data[i]), want[i], gradAbs, gradRel) {
					t.Errorf("dL/dx[%d] = %.6g, finite differences %.6g", i, dx.Data[i], want[i])
				}
			}
		})
	}
}

// TestFeatureHeadErrors: pairs that cannot meet are refused with a
// message that names the shapes and what to choose instead.
func TestFeatureHeadErrors(t *testing.T) {
	for _, tc := range []struct {
		student []int
		teacher []int64
		loss    FeatureLoss
		want    string
	}{
		{[]int{32, 3, 3}, []int64{64, 7, 7}, MSE, "not by the same integer factor"},
		{[]int{8, 14, 14}, []int64{64, 7, 14}, AT, "not by the same integer factor"},
		{[]int{8, 4, 4}, []int64{128}, MSE, "not a [C,H,W] map"},
		{[]int{288}, []int64{64, 7, 7}, AT, "choose a layer before flatten, gap or fc"},
	} {
		_, err := newFeatureHead(0, tc.student, tc.teacher, tc.loss)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("student %v, teacher %v, %s: %v, want %q", tc.student, tc.teacher, tc.loss, err, tc.want)
		}
	}
}

// TestCNNTokenOutputs checks the outputs a cnn feature pair can read: the
// per-sample shape of each token of the tiny preset on MNIST, flatten
// sharing its input's activation.
func TestCNNTokenOutputs(t *testing.T) {
	s, err := NewStudent(Config{Type: "cnn", Arch: "tiny", Inputs: 784, InputShape: []int{1, 28, 28}, Classes: 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: "[8 28 28]", 2: "[8 28 28]", 3: "[8 14 14]", 7: "[16 7 7]", 10: "[32 7 7]", 11: "[32 3 3]", 12: "[288]", 13: "[10]"}
	for k, sh := range want {
		if got := fmt.Sprint(s.tapShape(k)); got != sh {
			t.Errorf("token %d: shape %s, want %s", k, got, sh)
		}
	}
	if s.blocks[12] != s.blocks[11] || s.blocks[13] != len(s.Layers) {
		t.Errorf("activation slots %v: flatten must share the maxpool's, the fc is the last layer (%d)", s.blocks, len(s.Layers))
	}
}

// TestCNNFeatureBackward checks that a feature pair's gradient reaches
// the student layer it reads: the parameter gradients of a cnn student
// (BatchNorm with batch statistics, average pooling) under
// Σ logits·R + three pairs — a 1×1 regressor on a pooled map, attention
// transfer on a BatchNorm output pooled to the teacher's size, a Linear on
// a flatten — against finite differences of that whole sum.
func TestCNNFeatureBackward(t *testing.T) {
	const n = 4
	s, err := NewStudent(Config{Type: "cnn", Arch: "conv3x3:3,bn,avgpool2,conv3x3:4,flatten,fc:3", Inputs: 36, InputShape: []int{1, 6, 6}, Classes: 3}, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.SetTraining(true, nil)
	pairs := []struct {
		token   int
		teacher []int64
		loss    FeatureLoss
	}{
		{2, []int64{5, 3, 3}, MSE}, // avgpool2 [3,3,3]
		{1, []int64{2, 3, 3}, AT},  // bn [3,6,6], pooled by 2
		{4, []int64{6}, Cosine},    // flatten [36]
	}
	rng := rand.New(rand.NewPCG(9, 9))
	var heads []*featureHead
	var targets []Mat
	for j, p := range pairs {
		h, err := newFeatureHead(j, s.tapShape(p.token), p.teacher, p.loss)
		if err != nil {
			t.Fatal(err)
		}
		NewParams(h.Params()...)
		h.Init(rng)
		h.alloc(n)
		heads = append(heads, h)
		targets = append(targets, randMat(rng, n, h.D, 1))
	}
	x := randMat(rng, n, 36, 1)
	R := randMat(rng, n, 3, 1)
	taps := make([]Mat, len(s.blocks))
	f := func(backward bool) float64 {
		logits := s.Forward(x)
		var l float64
		for i, v := range logits.Data[:n*3] {
			l += float64(v) * float64(R.Data[i])
		}
		for j, p := range pairs {
			dx := Mat{Rows: n, Cols: heads[j].In, Data: make([]float32, n*heads[j].In)}
			l += heads[j].step(dx, s.tapOut(p.token), targets[j], 0.5, nil)
			taps[p.token] = dx
		}
		if backward {
			s.Backward(Mat{Rows: n, Cols: 3, Data: append([]float32(nil), R.Data...)}, taps)
		}
		return l
	}
	f(true)
	checkParamGradients(t, "student", s.Params.List, func() float64 { return f(false) })
}

// mapCache is imageCache (8×8 one-channel images) with a [3,4,4] teacher
// map "h" (tanh of random linear functions of the pixels).
func mapCache(t testing.TB, dir string, rows int, seed uint64) Source {
	return smallCache(t, dir, func(s *synth) {
		s.Rows, s.Inputs, s.Seed, s.Shape = rows, 64, seed, []int64{1, 8, 8}
		s.Hidden, s.HiddenShape, s.RowsPerPart = 48, []int64{3, 4, 4}, rows
	})
}

// TestCNNFeatureTrain trains a cnn student with feature pairs on a cached
// [3,4,4] teacher map: FitNets (a 1×1 regressor) from an 8×8 ReLU map
// pooled to 4×4 and from a maxpool's 4×4 map, and attention transfer. The
// feature term is reported per epoch and decreases; the regressors are
// in state.safetensors (AT has none), not in the model; a run stopped
// after epoch 2 and resumed writes the same bytes as an uninterrupted one.
func TestCNNFeatureTrain(t *testing.T) {
	tmp := t.TempDir()
	data := mapCache(t, filepath.Join(tmp, "train"), 400, 1)
	cfg := Config{Type: "cnn", Arch: "conv3x3:4,bn,relu,maxpool2,flatten,fc:4"}
	for _, tc := range []struct {
		loss  FeatureLoss
		pairs []FeaturePair
		state string // the projections' tensors in state.safetensors
	}{
		{MSE, []FeaturePair{{Teacher: "h", Layer: 2}, {Teacher: "h", Layer: 3, Weight: 0.5}},
			"feature.0.weight [3 4 1 1] feature.0.bias [3] feature.1.weight [3 4 1 1] feature.1.bias [3]"},
		{AT, []FeaturePair{{Teacher: "h", Layer: 2, Weight: 2}}, ""},
	} {
		t.Run(string(tc.loss), func(t *testing.T) {
			run := func(name string) Options {
				return Options{Epochs: 4, BatchSize: 32, LR: 3e-3, Alpha: 0.5, Temperature: 2, Seed: 3, Threads: 1,
					Features: tc.pairs, FeatureLoss: tc.loss, Out: filepath.Join(tmp, string(tc.loss), name)}
			}
			a := trainFiles(t, data, cfg, run("a"))
			c, err := Load(run("a").Out)
			if err != nil {
				t.Fatal(err)
			}
			m := c.Info.Metrics
			for _, e := range m {
				t.Logf("epoch %d: loss %.4f, feature %.4f", e.Epoch, e.TrainLoss, e.TrainFeature)
			}
			if !(m[0].TrainFeature > 0) || !(m[3].TrainFeature < 0.9*m[0].TrainFeature) || !(m[0].TrainFeature < m[0].TrainLoss) {
				t.Errorf("feature term %v → %v (loss %v): not reported or not decreasing", m[0].TrainFeature, m[3].TrainFeature, m[0].TrainLoss)
			}
			var state []string
			for _, p := range c.State {
				if strings.HasPrefix(p.Name, "feature.") {
					state = append(state, fmt.Sprint(p.Name, " ", p.Shape))
				}
			}
			if got := strings.Join(state, " "); got != tc.state {
				t.Errorf("state.safetensors projections %q, want %q", got, tc.state)
			}
			for _, p := range c.Student.Tensors() {
				if strings.HasPrefix(p.Name, "feature.") {
					t.Errorf("the model holds %s", p.Name)
				}
			}

			o := run("b")
			trainStopped(t, data, cfg, o, 2)
			o.Resume = true
			if _, err := Train(context.Background(), cfg, data, &o); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, a, readDir(t, o.Out))
		})
	}
}

// TestATNeedsMaps: attention transfer is refused for students without
// convolutional maps, naming the losses that work.
func TestATNeedsMaps(t *testing.T) {
	images := imageCache(t, filepath.Join(t.TempDir(), "img"), 100, 1)
	_, err := TrainLM(context.Background(), TransformerConfig{}, images, &Options{FeatureLoss: AT}, nil)
	if err == nil || !strings.Contains(err.Error(), "a transformer has none; use mse or cosine") {
		t.Errorf("TrainLM with at: %v", err)
	}
}

// TestFeatureHeadAllocs checks that a cnn feature pair's step — pooling
// either map, the 1×1 regressor, attention transfer — allocates nothing
// once its buffers exist (one thread: the gemm package may start
// goroutines).
func TestFeatureHeadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	defer SetThreads(Threads())
	SetThreads(1)
	const n = 8
	for _, tc := range []struct {
		student []int
		teacher []int64
		loss    FeatureLoss
	}{
		{[]int{4, 8, 8}, []int64{6, 4, 4}, MSE},
		{[]int{4, 4, 4}, []int64{6, 8, 8}, Cosine},
		{[]int{4, 8, 8}, []int64{6, 4, 4}, AT},
	} {
		h, err := newFeatureHead(0, tc.student, tc.teacher, tc.loss)
		if err != nil {
			t.Fatal(err)
		}
		NewParams(h.Params()...)
		rng := rand.New(rand.NewPCG(1, 1))
		h.Init(rng)
		h.alloc(n)
		x, target := randMat(rng, n, h.In, 1), randMat(rng, n, h.D, 1)
		dx := Mat{Rows: n, Cols: h.In, Data: make([]float32, n*h.In)}
		rowLoss := make([]float64, n)
		if allocs := testing.AllocsPerRun(10, func() { h.step(dx, x, target, 1, rowLoss) }); allocs != 0 {
			t.Errorf("%v → %v, %s: %v allocations per step", tc.student, tc.teacher, tc.loss, allocs)
		}
	}
}

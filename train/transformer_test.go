package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// TestTransformerGradients checks the whole model's Backward against
// central finite differences of f = Σ R ⊙ logits + Σ Rh ⊙ hidden states
// (embeddings and the last block's output) on a tiny config (two
// sequences, two layers, grouped-query attention), tied and untied: every
// parameter value of every tensor. Weights are drawn at 0.3 so that the
// attention and the gates are far from uniform.
func TestTransformerGradients(t *testing.T) {
	for _, untied := range []bool{false, true} {
		cfg := TransformerConfig{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 6, T: 4, Untied: untied}
		m, err := NewTransformer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		NewParams(m.Params()...)
		rng := rand.New(rand.NewPCG(3, 3))
		for _, p := range m.Params() {
			for i := range p.Data {
				p.Data[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
		ids := []int32{1, 4, 4, 9, 0, 10, 3, 7}
		n := len(ids)
		R := randMat(rng, n, cfg.Vocab, 1)
		// A loss on the hidden states too (hidden-state distillation):
		// Σ Rh ⊙ Hidden(l) for l = 0 (embeddings) and l = 2 (the last block).
		Rh := []Mat{randMat(rng, n, cfg.Dim, 1), {}, randMat(rng, n, cfg.Dim, 1)}
		y := Mat{Rows: n, Cols: cfg.Vocab, Data: make([]float32, n*cfg.Vocab)}
		f := func() float64 {
			m.Forward(y, ids)
			var s float64
			for i, v := range y.Data {
				s += float64(v) * float64(R.Data[i])
			}
			for l, rh := range Rh {
				for i, v := range rh.Data {
					s += float64(v) * float64(m.Hidden(l).Data[i])
				}
			}
			return s
		}
		f()
		m.Backward(Mat{Rows: n, Cols: cfg.Vocab, Data: append([]float32(nil), R.Data...)}, Rh)
		for _, p := range m.Params() {
			grad := append([]float32(nil), p.Grad...)
			want := fd.Gradient(nil, func(v []float64) float64 {
				old := append([]float32(nil), p.Data...)
				for i := range p.Data {
					p.Data[i] = float32(v[i])
				}
				s := f()
				copy(p.Data, old)
				return s
			}, f64(p.Data), &fd.Settings{Formula: fd.Central, Step: fdStep})
			bad := 0
			for i := range want {
				if !scalar.EqualWithinAbsOrRel(float64(grad[i]), want[i], gradAbs, gradRel) {
					if bad++; bad <= 3 {
						t.Errorf("untied %v: d/d%s[%d] = %.6g, finite differences %.6g", untied, p.Name, i, grad[i], want[i])
					}
				}
			}
		}
	}
}

// BenchmarkTransformerStep times one forward and backward of issue 12's
// half-size student (dim 48, 4 layers, 4 heads, 2 KV heads, SwiGLU 128,
// vocabulary 512: 126k parameters) on a batch of 32 windows of 256 tokens,
// with a dense KD loss at T = 1, and reports tokens/s (the PyTorch peer,
// torch_seq_kd_train.py, is quoted at about 45k tokens/s on this kind of
// machine with 2 threads).
func BenchmarkTransformerStep(b *testing.B) {
	cfg := TransformerConfig{Vocab: 512, Dim: 48, Layers: 4, Heads: 4, KVHeads: 2, FFN: 128, T: 256}
	m, err := NewTransformer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	NewParams(m.Params()...)
	rng := rand.New(rand.NewPCG(1, 1))
	m.Init(rng)
	const n = 32 * 256
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.Vocab))
	}
	teacher := randMat(rng, n, cfg.Vocab, 2)
	tg := &Targets{Logits: teacher.Data}
	logits := Mat{Rows: n, Cols: cfg.Vocab, Data: make([]float32, n*cfg.Vocab)}
	grad := Mat{Rows: n, Cols: cfg.Vocab, Data: make([]float32, n*cfg.Vocab)}
	kd := &KD{Temperature: 1, Alpha: 1}
	for b.Loop() {
		m.Forward(logits, ids)
		if _, err := kd.Loss(grad, logits, tg, nil); err != nil {
			b.Fatal(err)
		}
		m.Backward(grad, nil)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// TestTransformerParamLayouts checks the products Forward and Backward run
// as one over neighbouring parameters (q|k|v, gate|up; see contiguous)
// against the one-by-one products of the same model with its storage laid
// out in reverse order: the same logits and gradients up to rounding.
func TestTransformerParamLayouts(t *testing.T) {
	cfg := TransformerConfig{Vocab: 13, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 6, T: 5}
	ids := []int32{1, 4, 12, 9, 0, 10, 3, 7, 7, 2}
	run := func(reverse bool) ([]float32, [][]float32) {
		m, err := NewTransformer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ps := m.Params()
		if reverse {
			ps = slices.Clone(ps)
			slices.Reverse(ps)
		}
		NewParams(ps...)
		if _, _, ok := contiguous(m.Blocks[0].Wq, m.Blocks[0].Wk, m.Blocks[0].Wv); ok == reverse {
			t.Fatalf("reverse %v: q, k, v contiguous %v", reverse, ok)
		}
		m.Init(rand.New(rand.NewPCG(4, 4)))
		y := Mat{Rows: len(ids), Cols: cfg.Vocab, Data: make([]float32, len(ids)*cfg.Vocab)}
		m.Forward(y, ids)
		dy := randMat(rand.New(rand.NewPCG(5, 5)), len(ids), cfg.Vocab, 1)
		m.Backward(dy, nil)
		var grads [][]float32
		for _, p := range m.Params() {
			grads = append(grads, slices.Clone(p.Grad))
		}
		return slices.Clone(y.Data), grads
	}
	y1, g1 := run(false)
	y2, g2 := run(true)
	for i := range y1 {
		if math.Abs(float64(y1[i]-y2[i])) > 1e-6 {
			t.Fatalf("logit %d: %v fused, %v one by one", i, y1[i], y2[i])
		}
	}
	for p := range g1 {
		for i := range g1[p] {
			if d := math.Abs(float64(g1[p][i] - g2[p][i])); d > 1e-6*math.Max(1, math.Abs(float64(g1[p][i]))) {
				t.Fatalf("parameter %d value %d: gradient %v fused, %v one by one", p, i, g1[p][i], g2[p][i])
			}
		}
	}
}

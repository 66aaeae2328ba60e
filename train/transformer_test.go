package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

// gradientConfigs are the tiny configurations of the whole-model checks
// (two sequences of 4, two layers, grouped-query attention: two query
// heads on one KV head): Llama's, tied and untied, each of GPT-2's options
// alone, and mixed ones.
func gradientConfigs() []TransformerConfig {
	base := TransformerConfig{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 6, T: 4}
	var cs []TransformerConfig
	for _, o := range []struct {
		untied         bool
		norm, mlp, pos string
	}{
		{false, "", "", ""}, {true, "", "", ""},
		{false, NormLayer, "", ""}, {false, "", MLPGELU, ""}, {false, "", "", PosLearned},
		{true, NormLayer, MLPGELU, PosLearned}, {false, NormLayer, "", PosLearned}, {true, "", MLPGELU, PosLearned},
	} {
		c := base
		c.Untied, c.Norm, c.MLP, c.Pos = o.untied, o.norm, o.mlp, o.pos
		cs = append(cs, c)
	}
	return cs
}

// central5 is the fourth-order central difference
//
//	f'(x) ≈ (f(x−2h) − 8·f(x−h) + 8·f(x+h) − f(x+2h)) / 12h,
//
// truncation error h⁴·f⁽⁵⁾/30 (Abramowitz & Stegun §25.3): at the
// whole model's curvature, fd.Central's h²·f”'/6 reaches the tolerance
// at fdStep (float32 allows no smaller step), this does not.
var central5 = fd.Formula{Stencil: []fd.Point{{Loc: -2, Coeff: 1.0 / 12}, {Loc: -1, Coeff: -8.0 / 12}, {Loc: 1, Coeff: 8.0 / 12}, {Loc: 2, Coeff: -1.0 / 12}},
	Derivative: 1, Step: fdStep}

// randomTransformer returns a Transformer of cfg with its weights drawn
// from N(0, std²), its norms' gains from 1 + N(0, 0.3²) and LayerNorm's
// biases from N(0, 0.3²): gains near 0 would leave the norms' outputs near
// 0 and their curvature (1/σ) large.
func randomTransformer(t testing.TB, cfg TransformerConfig, rng *rand.Rand, std float64) *Transformer {
	t.Helper()
	m, err := NewTransformer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	NewParams(m.Params()...)
	for _, p := range m.Params() {
		gain := len(p.Shape) == 1 && strings.HasSuffix(p.Name, ".weight")
		for i := range p.Data {
			switch {
			case gain:
				p.Data[i] = float32(1 + 0.3*rng.NormFloat64())
			case len(p.Shape) == 1:
				p.Data[i] = float32(0.3 * rng.NormFloat64())
			default:
				p.Data[i] = float32(std * rng.NormFloat64())
			}
		}
	}
	return m
}

// TestTransformerGradients checks the whole model's Backward against
// central finite differences of f = Σ R ⊙ logits + Σ Rh ⊙ hidden states
// (embeddings and the last block's output) on each of gradientConfigs:
// every parameter value of every tensor. f weighs the logits of every
// position, so each query's masked (future) scores are in the check too.
// Weights are drawn at 0.3 so that the attention and the gates are far
// from uniform (randomTransformer).
func TestTransformerGradients(t *testing.T) {
	for _, cfg := range gradientConfigs() {
		untied, variant := cfg.Untied, cfg.Variant()
		rng := rand.New(rand.NewPCG(3, 3))
		m := randomTransformer(t, cfg, rng, 0.3)
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
		checkParamGradients(t, fmt.Sprintf("%s, untied %v", variant, untied), m.Params(), f)
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

package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
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
		checkParamGradients(t, fmt.Sprintf("untied %v", untied), m.Params(), f)
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

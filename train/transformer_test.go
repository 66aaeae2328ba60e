package train

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// TestTransformerGradients checks the whole model's Backward against
// central finite differences of f = Σ R ⊙ logits on a tiny config (two
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
		y := Mat{Rows: n, Cols: cfg.Vocab, Data: make([]float32, n*cfg.Vocab)}
		f := func() float64 {
			m.Forward(y, ids)
			var s float64
			for i, v := range y.Data {
				s += float64(v) * float64(R.Data[i])
			}
			return s
		}
		f()
		m.Backward(Mat{Rows: n, Cols: cfg.Vocab, Data: append([]float32(nil), R.Data...)})
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

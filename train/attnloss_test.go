package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttentionKLGradient runs Attention on two sequences, distils its
// probabilities toward a random causal teacher attention with AttentionKL
// (teacher heads averaged in pairs onto the student's, and the reverse
// case), adds Σ R ⊙ output, and checks the gradient Backward gives the
// input (through DProbs and the softmax) against central finite
// differences of the whole loss; and the loss against a float64
// evaluation.
func TestAttentionKLGradient(t *testing.T) {
	const T, seqs = 4, 2
	for _, tc := range []struct{ Hs, KV, Ht int }{{2, 1, 4}, {4, 2, 2}} {
		rng := rand.New(rand.NewPCG(uint64(tc.Ht), 7))
		a := NewAttention(T, tc.Hs, tc.KV, 4, NewRoPE(T, tc.Hs, 4, RoPETheta))
		A := make([]float32, seqs*tc.Ht*T*T)
		for i := 0; i < len(A); i += T {
			t := (i / T) % T
			var z float64
			for s := 0; s <= t; s++ {
				A[i+s] = float32(rng.Float64() + 0.1)
				z += float64(A[i+s])
			}
			for s := 0; s <= t; s++ {
				A[i+s] = float32(float64(A[i+s]) / z)
			}
		}
		x := randMat(rng, seqs*T, a.InSize(), 1)
		R := randMat(rng, seqs*T, a.OutSize(), 1)
		y := Mat{Rows: seqs * T, Cols: a.OutSize(), Data: make([]float32, seqs*T*a.OutSize())}
		dP := make([]float32, seqs*tc.Hs*T*T)
		f := func() float64 {
			a.Forward(y, x)
			l, err := AttentionKL(dP, a.Probs(), A, seqs, tc.Hs, tc.Ht, T)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range y.Data {
				l += float64(v) * float64(R.Data[i])
			}
			return l
		}
		loss := f()
		// float64 evaluation of the KL part from the same probabilities.
		var kl float64
		P := a.Probs()
		for b := range seqs {
			for h := range tc.Hs {
				for ti := range T {
					for s := 0; s <= ti; s++ {
						var av float64
						if tc.Ht >= tc.Hs {
							g := tc.Ht / tc.Hs
							for j := range g {
								av += float64(A[((b*tc.Ht+h*g+j)*T+ti)*T+s]) / float64(g)
							}
						} else {
							av = float64(A[((b*tc.Ht+h/(tc.Hs/tc.Ht))*T+ti)*T+s])
						}
						kl += av * math.Log(av/float64(P[((b*tc.Hs+h)*T+ti)*T+s]))
					}
				}
			}
		}
		kl /= float64(seqs * tc.Hs * T)
		var lin float64
		for i, v := range y.Data {
			lin += float64(v) * float64(R.Data[i])
		}
		if math.Abs(loss-lin-kl) > 1e-6 {
			t.Errorf("%+v: KL %v, formula %v", tc, loss-lin, kl)
		}
		a.DProbs = dP
		dx := Mat{Rows: x.Rows, Cols: x.Cols, Data: make([]float32, len(x.Data))}
		a.Backward(dx, Mat{Rows: R.Rows, Cols: R.Cols, Data: append([]float32(nil), R.Data...)})
		a.DProbs = nil
		for i := range x.Data {
			old := x.Data[i]
			x.Data[i] = old + fdStep
			up := f()
			x.Data[i] = old - fdStep
			down := f()
			x.Data[i] = old
			want := (up - down) / (2 * fdStep)
			if math.Abs(float64(dx.Data[i])-want) > gradAbs+gradRel*math.Abs(want) {
				t.Errorf("%+v: d/dx[%d] = %v, finite differences %v", tc, i, dx.Data[i], want)
			}
		}
	}
	if _, err := AttentionKL(nil, nil, nil, 1, 3, 4, 2); err == nil {
		t.Error("3 student heads from 4 teacher heads accepted")
	}
}

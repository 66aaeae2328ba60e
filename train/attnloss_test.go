package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randAttention returns seqs·H causal attention maps of T×T: each row t
// a random distribution over s ≤ t, and garbage (0.5) at s > t, which
// every loss must ignore.
func randAttention(rng *rand.Rand, seqs, H, T int) []float32 {
	A := make([]float32, seqs*H*T*T)
	for i := 0; i < len(A); i += T {
		t := (i / T) % T
		var z float64
		for s := 0; s <= t; s++ {
			A[i+s] = float32(rng.Float64() + 0.1)
			z += float64(A[i+s])
		}
		for s := range T {
			if s <= t {
				A[i+s] = float32(float64(A[i+s]) / z)
			} else {
				A[i+s] = 0.5
			}
		}
	}
	return A
}

// attentionLoss64 evaluates AttentionLoss's formula in float64, written
// the other way round from the implementation: each teacher head adds
// its share to the student heads it serves (1/g of it to head j/g when
// Ht = g·Hs; all of it to heads j·r … j·r+r−1 when Hs = r·Ht), then the
// loss sums over s ≤ t only.
func attentionLoss64(f AttentionLoss, P, A []float32, seqs, Hs, Ht, T int, weight float64) float64 {
	abar := make([]float64, seqs*Hs*T*T)
	for b := range seqs {
		for j := range Ht {
			for t := range T {
				for s := 0; s <= t; s++ {
					v := float64(A[((b*Ht+j)*T+t)*T+s])
					if Ht >= Hs {
						g := Ht / Hs
						abar[((b*Hs+j/g)*T+t)*T+s] += v / float64(g)
					} else {
						r := Hs / Ht
						for h := j * r; h < (j+1)*r; h++ {
							abar[((b*Hs+h)*T+t)*T+s] = v
						}
					}
				}
			}
		}
	}
	var l float64
	for b := range seqs {
		for h := range Hs {
			for t := range T {
				for s := 0; s <= t; s++ {
					i := ((b*Hs+h)*T+t)*T + s
					a, p := abar[i], float64(P[i])
					switch f {
					case AttentionLossKL:
						l += a * math.Log(a/p)
					case AttentionLossMSE:
						l += (p - a) * (p - a)
					}
				}
			}
		}
	}
	return weight * l / float64(seqs*Hs*T)
}

// TestAttentionLossGradient runs Attention on two sequences, distils its
// probabilities toward a random causal teacher map with each
// AttentionLoss (teacher heads averaged in pairs onto the student's, the
// reverse, and equal counts), adds Σ R ⊙ output, and checks the gradient
// Backward gives the input (through DProbs, the head averaging and the
// softmax) against central finite differences of the whole loss; the
// loss against a float64 evaluation of its formula; and that the
// gradient is 0 at every masked entry (the teacher holds 0.5 there).
func TestAttentionLossGradient(t *testing.T) {
	const T, seqs = 4, 2
	// MSE's terms are squares of probability differences, smaller than
	// KL's: a larger weight keeps its share of the gradient well above
	// the finite-difference tolerance.
	for f, weight := range map[AttentionLoss]float64{AttentionLossKL: 0.7, AttentionLossMSE: 4} {
		for _, tc := range []struct{ Hs, KV, Ht int }{{2, 1, 4}, {4, 2, 2}, {2, 2, 2}} {
			rng := rand.New(rand.NewPCG(uint64(tc.Ht), 7))
			a := NewAttention(T, tc.Hs, tc.KV, 4, NewRoPE(T, tc.Hs, 4, RoPETheta))
			A := randAttention(rng, seqs, tc.Ht, T)
			// Inputs of 2: attention far from uniform, so MSE's gradient is not tiny.
			x := randMat(rng, seqs*T, a.InSize(), 2)
			R := randMat(rng, seqs*T, a.OutSize(), 1)
			y := Mat{Rows: seqs * T, Cols: a.OutSize(), Data: make([]float32, seqs*T*a.OutSize())}
			dP := make([]float32, seqs*tc.Hs*T*T)
			lin := func() float64 {
				var l float64
				for i, v := range y.Data {
					l += float64(v) * float64(R.Data[i])
				}
				return l
			}
			fn := func() float64 {
				a.Forward(y, x)
				l, err := f.Loss(dP, a.Probs(), A, seqs, tc.Hs, tc.Ht, T, weight)
				if err != nil {
					t.Fatal(err)
				}
				return l + lin()
			}
			loss := fn()
			want := attentionLoss64(f, a.Probs(), A, seqs, tc.Hs, tc.Ht, T, weight)
			if got := loss - lin(); math.Abs(got-want) > 1e-6*max(1, math.Abs(want)) || !(want > 1e-4) {
				t.Errorf("%s %+v: loss %v, formula %v", f, tc, got, want)
			}
			for i, g := range dP {
				if s, ti := i%T, (i/T)%T; s > ti && g != 0 {
					t.Errorf("%s %+v: gradient %v at masked entry %d (t %d, s %d)", f, tc, g, i, ti, s)
				}
			}
			dy := func() Mat { return Mat{Rows: R.Rows, Cols: R.Cols, Data: append([]float32(nil), R.Data...)} }
			dx := Mat{Rows: x.Rows, Cols: x.Cols, Data: make([]float32, len(x.Data))}
			a.Backward(dx, dy()) // without the attention term, for the check below
			without := append([]float32(nil), dx.Data...)
			a.DProbs = dP
			a.Backward(dx, dy())
			a.DProbs = nil
			// The attention term's own share of the gradient: clearly above
			// the tolerance, so dropping DProbs would fail the check.
			var attnGrad float64
			for i, v := range dx.Data {
				attnGrad = max(attnGrad, math.Abs(float64(v-without[i])))
			}
			for i := range x.Data {
				old := x.Data[i]
				x.Data[i] = old + fdStep
				up := fn()
				x.Data[i] = old - fdStep
				down := fn()
				x.Data[i] = old
				want := (up - down) / (2 * fdStep)
				if math.Abs(float64(dx.Data[i])-want) > gradAbs+gradRel*math.Abs(want) {
					t.Errorf("%s %+v: d/dx[%d] = %v, finite differences %v", f, tc, i, dx.Data[i], want)
				}
			}
			if attnGrad < 10*gradAbs {
				t.Errorf("%s %+v: the attention term adds at most %v to the input gradient", f, tc, attnGrad)
			}
		}
	}
}

// TestAttentionLossMasked checks that the masked entries (s > t) of
// either tensor change neither the loss nor the gradient: garbage there
// gives the loss and gradient of zeros there, bit for bit. And that
// the loss is 0 with zero gradient when the student's maps are the
// teacher's group averages.
func TestAttentionLossMasked(t *testing.T) {
	const T, seqs, Hs, Ht = 5, 2, 2, 4
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []AttentionLoss{AttentionLossKL, AttentionLossMSE} {
		P, A := randAttention(rng, seqs, Hs, T), randAttention(rng, seqs, Ht, T)
		P0, A0 := append([]float32(nil), P...), append([]float32(nil), A...)
		for i := range P0 {
			if i%T > (i/T)%T {
				P0[i] = 0
			}
		}
		for i := range A0 {
			if i%T > (i/T)%T {
				A0[i] = 0
			}
		}
		dP, dP0 := make([]float32, len(P)), make([]float32, len(P))
		for i := range dP { // Loss overwrites its gradient, masked entries too
			dP[i] = 7
		}
		l, err := f.Loss(dP, P, A, seqs, Hs, Ht, T, 1)
		if err != nil {
			t.Fatal(err)
		}
		l0, err := f.Loss(dP0, P0, A0, seqs, Hs, Ht, T, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range dP {
			if i%T > (i/T)%T && g != 0 {
				t.Fatalf("%s: gradient %v at masked entry %d", f, g, i)
			}
		}
		if l != l0 || !(l > 0) {
			t.Errorf("%s: loss %v with garbage at the masked entries, %v with zeros", f, l, l0)
		}
		for i := range dP {
			if dP[i] != dP0[i] {
				t.Fatalf("%s: gradient %d is %v with garbage at the masked entries, %v with zeros", f, i, dP[i], dP0[i])
			}
		}
		// The student equal to the teacher's group averages: no loss.
		same := make([]float32, len(P))
		for b := range seqs {
			for h := range Hs {
				for i := range T * T {
					same[(b*Hs+h)*T*T+i] = (A0[(b*Ht+2*h)*T*T+i] + A0[(b*Ht+2*h+1)*T*T+i]) / 2
				}
			}
		}
		l, err = f.Loss(dP, same, A, seqs, Hs, Ht, T, 1)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(l) > 1e-6 {
			t.Errorf("%s: loss %v of the teacher's own group averages", f, l)
		}
	}
	for _, bad := range []struct {
		f              AttentionLoss
		n, Hs, Ht, T   int
		lenP, lenA, dP int
	}{
		{AttentionLossKL, 1, 3, 4, 2, 12, 16, 12}, // 4 teacher heads onto 3
		{AttentionLossMSE, 1, 2, 4, 2, 8, 15, 8},  // a teacher map short
		{AttentionLossKL, 1, 2, 4, 2, 8, 16, 7},   // dP short
		{"l1", 1, 2, 4, 2, 8, 16, 8},              // unknown loss
	} {
		if _, err := bad.f.Loss(make([]float32, bad.dP), make([]float32, bad.lenP), make([]float32, bad.lenA), bad.n, bad.Hs, bad.Ht, bad.T, 1); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := ParseAttentionLoss("cosine"); err == nil {
		t.Error(`attention loss "cosine" accepted`)
	}
}

// BenchmarkAttentionLoss times one attention pair's loss and gradient at
// issue 12's sizes: a batch of 32 windows of 256 tokens, a 4-head
// student block against stories260K's 8-head map (heads averaged in
// pairs), and reports the causal entries per second.
func BenchmarkAttentionLoss(b *testing.B) {
	const seqs, Hs, Ht, T = 32, 4, 8, 256
	rng := rand.New(rand.NewPCG(1, 1))
	P, A := randAttention(rng, seqs, Hs, T), randAttention(rng, seqs, Ht, T)
	dP := make([]float32, len(P))
	for _, f := range []AttentionLoss{AttentionLossKL, AttentionLossMSE} {
		b.Run(string(f), func(b *testing.B) {
			for b.Loop() {
				if _, err := f.Loss(dP, P, A, seqs, Hs, Ht, T, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seqs*Hs*T*(T+1)/2)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

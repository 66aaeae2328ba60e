package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// sampledRow draws S ids of a row of teacher scores t at temperature tau
// into k = min(S, C) slots, as a sampled cache stores them.
func sampledRow(t []float32, S int, tau float64, rng *rand.Rand) (idx []int32, val []float32, cnt []int32, lse float32) {
	k := min(S, len(t))
	idx, val, cnt = make([]int32, k), make([]float32, k), make([]int32, k)
	lse = formats.Sample(idx, val, cnt, t, S, tau, rng)
	return
}

// TestKDSampledFormula checks KD on sampled targets against a float64
// evaluation of its formula (KD, "Sampled teachers"): p̂ from the counts
// and the importance weights exp(t_c·(1/T − 1/τ)), the loss
// α·T²·KL(p̂ ‖ softmax(s/T)) + (1−α)·CE, and the gradient
// α·T·(q − p̂) + (1−α)·(softmax(s) − onehot(y)), per row over the batch.
func TestKDSampledFormula(t *testing.T) {
	const C, S, n = 7, 5, 3
	rng := rand.New(rand.NewPCG(4, 2))
	for _, tc := range []struct{ T, tau, alpha float64 }{{1, 1, 1}, {2, 2, 0.7}, {2, 1, 1}, {1, 1.5, 0.5}, {0.5, 1, 0.9}} {
		tg := &Targets{TopK: min(S, C), SampleTemperature: tc.tau}
		s := randMat(rng, n, C, 2)
		teacher := make([][]float32, n)
		for r := range n {
			teacher[r] = make([]float32, C)
			for c := range C {
				teacher[r][c] = float32(rng.NormFloat64() * 2)
			}
			idx, val, cnt, lse := sampledRow(teacher[r], S, tc.tau, rng)
			tg.TopKIndex, tg.TopKLogit, tg.SampleCount = append(tg.TopKIndex, idx...), append(tg.TopKLogit, val...), append(tg.SampleCount, cnt...)
			tg.LogSumExp = append(tg.LogSumExp, lse)
			tg.Labels = append(tg.Labels, int64(rng.IntN(C)))
		}
		kd := &KD{Temperature: tc.T, Alpha: tc.alpha}
		grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
		loss, err := kd.Loss(grad, s, tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for r := range n {
			srow := f64(s.Data[r*C : (r+1)*C])
			q, q1 := softmaxT(srow, tc.T), softmaxT(srow, 1)
			ph := make([]float64, C)
			var z float64
			for j, cn := range tg.SampleCount[r*tg.TopK : (r+1)*tg.TopK] {
				if cn > 0 {
					c := tg.TopKIndex[r*tg.TopK+j]
					ph[c] = float64(cn) * math.Exp(float64(tg.TopKLogit[r*tg.TopK+j])*(1/tc.T-1/tc.tau))
					z += ph[c]
				}
			}
			var kl float64
			for c := range C {
				if ph[c] /= z; ph[c] > 0 {
					kl += ph[c] * math.Log(ph[c]/q[c])
				}
			}
			y := tg.Labels[r]
			want += (tc.alpha*tc.T*tc.T*kl - (1-tc.alpha)*math.Log(q1[y])) / n
			for c := range C {
				g := tc.alpha * tc.T * (q[c] - ph[c])
				g += (1 - tc.alpha) * q1[c]
				if int64(c) == y {
					g -= 1 - tc.alpha
				}
				if d := math.Abs(float64(grad.Data[r*C+c]) - g/n); d > 1e-6 {
					t.Fatalf("%+v row %d class %d: gradient %v, formula %v", tc, r, c, grad.Data[r*C+c], g/n)
				}
			}
		}
		// The student's softmax is float32 (fastmath.ExpSum, within 2 ulp).
		if math.Abs(loss-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%+v: loss %v, formula %v", tc, loss, want)
		}
	}
	// A row whose slots repeat a drawn id is refused.
	tg := &Targets{TopK: 2, TopKIndex: []int32{3, 3}, TopKLogit: []float32{1, 1}, SampleCount: []int32{1, 1}, LogSumExp: []float32{2}}
	kd := &KD{Temperature: 1, Alpha: 1}
	if _, err := kd.Loss(Mat{Rows: 1, Cols: 4, Data: make([]float32, 4)}, Mat{Rows: 1, Cols: 4, Data: make([]float32, 4)}, tg, nil); err == nil {
		t.Error("a repeated sampled id was accepted")
	}
}

// TestKDSampledUnbiased: drawn at the training temperature (τ = T = 1),
// sampled targets give the dense KD gradient in expectation (Anshumann et
// al. 2025): over 20,000 rows of the same teacher and student scores and
// 4 draws each, the mean gradient of the sampled loss equals the dense
// loss's gradient within 4 standard errors, class by class; top-4 of the
// same scores is off by far more (its bias).
func TestKDSampledUnbiased(t *testing.T) {
	const C, S, n = 6, 4, 20000
	teacher := []float32{2, 1.2, 0.5, 0, -0.5, -1.5}
	student := []float32{0.3, -0.2, 0.9, 0.1, -1, 0.4}
	rng := rand.New(rand.NewPCG(11, 12))
	tg := &Targets{TopK: S}
	s := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
	for r := range n {
		copy(s.Data[r*C:], student)
		idx, val, cnt, lse := sampledRow(teacher, S, 1, rng)
		tg.TopKIndex, tg.TopKLogit, tg.SampleCount = append(tg.TopKIndex, idx...), append(tg.TopKLogit, val...), append(tg.SampleCount, cnt...)
		tg.LogSumExp = append(tg.LogSumExp, lse)
	}
	kd := &KD{Temperature: 1, Alpha: 1}
	grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
	if _, err := kd.Loss(grad, s, tg, nil); err != nil {
		t.Fatal(err)
	}
	dense := Mat{Rows: 1, Cols: C, Data: make([]float32, C)}
	if _, err := kd.Loss(dense, Mat{Rows: 1, Cols: C, Data: student}, &Targets{Logits: teacher}, nil); err != nil {
		t.Fatal(err)
	}
	p := make([]float64, C)
	var z float64
	for c, v := range teacher {
		p[c] = math.Exp(float64(v))
		z += p[c]
	}
	var maxSE float64
	for c := range C {
		var mean float64
		for r := range n {
			mean += float64(grad.Data[r*C+c]) * n // each row's gradient is scaled by 1/n
		}
		mean /= n
		// p̂_c = n_c/S with n_c ~ Binomial(S, p_c): sd √(p(1−p)/S) per row.
		se := math.Sqrt(p[c]/z*(1-p[c]/z)/S) / math.Sqrt(n)
		maxSE = math.Max(maxSE, se)
		if d := math.Abs(mean - float64(dense.Data[c])); d > 4*se {
			t.Errorf("class %d: mean sampled gradient %.5f, dense %.5f (%.1f standard errors)", c, mean, dense.Data[c], d/se)
		}
	}
	// The top-4 targets' gradient, for contrast, differs by far more.
	topk := &Targets{TopK: S, TopKIndex: make([]int32, S), TopKLogit: make([]float32, S), LogSumExp: make([]float32, 1)}
	topk.LogSumExp[0] = formats.TopK(topk.TopKIndex, topk.TopKLogit, teacher)
	tk := Mat{Rows: 1, Cols: C, Data: make([]float32, C)}
	if _, err := kd.Loss(tk, Mat{Rows: 1, Cols: C, Data: student}, topk, nil); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for c := range C {
		worst = math.Max(worst, math.Abs(float64(tk.Data[c]-dense.Data[c])))
	}
	if worst < 4*maxSE {
		t.Errorf("top-%d targets move the gradient by only %.4f, within the sampled mean's noise %.4f", S, worst, 4*maxSE)
	}
	t.Logf("top-%d targets move the gradient by up to %.4f; the sampled mean stays within 4 standard errors (%.4f)", S, worst, 4*maxSE)
}

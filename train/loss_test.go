package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
	"gonum.org/v1/gonum/stat"
)

// softmax64 returns softmax(x/T) in float64.
func softmax64(x []float32, T float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v)/T)
	}
	p := make([]float64, len(x))
	var z float64
	for i, v := range x {
		p[i] = math.Exp(float64(v)/T - m)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	return p
}

// kdReference evaluates α·T²·KL(p‖q) + (1−α)·CE directly, with gonum's
// stat.KullbackLeibler, given the teacher's bucket distribution p and the
// bucket each class falls in (nil: every class its own bucket).
func kdReference(s []float32, y int64, pBuckets []float64, bucket []int, T, alpha float64) float64 {
	q := softmax64(s, T)
	qb := q
	if bucket != nil {
		qb = make([]float64, len(pBuckets))
		for c, b := range bucket {
			qb[b] += q[c]
		}
	}
	kl := stat.KullbackLeibler(pBuckets, qb)
	ce := 0.0
	if alpha < 1 {
		ce = -math.Log(softmax64(s, 1)[y])
	}
	return alpha*T*T*kl + (1-alpha)*ce
}

type kdCase struct {
	T, alpha float64
	topk     int
	equal    bool // top-k: the uncached teacher scores are all equal
}

func kdCases() []kdCase {
	var cs []kdCase
	for _, T := range []float64{1, 2, 4, 0.5} {
		for _, a := range []float64{0, 0.5, 0.9, 1} {
			cs = append(cs, kdCase{T: T, alpha: a})
			cs = append(cs, kdCase{T: T, alpha: a, topk: 3})
			cs = append(cs, kdCase{T: T, alpha: a, topk: 3, equal: true})
		}
	}
	cs = append(cs, kdCase{T: 3, alpha: 0.7, topk: 7}) // k == C: no rest bucket
	return cs
}

func (c kdCase) String() string {
	return fmt.Sprintf("T=%v/alpha=%v/topk=%d/equal=%v", c.T, c.alpha, c.topk, c.equal)
}

// kdBatch makes n rows of C = 7 classes: student logits, teacher logits
// (with the uncached ones equal if c.equal), labels, and the top-k view.
func kdBatch(c kdCase, n int, seed uint64) (s Mat, tFull []float32, tg Targets) {
	const C = 7
	rng := rand.New(rand.NewPCG(seed, 2))
	s = randMat(rng, n, C, 2)
	// With equal uncached scores the reference is the exact tempered
	// distribution, which the float32 logsumexp determines only to about
	// 1e-7·exp(LSE) in the rest mass (see KD): keep that mass well above
	// it by using flatter teacher scores.
	scale := 3.0
	if c.equal {
		scale = 1
	}
	tFull = randMat(rng, n, C, scale).Data
	tg.Labels = make([]int64, n)
	for r := range n {
		tg.Labels[r] = int64(rng.IntN(C))
	}
	if c.topk == 0 {
		tg.Logits = tFull
		return s, tFull, tg
	}
	k := c.topk
	tg.TopK = k
	tg.TopKIndex = make([]int32, n*k)
	tg.TopKLogit = make([]float32, n*k)
	tg.LogSumExp = make([]float32, n)
	for r := range n {
		row := tFull[r*C : (r+1)*C]
		if c.equal {
			// Lower every uncached score to the same value.
			idx := make([]int32, k)
			formats.TopK(idx, make([]float32, k), row)
			in := map[int32]bool{}
			for _, i := range idx {
				in[i] = true
			}
			low := float32(math.Inf(1))
			for j := range row {
				if !in[int32(j)] {
					low = min(low, row[j])
				}
			}
			for j := range row {
				if !in[int32(j)] {
					row[j] = low
				}
			}
		}
		tg.LogSumExp[r] = formats.TopK(tg.TopKIndex[r*k:(r+1)*k], tg.TopKLogit[r*k:(r+1)*k], row)
	}
	return s, tFull, tg
}

// uniformRestBuckets is the documented T ≠ 1 teacher distribution over
// k+1 buckets, computed independently of KD from the cached values.
func uniformRestBuckets(idx []int32, tl []float32, lse float32, C int, T float64) []float64 {
	k := len(tl)
	logits := make([]float64, 0, k+1)
	for _, v := range tl {
		logits = append(logits, float64(v)/T)
	}
	rest := 1.0
	for _, v := range tl {
		rest -= math.Exp(float64(v) - float64(lse))
	}
	m := float64(C - k)
	if m > 0 && rest > 0 {
		R := math.Exp(float64(lse)) * rest
		logits = append(logits, math.Log(m)+math.Log(R/m)/T)
	} else {
		logits = append(logits, math.Inf(-1))
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = max(mx, v)
	}
	p := make([]float64, len(logits))
	var z float64
	for i, v := range logits {
		p[i] = math.Exp(v - mx)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	return p
}

// TestKDLossMatchesFormula checks KD.Loss against a direct float64
// evaluation of the formula with stat.KullbackLeibler, including the T²
// scaling and the top-k rest bucket: exact against the full teacher
// distribution at T = 1 and when the uncached scores are equal, and equal
// to the documented uniform-rest formula otherwise.
func TestKDLossMatchesFormula(t *testing.T) {
	const n, C = 5, 7
	for _, c := range kdCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			s, tFull, tg := kdBatch(c, n, 1)
			kd := KD{Temperature: c.T, Alpha: c.alpha}
			grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
			rowLoss := make([]float64, n)
			got, err := kd.Loss(grad, s, &tg, rowLoss)
			if err != nil {
				t.Fatal(err)
			}
			var want float64
			for r := range n {
				var p []float64
				var bucket []int
				truth := softmax64(tFull[r*C:(r+1)*C], c.T)
				if c.topk == 0 {
					p = truth
				} else {
					k := c.topk
					idx := tg.TopKIndex[r*k : (r+1)*k]
					bucket = make([]int, C)
					for j := range bucket {
						bucket[j] = k
					}
					for j, id := range idx {
						bucket[id] = j
					}
					exact := make([]float64, k+1)
					for j, b := range bucket {
						exact[b] += truth[j]
					}
					if c.T == 1 || c.equal || k == C {
						p = exact
					} else {
						p = uniformRestBuckets(idx, tg.TopKLogit[r*k:(r+1)*k], tg.LogSumExp[r], C, c.T)
					}
					if k == C {
						p = p[:k]
						bucket = bucket[:C]
					}
				}
				w := kdReference(s.Row(r), tg.Labels[r], p, bucket, c.T, c.alpha)
				// The cache's logsumexp is float32: top-k teacher
				// probabilities carry ≈1e-7 relative error.
				if !scalar.EqualWithinAbsOrRel(rowLoss[r], w, 1e-5, 1e-5) {
					t.Errorf("row %d: loss %.10g, formula %.10g", r, rowLoss[r], w)
				}
				want += w / n
			}
			if !scalar.EqualWithinAbsOrRel(got, want, 1e-5, 1e-5) {
				t.Errorf("batch loss %.10g, formula %.10g", got, want)
			}
		})
	}
}

// TestKDLossGradient checks dL/ds against finite differences of KD.Loss.
func TestKDLossGradient(t *testing.T) {
	const n, C = 3, 7
	for _, c := range kdCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			s, _, tg := kdBatch(c, n, 2)
			kd := KD{Temperature: c.T, Alpha: c.alpha}
			grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
			if _, err := kd.Loss(grad, s, &tg, nil); err != nil {
				t.Fatal(err)
			}
			scratch := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
			want := fd.Gradient(nil, func(v []float64) float64 {
				x := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
				for i := range v {
					x.Data[i] = float32(v[i])
				}
				l, _ := kd.Loss(scratch, x, &tg, nil)
				return l
			}, f64(s.Data), &fd.Settings{Formula: fd.Central, Step: 1e-2})
			for i := range want {
				if !scalar.EqualWithinAbsOrRel(float64(grad.Data[i]), want[i], 1e-4, 1e-3) {
					t.Errorf("dL/ds[%d] = %.6g, finite differences %.6g", i, grad.Data[i], want[i])
				}
			}
		})
	}
}

// TestTopKRestBounds documents the claim in KD's doc comment: the true
// tempered rest sum lies between the concentrated and the uniform bound.
func TestTopKRestBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const C, k = 20, 4
	for trial := range 200 {
		row := randMat(rng, 1, C, 3).Data
		idx, val := make([]int32, k), make([]float32, k)
		formats.TopK(idx, val, row)
		in := map[int32]bool{}
		for _, i := range idx {
			in[i] = true
		}
		for _, T := range []float64{0.5, 2, 4} {
			var R, S float64
			for c, v := range row {
				if !in[int32(c)] {
					R += math.Exp(float64(v))
					S += math.Exp(float64(v) / T)
				}
			}
			tk, m := float64(val[k-1]), float64(C-k)
			conc := R / math.Exp(tk) * math.Exp(tk/T)
			unif := m * math.Pow(R/m, 1/T)
			lo, hi := min(conc, unif), max(conc, unif)
			if S < lo*(1-1e-9) || S > hi*(1+1e-9) {
				t.Fatalf("trial %d T=%v: rest sum %v outside [%v, %v]", trial, T, S, lo, hi)
			}
		}
	}
}

func TestKDLossBadTargets(t *testing.T) {
	s := Mat{Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}
	g := Mat{Rows: 1, Cols: 3, Data: make([]float32, 3)}
	kd := KD{Temperature: 2, Alpha: 0.5}
	for name, tg := range map[string]Targets{
		"label":     {Labels: []int64{3}, Logits: []float32{1, 2, 3}},
		"index":     {Labels: []int64{0}, TopK: 2, TopKIndex: []int32{0, 5}, TopKLogit: []float32{2, 1}, LogSumExp: []float32{3}},
		"duplicate": {Labels: []int64{0}, TopK: 2, TopKIndex: []int32{1, 1}, TopKLogit: []float32{2, 1}, LogSumExp: []float32{3}},
	} {
		if _, err := kd.Loss(g, s, &tg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestFeatureLoss checks both feature losses against their formulas and
// their gradients against finite differences.
func TestFeatureLoss(t *testing.T) {
	const n, d = 4, 5
	for _, f := range []FeatureLoss{MSE, Cosine} {
		t.Run(string(f), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(6, 6))
			p, h := randMat(rng, n, d, 1), randMat(rng, n, d, 1)
			g := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
			rowLoss := make([]float64, n)
			const w = 0.7
			got := f.Loss(g, p, h, w, rowLoss)
			var want, sumRows float64
			for r := range n {
				pr, hr := f64(p.Row(r)), f64(h.Row(r))
				if f == MSE {
					for j := range pr {
						want += (pr[j] - hr[j]) * (pr[j] - hr[j]) / (n * d)
					}
				} else {
					var dot, np, nh float64
					for j := range pr {
						dot += pr[j] * hr[j]
						np += pr[j] * pr[j]
						nh += hr[j] * hr[j]
					}
					want += (1 - dot/math.Sqrt(np*nh)) / n
				}
				sumRows += rowLoss[r] / n
			}
			want *= w
			if !scalar.EqualWithinAbsOrRel(got, want, 1e-9, 1e-9) || !scalar.EqualWithinAbsOrRel(sumRows, want, 1e-9, 1e-9) {
				t.Errorf("loss %v (rows %v), formula %v", got, sumRows, want)
			}
			scratch := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
			fdw := fd.Gradient(nil, func(v []float64) float64 {
				x := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
				for i := range v {
					x.Data[i] = float32(v[i])
				}
				return f.Loss(scratch, x, h, w, nil)
			}, f64(p.Data), &fd.Settings{Formula: fd.Central, Step: 1e-2})
			for i := range fdw {
				if !scalar.EqualWithinAbsOrRel(float64(g.Data[i]), fdw[i], 1e-4, 1e-3) {
					t.Errorf("dL/dP[%d] = %v, finite differences %v", i, g.Data[i], fdw[i])
				}
			}
		})
	}
}

// TestKDLossThreads checks that KD.Loss split over threads (rows × classes
// ≥ kdGrain) gives the serial loss, row losses and gradient bit for bit,
// for dense, top-k and sampled targets, and reports the first bad row's
// error as the serial loop does.
func TestKDLossThreads(t *testing.T) {
	defer SetThreads(Threads())
	rng := rand.New(rand.NewPCG(7, 8))
	const n, C, K = 300, 128, 4
	s := randMat(rng, n, C, 2)
	dense := &Targets{Logits: randMat(rng, n, C, 2).Data, Labels: make([]int64, n)}
	topk := &Targets{TopK: K, TopKIndex: make([]int32, n*K), TopKLogit: make([]float32, n*K), LogSumExp: make([]float32, n), Labels: dense.Labels}
	for r := range n {
		dense.Labels[r] = int64(rng.IntN(C))
		for j, c := range rng.Perm(C)[:K] {
			topk.TopKIndex[r*K+j], topk.TopKLogit[r*K+j] = int32(c), float32(3-j)
		}
		topk.LogSumExp[r] = 4
	}
	sampled := *topk
	sampled.SampleCount = make([]int32, n*K)
	for i := range sampled.SampleCount {
		sampled.SampleCount[i] = int32(1 + i%3)
	}
	run := func(threads int, tg *Targets, kd *KD) (float64, []float64, []float32, error) {
		SetThreads(threads)
		grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
		rows := make([]float64, n)
		loss, err := kd.Loss(grad, s, tg, rows)
		return loss, rows, grad.Data, err
	}
	for name, tg := range map[string]*Targets{"dense": dense, "top-k": topk, "sampled": &sampled} {
		for _, kd := range []KD{{Temperature: 2, Alpha: 0.7}, {Temperature: 1, Alpha: 1, Divergence: JSD, Beta: 0.3}} {
			l1, r1, g1, err1 := run(1, tg, &KD{Temperature: kd.Temperature, Alpha: kd.Alpha, Divergence: kd.Divergence, Beta: kd.Beta})
			l2, r2, g2, err2 := run(3, tg, &KD{Temperature: kd.Temperature, Alpha: kd.Alpha, Divergence: kd.Divergence, Beta: kd.Beta})
			if err1 != nil || err2 != nil {
				t.Fatalf("%s %+v: %v, %v", name, kd, err1, err2)
			}
			if l1 != l2 || !slices.Equal(r1, r2) || !slices.Equal(g1, g2) {
				t.Fatalf("%s %+v: 1 thread loss %v, 3 threads %v (row losses equal %v, gradients equal %v)", name, kd, l1, l2, slices.Equal(r1, r2), slices.Equal(g1, g2))
			}
		}
	}
	// Rows 120 and 250 have a bad label: both runs name row 120's.
	bad := *dense
	bad.Labels = slices.Clone(dense.Labels)
	bad.Labels[120], bad.Labels[250] = C+5, -1
	_, _, _, err1 := run(1, &bad, &KD{Temperature: 1, Alpha: 0.5})
	_, _, _, err2 := run(3, &bad, &KD{Temperature: 1, Alpha: 0.5})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() || !strings.Contains(err1.Error(), "133") {
		t.Fatalf("bad labels: 1 thread %v, 3 threads %v", err1, err2)
	}
}

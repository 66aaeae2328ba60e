package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// TestKDDivergences checks reverse KL and GKD's JSD_β against a float64
// evaluation of their formulas (KD, "Divergences") for dense, top-k
// (k cached classes and the rest bucket) and, for JSD, sampled targets,
// at T = 1 and 2, with a hard-label term: the loss, and the gradient
// against central finite differences of the float64 loss. Forward KL
// stays the default; reverse KL refuses sampled targets.
func TestKDDivergences(t *testing.T) {
	const C, n = 6, 3
	rng := rand.New(rand.NewPCG(21, 22))
	teacher := make([]float32, n*C)
	for i := range teacher {
		teacher[i] = float32(rng.NormFloat64() * 2)
	}
	labels := []int64{1, 4, 0}
	dense := &Targets{Logits: teacher, Labels: labels}
	const K = 3
	topk := &Targets{TopK: K, Labels: labels}
	sampled := &Targets{TopK: 5, Labels: labels}
	for r := range n {
		idx, val := make([]int32, K), make([]float32, K)
		lse := formats.TopK(idx, val, teacher[r*C:(r+1)*C])
		topk.TopKIndex, topk.TopKLogit, topk.LogSumExp = append(topk.TopKIndex, idx...), append(topk.TopKLogit, val...), append(topk.LogSumExp, lse)
		si, sv, sc, sl := sampledRow(teacher[r*C:(r+1)*C], 5, 1, rng)
		sampled.TopKIndex, sampled.TopKLogit, sampled.SampleCount = append(sampled.TopKIndex, si...), append(sampled.TopKLogit, sv...), append(sampled.SampleCount, sc...)
		sampled.LogSumExp = append(sampled.LogSumExp, sl)
	}
	// units returns the teacher's units for row r at temperature T: the
	// probabilities and, per class, its unit (-1: the rest bucket).
	units := func(tg *Targets, r int, T float64) (p []float64, unit []int) {
		row := f64(teacher[r*C : (r+1)*C])
		unit = make([]int, C)
		switch {
		case tg.TopK == 0:
			p = softmaxT(row, T)
			for c := range unit {
				unit[c] = c
			}
		case tg.SampleCount != nil:
			p = make([]float64, C)
			var z float64
			for j, cnt := range tg.SampleCount[r*tg.TopK : (r+1)*tg.TopK] {
				if cnt > 0 {
					c := tg.TopKIndex[r*tg.TopK+j]
					p[c] = float64(cnt) * math.Exp(float64(tg.TopKLogit[r*tg.TopK+j])*(1/T-1))
					z += p[c]
				}
			}
			for c := range p {
				p[c] /= z
				unit[c] = c
			}
		default: // k cached classes, the rest spread evenly (T = 1: exact)
			for c := range unit {
				unit[c] = -1
			}
			lse := float64(tg.LogSumExp[r])
			var cachedMass float64
			logits := make([]float64, 0, K+1)
			for j := range K {
				c := tg.TopKIndex[r*K+j]
				unit[c] = j
				cachedMass += math.Exp(float64(tg.TopKLogit[r*K+j]) - lse)
				logits = append(logits, float64(tg.TopKLogit[r*K+j])/T)
			}
			m := float64(C - K)
			R := math.Exp(lse) * (1 - cachedMass)
			logits = append(logits, math.Log(m)+math.Log(R/m)/T)
			p = softmaxT(logits, 1)
		}
		return
	}
	ref := func(kd *KD, tg *Targets, s []float64) float64 {
		var L float64
		for r := range n {
			srow := s[r*C : (r+1)*C]
			q := softmaxT(srow, kd.Temperature)
			p, unit := units(tg, r, kd.Temperature)
			qu := make([]float64, len(p))
			for c, u := range unit {
				if u < 0 {
					qu[len(p)-1] += q[c]
				} else {
					qu[u] += q[c]
				}
			}
			var D float64
			for u := range p {
				switch kd.Divergence {
				case ReverseKL:
					D += qu[u] * math.Log(qu[u]/p[u])
				case JSD:
					m := kd.Beta*p[u] + (1-kd.Beta)*qu[u]
					if p[u] > 0 {
						D += kd.Beta * p[u] * math.Log(p[u]/m)
					}
					D += (1 - kd.Beta) * qu[u] * math.Log(qu[u]/m)
				}
			}
			ce := -math.Log(softmaxT(srow, 1)[labels[r]])
			L += kd.Alpha*kd.Temperature*kd.Temperature*D + (1-kd.Alpha)*ce
		}
		return L / n
	}
	for _, div := range []Divergence{ReverseKL, JSD} {
		for _, tg := range []*Targets{dense, topk, sampled} {
			if div == ReverseKL && tg == sampled {
				continue
			}
			for _, T := range []float64{1, 2} {
				kd := &KD{Temperature: T, Alpha: 0.8, Divergence: div, Beta: 0.3}
				s := randMat(rng, n, C, 1.5)
				grad := Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}
				loss, err := kd.Loss(grad, s, tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				s64 := f64(s.Data)
				if want := ref(kd, tg, s64); math.Abs(loss-want) > 1e-6*math.Max(1, math.Abs(want)) {
					t.Errorf("%s top-k %d sampled %v T %v: loss %v, formula %v", div, tg.TopK, tg.SampleCount != nil, T, loss, want)
				}
				const h = 1e-5
				for i := range s64 {
					old := s64[i]
					s64[i] = old + h
					up := ref(kd, tg, s64)
					s64[i] = old - h
					down := ref(kd, tg, s64)
					s64[i] = old
					if fdg := (up - down) / (2 * h); math.Abs(float64(grad.Data[i])-fdg) > 1e-5 {
						t.Fatalf("%s top-k %d sampled %v T %v: d/ds[%d] = %v, finite differences %v", div, tg.TopK, tg.SampleCount != nil, T, i, grad.Data[i], fdg)
					}
				}
			}
		}
	}
	kd := &KD{Temperature: 1, Alpha: 1, Divergence: ReverseKL}
	s := randMat(rng, n, C, 1)
	if _, err := kd.Loss(Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}, s, sampled, nil); err == nil {
		t.Error("reverse KL on sampled targets was accepted")
	}
	kd = &KD{Temperature: 1, Alpha: 1, Divergence: JSD, Beta: 1}
	if _, err := kd.Loss(Mat{Rows: n, Cols: C, Data: make([]float32, n*C)}, s, dense, nil); err == nil {
		t.Error("JSD with β = 1 was accepted")
	}
}

func softmaxT(x []float64, T float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v/T)
	}
	out := make([]float64, len(x))
	var z float64
	for i, v := range x {
		out[i] = math.Exp(v/T - m)
		z += out[i]
	}
	for i := range out {
		out[i] /= z
	}
	return out
}

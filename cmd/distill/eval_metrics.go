package main

import (
	"github.com/distill-ml/distill/extract"
	"math"
	"slices"
	"time"
)

// eceBins is the number of equal-width confidence bins of the expected
// calibration error and the reliability table; the same 15 as
// train.ECEBins, so eval and train's validation agree.
const eceBins = 15

// teacherScores are the teacher's scores for n rows, in the rows' order:
// either all C scores per row (logits or log-probabilities: softmax gives
// the teacher's distribution either way), or the top-k of a top-k cache
// with the log-sum-exp over all C.
type teacherScores struct {
	n, classes, topK int
	logits           []float32 // n×C when topK == 0
	topIdx           []int32   // n×k class ids, descending by score
	topVal           []float32 // n×k scores
	lse              []float32 // n values: log Σ_c exp(score_c)
	present          []bool    // nil = every row has teacher scores
}

// has reports whether row r has teacher scores.
func (t *teacherScores) has(r int) bool { return t.present == nil || t.present[r] }

// top1 returns the teacher's most probable class of row r (ties: the
// lowest class id, as formats.TopK orders them).
func (t *teacherScores) top1(r int) int {
	if t.topK > 0 {
		return int(t.topIdx[r*t.topK])
	}
	return argmaxF32(t.logits[r*t.classes : (r+1)*t.classes])
}

// kl returns KL(teacher ‖ model) of row r at temperature 1, in nats,
// given the model's log-probabilities logq [C]:
//
//	KL(p ‖ q) = Σ_c p_c (log p_c − log q_c),  p = softmax(teacher scores)
//
// (gonum stat.KullbackLeibler's formula). For a top-k teacher the sum runs
// over the k cached classes plus one bucket holding the rest of the mass,
// p_rest = 1 − Σ_j p_j and q_rest = Σ_{c not cached} q_c, which is the KL
// of those k+1 buckets (exact for them; the teacher's split of the rest is
// unknown). Terms with p = 0 contribute 0.
func (t *teacherScores) kl(r int, logq []float64) float64 {
	var kl float64
	if t.topK == 0 {
		s := t.logits[r*t.classes : (r+1)*t.classes]
		lse := extract.LogSumExp(s)
		for c, v := range s {
			lp := float64(v) - lse
			if p := math.Exp(lp); p > 0 {
				kl += p * (lp - logq[c])
			}
		}
		return kl
	}
	k := t.topK
	idx, val, lse := t.topIdx[r*k:(r+1)*k], t.topVal[r*k:(r+1)*k], float64(t.lse[r])
	var pIn, qIn float64
	for j, c := range idx {
		lp := float64(val[j]) - lse
		p := math.Exp(lp)
		pIn += p
		qIn += math.Exp(logq[c])
		if p > 0 {
			kl += p * (lp - logq[c])
		}
	}
	if pRest := 1 - pIn; pRest > 1e-12 {
		// q_rest summed over the other classes directly: 1 − qIn would
		// lose everything to cancellation when qIn ≈ 1.
		var qRest float64
		for c, lq := range logq {
			if !slices.Contains(idx, int32(c)) {
				qRest += math.Exp(lq)
			}
		}
		kl += pRest * (math.Log(pRest) - math.Log(qRest))
	}
	return kl
}

// evalAcc accumulates eval's metrics over batches of model scores.
type evalAcc struct {
	classes   int
	labels    bool // the data has labels
	rows      int64
	nonFinite int64 // rows whose model scores hold NaN or ±Inf

	correct                int64
	confusion              [][]int64 // [label][prediction]
	classRows, classRight  []int64
	teacherRows, agree     int64
	klSum                  float64
	klRows                 int64 // rows in klSum: both model and teacher scores finite
	binN                   [eceBins]int64
	binConf, binRight      [eceBins]float64
	eceRef                 string // "labels", "teacher" or "" (neither)
	logq                   []float64
	labelOutOfRange        int64
	firstBadLabel, badLRow int64
}

func newEvalAcc(classes int, labels, teacher bool) *evalAcc {
	a := &evalAcc{classes: classes, labels: labels, logq: make([]float64, classes)}
	switch {
	case labels:
		a.eceRef = "labels"
	case teacher:
		a.eceRef = "teacher"
	}
	if labels {
		a.confusion = make([][]int64, classes)
		for i := range a.confusion {
			a.confusion[i] = make([]int64, classes)
		}
		a.classRows, a.classRight = make([]int64, classes), make([]int64, classes)
	}
	return a
}

// add accumulates n rows: scores n×C model logits (or log-probabilities),
// labels (nil without), rows (the row ids, for messages) and the teacher's
// scores (nil without).
func (a *evalAcc) add(scores []float32, labels, rows []int64, t *teacherScores) {
	C := a.classes
	for r := range len(scores) / C {
		a.rows++
		s := scores[r*C : (r+1)*C]
		finite := true
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				finite = false
				break
			}
		}
		pred := -1
		var conf float64
		if finite {
			pred = argmaxF32(s)
			lse := extract.LogSumExp(s)
			for c, v := range s {
				a.logq[c] = float64(v) - lse
			}
			conf = math.Exp(a.logq[pred])
		} else {
			a.nonFinite++
		}
		ref := -1
		if labels != nil {
			y := labels[r]
			if y < 0 || y >= int64(C) {
				// A label the model cannot predict: an error, and out
				// of the confusion matrix.
				if a.labelOutOfRange == 0 {
					a.firstBadLabel, a.badLRow = y, rows[r]
				}
				a.labelOutOfRange++
			} else {
				ref = int(y)
				a.classRows[y]++
				if pred >= 0 {
					a.confusion[y][pred]++
				}
				if pred == ref {
					a.correct++
					a.classRight[y]++
				}
			}
		}
		if t != nil && t.has(r) {
			a.teacherRows++
			tt := t.top1(r)
			if tt == pred {
				a.agree++
			}
			if finite {
				// A teacher row with NaN/Inf scores (extract
				// --allow-nonfinite) has no KL: left out.
				if kl := t.kl(r, a.logq); !math.IsNaN(kl) && !math.IsInf(kl, 0) {
					a.klSum += kl
					a.klRows++
				}
			}
			if labels == nil {
				ref = tt
			}
		}
		if finite && (labels != nil || t != nil && t.has(r)) {
			// Bin b holds confidences in (b/15, (b+1)/15], as in train.
			b := min(eceBins-1, max(0, int(math.Ceil(conf*eceBins))-1))
			a.binN[b]++
			a.binConf[b] += conf
			if pred == ref {
				a.binRight[b]++
			}
		}
	}
}

// result fills the metric fields of res.
func (a *evalAcc) result(res *evalResult) {
	res.Rows = a.rows
	res.Classes = a.classes
	res.NonFinite = a.nonFinite
	res.LabelsOutOfRange = a.labelOutOfRange
	if a.rows == 0 {
		return
	}
	n := float64(a.rows)
	if a.labels {
		acc := float64(a.correct) / n
		errs := a.rows - a.correct
		res.Accuracy, res.Errors = &acc, &errs
		res.Confusion = a.confusion
		for c := range a.classes {
			pc := evalClass{Class: c, Rows: a.classRows[c], Correct: a.classRight[c]}
			if pc.Rows > 0 {
				v := float64(pc.Correct) / float64(pc.Rows)
				pc.Accuracy = &v
			}
			res.PerClass = append(res.PerClass, pc)
		}
	}
	if a.teacherRows > 0 {
		agree := float64(a.agree) / float64(a.teacherRows)
		res.Agreement = &agree
	}
	if a.klRows > 0 {
		kl := a.klSum / float64(a.klRows)
		res.KL = &kl
	}
	var binned int64
	for _, c := range a.binN {
		binned += c
	}
	if a.eceRef != "" && binned > 0 {
		var ece float64
		for b := range eceBins {
			bin := evalBin{Lo: float64(b) / eceBins, Hi: float64(b+1) / eceBins, Rows: a.binN[b]}
			if a.binN[b] > 0 {
				nb := float64(a.binN[b])
				conf, acc := a.binConf[b]/nb, a.binRight[b]/nb
				bin.Confidence, bin.Accuracy = &conf, &acc
				ece += nb / float64(binned) * math.Abs(acc-conf)
			}
			res.Reliability = append(res.Reliability, bin)
		}
		res.ECE, res.ECEReference, res.ECEBins = &ece, a.eceRef, eceBins
	}
}

// argmaxF32 returns the index of the largest value, the first on ties.
func argmaxF32(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(len(sorted)-1, max(0, i))]
}

// benchLatency times run, which scores one batch of batch rows: two warm-up
// runs, then runs until budget has passed and at least minRuns were made
// (but stopping at 10×budget), and returns the per-sample percentiles.
func benchLatency(run func() error, batch int, budget time.Duration, minRuns int) (evalLatency, error) {
	for range 2 {
		if err := run(); err != nil {
			return evalLatency{}, err
		}
	}
	var d []time.Duration
	start := time.Now()
	for {
		t0 := time.Now()
		if err := run(); err != nil {
			return evalLatency{}, err
		}
		d = append(d, time.Since(t0))
		el := time.Since(start)
		if el >= budget && len(d) >= minRuns || el >= 10*budget && len(d) >= 5 {
			break
		}
	}
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return x.Seconds() * 1e3 }
	p50, p99 := percentile(d, 50), percentile(d, 99)
	l := evalLatency{
		Batch:      batch,
		Runs:       len(d),
		P50:        ms(p50) / float64(batch),
		P99:        ms(p99) / float64(batch),
		P50Batch:   ms(p50),
		P99Batch:   ms(p99),
		Throughput: float64(batch) / p50.Seconds(),
	}
	return l, nil
}

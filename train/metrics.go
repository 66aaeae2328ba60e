package train

import (
	"context"
	"fmt"
	"math"
)

// ECEBins is the number of equal-width confidence bins of the expected
// calibration error.
const ECEBins = 15

// Metrics evaluate a student on held-out cache rows.
type Metrics struct {
	Rows int64 `json:"rows"`
	// Accuracy is the fraction of rows whose student top-1 equals the
	// label; nil when the data has no labels.
	Accuracy *float64 `json:"accuracy,omitempty"`
	// Agreement is the fraction of rows whose student top-1 equals the
	// teacher's (ties: lowest class id, as formats.TopK orders them).
	Agreement float64 `json:"agreement"`
	// KL is the mean KL(teacher ‖ student) at temperature 1, over the k+1
	// buckets for a top-k cache (exact there: see KD).
	KL float64 `json:"kl"`
	// ECE is the expected calibration error of the student's top-1
	// confidence over ECEBins equal-width bins (Guo et al. 2017,
	// https://arxiv.org/abs/1706.04599):
	//
	//	ECE = Σ_b (n_b/N)·|acc_b − conf_b|
	//
	// with conf the student's max softmax probability, bin b holding
	// conf in (b/15, (b+1)/15], and acc measured against the labels, or
	// against the teacher's top-1 when the data has none (ECEReference).
	ECE          float64 `json:"ece"`
	ECEReference string  `json:"ece_reference"` // "labels" or "teacher"
}

// evaluator computes Metrics batch by batch.
type evaluator struct {
	kd                KD
	n, correct, agree int64
	kl                float64
	binN              [ECEBins]int64
	binConf, binAcc   [ECEBins]float64
	labels            bool
}

func (e *evaluator) add(logits Mat, b *batch) error {
	C := logits.Cols
	for r := range b.n {
		s := logits.Row(r)
		top, m := 0, s[0]
		for c, v := range s {
			if v > m {
				top, m = c, v
			}
		}
		var z float64
		for _, v := range s {
			z += math.Exp(float64(v) - float64(m))
		}
		conf := 1 / z
		var teacher int
		if b.t.TopK > 0 {
			teacher = int(b.t.TopKIndex[r*b.t.TopK])
		} else {
			t := b.t.Logits[r*C : (r+1)*C]
			tm := t[0]
			for c, v := range t {
				if v > tm {
					teacher, tm = c, v
				}
			}
		}
		if top == teacher {
			e.agree++
		}
		ref := teacher
		if e.labels {
			ref = int(b.t.Labels[r])
			if top == ref {
				e.correct++
			}
		}
		kl, err := e.kd.KL(s, r, &b.t)
		if err != nil {
			return err
		}
		if math.IsNaN(kl) || math.IsInf(kl, 0) || math.IsNaN(conf) {
			// Metrics carry finite numbers only (they go into the
			// checkpoint's JSON): a row that has none is an error.
			return fmt.Errorf("train: validation row %d has NaN or infinite values (its inputs, teacher scores or the student's outputs); validate on rows without them (a cache extracted without --allow-nonfinite)", b.rows[r])
		}
		e.kl += kl
		bin := min(ECEBins-1, max(0, int(math.Ceil(conf*ECEBins))-1))
		e.binN[bin]++
		e.binConf[bin] += conf
		if top == ref {
			e.binAcc[bin]++
		}
		e.n++
	}
	return nil
}

func (e *evaluator) result() Metrics {
	m := Metrics{Rows: e.n, ECEReference: "teacher"}
	if e.n == 0 {
		return m
	}
	n := float64(e.n)
	if e.labels {
		acc := float64(e.correct) / n
		m.Accuracy = &acc
		m.ECEReference = "labels"
	}
	m.Agreement = float64(e.agree) / n
	m.KL = e.kl / n
	for b := range ECEBins {
		if e.binN[b] > 0 {
			nb := float64(e.binN[b])
			m.ECE += nb / n * math.Abs(e.binAcc[b]/nb-e.binConf[b]/nb)
		}
	}
	return m
}

// Evaluate runs the student (in evaluation mode) over every row of src in
// cache order and returns its Metrics. The input is the one named input
// (or the only one); labels are used if src has them.
func Evaluate(ctx context.Context, s *Student, src Source, input string, batchSize int) (Metrics, error) {
	if batchSize <= 0 {
		batchSize = 256
	}
	if err := checkShape(s, src, input, ""); err != nil {
		return Metrics{}, err
	}
	hasLabels := src.Config().HasLabel
	ld, err := newLoader(src, input, nil, hasLabels, true, batchSize, 1, 0)
	if err != nil {
		return Metrics{}, err
	}
	s.SetTraining(false, nil)
	e := &evaluator{kd: KD{Temperature: 1, Alpha: 1}, labels: hasLabels}
	err = ld.run(ctx, nil, func(b *batch) error {
		logits := s.Forward(Mat{Rows: b.n, Cols: ld.inSize, Data: b.x})
		return e.add(logits, b)
	})
	if err != nil {
		return Metrics{}, err
	}
	return e.result(), nil
}

package eval

import (
	"math"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

// ECEBins is the number of equal-width confidence bins of the expected
// calibration error and the reliability table: train.ECEBins, so eval and
// train's validation agree.
const ECEBins = train.ECEBins

// A Position is one prediction of the model as every Metric sees it: a row
// of a classifier, or one token of a sequence for a language model, whose
// classes are the vocabulary. The Accumulator fills it once per position,
// so each metric reads the log-softmax and the argmax without recomputing
// them.
type Position struct {
	Row    int64     // the row id, for messages
	Scores []float32 // the model's C scores (logits or log-probabilities)
	// Finite reports whether Scores hold no NaN or ±Inf. LogQ and Conf are
	// set only then, and Pred is -1 otherwise.
	Finite bool
	LogQ   []float64 // log softmax(Scores) [C], valid until the next position
	Pred   int       // argmax of Scores, the first on ties
	Conf   float64   // exp(LogQ[Pred]): the top-1 confidence

	HasLabel bool  // the data has a label for this position
	Label    int64 // the label; it may lie outside [0, C)

	Teacher    *TeacherScores // the batch's teacher scores, nil without
	TeacherRow int            // this position's index in Teacher
}

// HasTeacher reports whether the position has teacher scores.
func (p *Position) HasTeacher() bool { return p.Teacher != nil && p.Teacher.Has(p.TeacherRow) }

// A Metric accumulates one measure over positions and writes it into a
// Result. Add is called once per position, in order; Fill once at the end,
// and only when there was at least one position.
//
// The classifier metrics are Accuracy, Agreement and Calibration. A
// language-model evaluation reuses the same loop: each token is a Position
// (its label the next token), so agreement per token is Agreement as it is,
// and a negative log-likelihood is a Metric summing −LogQ[Label].
type Metric interface {
	Add(p *Position)
	Fill(r *Result)
}

// Accumulator turns batches of model scores into Positions and feeds them
// to its metrics. It counts the positions and those with non-finite
// scores itself.
type Accumulator struct {
	classes         int
	metrics         []Metric
	rows, nonFinite int64
	pos             Position
}

// NewAccumulator returns an accumulator of positions with classes scores
// each, feeding metrics in the order given.
func NewAccumulator(classes int, metrics ...Metric) *Accumulator {
	return &Accumulator{classes: classes, metrics: metrics, pos: Position{LogQ: make([]float64, classes)}}
}

// Classes returns the number of scores per position.
func (a *Accumulator) Classes() int { return a.classes }

// Rows returns the number of positions added so far.
func (a *Accumulator) Rows() int64 { return a.rows }

// Add accumulates n positions: scores n×C model logits (or
// log-probabilities), labels (nil without), rows (their ids, for messages)
// and the teacher's scores of the same n positions (nil without).
//
// For finite scores s: LogQ_c = s_c − lse(s), lse(s) = log Σ_c exp(s_c)
// (formats.LogSumExp), Pred = argmax s, Conf = exp(LogQ_Pred).
func (a *Accumulator) Add(scores []float32, labels, rows []int64, t *TeacherScores) {
	C := a.classes
	p := &a.pos
	for r := range len(scores) / C {
		a.rows++
		s := scores[r*C : (r+1)*C]
		p.Row, p.Scores, p.Finite, p.Pred, p.Conf = rows[r], s, true, -1, 0
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				p.Finite = false
				break
			}
		}
		if p.Finite {
			p.Pred = argmax(s)
			lse := formats.LogSumExp(s)
			for c, v := range s {
				p.LogQ[c] = float64(v) - lse
			}
			p.Conf = math.Exp(p.LogQ[p.Pred])
		} else {
			a.nonFinite++
		}
		p.HasLabel, p.Label = labels != nil, 0
		if labels != nil {
			p.Label = labels[r]
		}
		p.Teacher, p.TeacherRow = t, r
		for _, m := range a.metrics {
			m.Add(p)
		}
	}
}

// Fill writes the counts and every metric into res.
func (a *Accumulator) Fill(res *Result) {
	res.Rows = a.rows
	res.Classes = a.classes
	res.NonFinite = a.nonFinite
	if a.rows == 0 {
		return
	}
	for _, m := range a.metrics {
		m.Fill(res)
	}
}

// Accuracy is top-1 accuracy against the labels, with the confusion
// matrix and per-class accuracy. A position with non-finite scores
// predicts nothing and so is an error; a label outside [0, C) is an error
// too, counted in OutOfRange and left out of the confusion matrix.
type Accuracy struct {
	classes               int
	rows, correct         int64
	confusion             [][]int64 // [label][prediction]; nil for NewTokenAccuracy
	classRows, classRight []int64
	// OutOfRange counts the labels outside [0, C); FirstBad is the first
	// of them and FirstBadRow its row id.
	OutOfRange, FirstBad, FirstBadRow int64
}

// NewAccuracy returns the Accuracy metric of a model with classes classes.
func NewAccuracy(classes int) *Accuracy {
	m := &Accuracy{classes: classes, confusion: make([][]int64, classes), classRows: make([]int64, classes), classRight: make([]int64, classes)}
	for i := range m.confusion {
		m.confusion[i] = make([]int64, classes)
	}
	return m
}

// NewTokenAccuracy returns the Accuracy metric of a language model's next
// token over a vocabulary of classes: top-1 accuracy and the labels out of
// range, without the confusion matrix and per-class table (V² counts).
func NewTokenAccuracy(classes int) *Accuracy { return &Accuracy{classes: classes} }

// Add implements Metric.
func (m *Accuracy) Add(p *Position) {
	m.rows++
	if !p.HasLabel {
		return
	}
	y := p.Label
	if y < 0 || y >= int64(m.classes) {
		if m.OutOfRange == 0 {
			m.FirstBad, m.FirstBadRow = y, p.Row
		}
		m.OutOfRange++
		return
	}
	right := p.Pred == int(y)
	if right {
		m.correct++
	}
	if m.confusion == nil {
		return
	}
	m.classRows[y]++
	if p.Pred >= 0 {
		m.confusion[y][p.Pred]++
	}
	if right {
		m.classRight[y]++
	}
}

// Fill implements Metric: Accuracy = correct / positions, Errors, the
// confusion matrix and PerClass (not for NewTokenAccuracy), and
// LabelsOutOfRange.
func (m *Accuracy) Fill(res *Result) {
	acc := float64(m.correct) / float64(m.rows)
	errs := m.rows - m.correct
	res.Accuracy, res.Errors = &acc, &errs
	res.Confusion = m.confusion
	res.LabelsOutOfRange = m.OutOfRange
	if m.confusion == nil {
		return
	}
	res.PerClass = res.PerClass[:0]
	for c := range m.confusion {
		pc := Class{Class: c, Rows: m.classRows[c], Correct: m.classRight[c]}
		if pc.Rows > 0 {
			v := float64(pc.Correct) / float64(pc.Rows)
			pc.Accuracy = &v
		}
		res.PerClass = append(res.PerClass, pc)
	}
}

// Agreement is the top-1 agreement with the teacher and the mean
// KL(teacher ‖ model) at T = 1 (TeacherScores.KL), over the positions with
// teacher scores. A position with non-finite model scores disagrees and
// has no KL; one whose KL is not finite (a teacher row with NaN scores,
// cached with extract --allow-nonfinite) is left out of the KL.
type Agreement struct {
	rows, agree int64
	klSum       float64
	klRows      int64
}

// Matched returns the number of positions that had teacher scores.
func (m *Agreement) Matched() int64 { return m.rows }

// Add implements Metric.
func (m *Agreement) Add(p *Position) {
	if !p.HasTeacher() {
		return
	}
	m.rows++
	if p.Teacher.Top1(p.TeacherRow) == p.Pred {
		m.agree++
	}
	if p.Finite {
		if kl := p.Teacher.KL(p.TeacherRow, p.LogQ); !math.IsNaN(kl) && !math.IsInf(kl, 0) {
			m.klSum += kl
			m.klRows++
		}
	}
}

// Fill implements Metric: Agreement and KL, when any position had them.
func (m *Agreement) Fill(res *Result) {
	if m.rows > 0 {
		agree := float64(m.agree) / float64(m.rows)
		res.Agreement = &agree
	}
	if m.klRows > 0 {
		kl := m.klSum / float64(m.klRows)
		res.KL = &kl
	}
}

// Calibration is the expected calibration error (Guo et al. 2017, "On
// Calibration of Modern Neural Networks") and its reliability table:
//
//	ECE = Σ_b (n_b / N) · |acc_b − conf_b|
//
// over ECEBins equal-width bins of the top-1 confidence, bin b holding
// confidences in (b/ECEBins, (b+1)/ECEBins], acc_b the fraction of its
// positions whose prediction is the reference and conf_b their mean
// confidence. The reference is the label where the data has labels (one
// outside [0, C) never matches), else the teacher's top-1; positions with
// neither, or with non-finite scores, are left out.
type Calibration struct {
	ref               string
	binN              [ECEBins]int64
	binConf, binRight [ECEBins]float64
}

// NewCalibration returns the Calibration metric; reference names what it
// is measured against in the result: "labels" or "teacher".
func NewCalibration(reference string) *Calibration { return &Calibration{ref: reference} }

// Add implements Metric.
func (m *Calibration) Add(p *Position) {
	if !p.Finite {
		return
	}
	var ref int
	switch {
	case p.HasLabel:
		ref = int(p.Label)
		if p.Label < 0 || p.Label >= int64(len(p.Scores)) {
			ref = -1
		}
	case p.HasTeacher():
		ref = p.Teacher.Top1(p.TeacherRow)
	default:
		return
	}
	b := min(ECEBins-1, max(0, int(math.Ceil(p.Conf*ECEBins))-1))
	m.binN[b]++
	m.binConf[b] += p.Conf
	if p.Pred == ref {
		m.binRight[b]++
	}
}

// Fill implements Metric: ECE, ECEReference, ECEBins and Reliability, when
// any position was binned.
func (m *Calibration) Fill(res *Result) {
	var binned int64
	for _, c := range m.binN {
		binned += c
	}
	if binned == 0 {
		return
	}
	var ece float64
	res.Reliability = res.Reliability[:0]
	for b := range ECEBins {
		bin := Bin{Lo: float64(b) / ECEBins, Hi: float64(b+1) / ECEBins, Rows: m.binN[b]}
		if m.binN[b] > 0 {
			nb := float64(m.binN[b])
			conf, acc := m.binConf[b]/nb, m.binRight[b]/nb
			bin.Confidence, bin.Accuracy = &conf, &acc
			ece += nb / float64(binned) * math.Abs(acc-conf)
		}
		res.Reliability = append(res.Reliability, bin)
	}
	res.ECE, res.ECEReference, res.ECEBins = &ece, m.ref, ECEBins
}

// ClassifierMetrics returns the metrics of a classifier evaluation of
// classes classes: Accuracy when the data has labels, Agreement when there
// is a teacher, and Calibration against the labels, else the teacher.
// The typed pointers are nil for the metrics left out.
func ClassifierMetrics(classes int, labels, teacher bool) (ms []Metric, acc *Accuracy, agree *Agreement) {
	if labels {
		acc = NewAccuracy(classes)
		ms = append(ms, acc)
	}
	if teacher {
		agree = &Agreement{}
		ms = append(ms, agree)
	}
	switch {
	case labels:
		ms = append(ms, NewCalibration("labels"))
	case teacher:
		ms = append(ms, NewCalibration("teacher"))
	}
	return ms, acc, agree
}

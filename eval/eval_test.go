package eval_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// logitsOf runs the checkpoint's student on x [n, 4] in batches of batch
// rows (as Run with that Batch does, so the matrix products round the
// same).
func logitsOf(t *testing.T, ckpt string, x []float32, batch int) [][]float32 {
	t.Helper()
	c, err := train.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for lo := 0; lo < len(x)/4; lo += batch {
		hi := min(lo+batch, len(x)/4)
		y := c.Student.Forward(train.Mat{Rows: hi - lo, Cols: 4, Data: x[lo*4 : hi*4]})
		for r := range hi - lo {
			out = append(out, slices.Clone(y.Row(r)))
		}
	}
	return out
}

// run evaluates model on data with Run, failing the test on an error.
func run(t *testing.T, m *eval.Model, path string, pre formats.Preprocess, dso *dataset.Options, teacher *eval.TeacherTable, o *eval.Options) *eval.Result {
	t.Helper()
	d, err := eval.OpenData(path, dso, pre)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := eval.Run(context.Background(), m, d, teacher, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunCheckpoint(t *testing.T) {
	tmp := t.TempDir()
	const n = 120
	rows, x, labels, logits := fixtures.ClassData(n, 1)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	ckpt := fixtures.WriteStudent(t, filepath.Join(tmp, "kd.ckpt"), 0.7, nil)
	got := logitsOf(t, ckpt, x, 7)
	m, err := eval.OpenCheckpoint(ckpt, 1)
	if err != nil {
		t.Fatal(err)
	}
	var progress []int64
	res := run(t, m, data, formats.Preprocess{}, nil, nil, &eval.Options{Name: "kd", Batch: 7, BenchTime: time.Millisecond, Threads: 1,
		ToolVersion: "test", Progress: func(done, total int64) {
			if total != n {
				t.Errorf("progress total %d, want %d", total, n)
			}
			progress = append(progress, done)
		}})
	fixtures.CheckEval(t, res, fixtures.WantEval(got, labels, fixtures.FullTeacher(logits, 3)), n)
	if res.Name != "kd" || res.Tool != "test" || res.Model.Kind != "checkpoint" || res.Model.Training == nil ||
		*res.Model.Training != (eval.Training{Method: "kd", Alpha: 0.7, Temperature: 3}) ||
		res.Model.Architecture != "mlp 4-6-3 relu" || res.Teacher == nil || res.Teacher.Matched != n ||
		res.Teacher.SHA256 != fixtures.TeacherSHA || res.ECEReference != "labels" || res.Data.Kind != "cache" || res.Data.Column != "x" {
		t.Errorf("model/teacher/data info: %+v %+v %+v %+v", res.Model, res.Model.Training, res.Teacher, res.Data)
	}
	// 4·6+6 + 6·3+3 weights and biases + 2·4 standardization values.
	if res.Model.Params != 59 || !slices.Equal(res.Model.InputShape, []int64{4}) {
		t.Errorf("params %d, want 59; input shape %v", res.Model.Params, res.Model.InputShape)
	}
	// 120 rows in record batches of 16, re-chunked by 7: 16 = 7+7+2.
	if len(progress) == 0 || progress[len(progress)-1] != n || !sort.SliceIsSorted(progress, func(i, j int) bool { return progress[i] < progress[j] }) {
		t.Errorf("progress %v", progress)
	}
	if len(res.Latency) != 2 || res.Latency[0].Batch != 1 || res.Latency[1].Batch != 7 ||
		res.Latency[0].Runs < 100 || res.Latency[1].Runs < 10 || res.Latency[1].RunBatch != 0 ||
		!(res.Latency[0].P50 > 0 && res.Latency[0].P50 <= res.Latency[0].P99) {
		t.Errorf("latency %+v", res.Latency)
	}

	// A top-k teacher cache holding only the even rows, matched by row id:
	// agreement and KL over the k+1 buckets of those rows; ECE on labels.
	var trows []int64
	var tlogits []float32
	for i := 0; i < n; i += 2 {
		trows = append(trows, rows[i])
		tlogits = append(tlogits, logits[i*3:(i+1)*3]...)
	}
	tcache := fixtures.WriteClassCache(t, filepath.Join(tmp, "teacher-top2"), trows, nil, nil, tlogits, 2)
	table, err := eval.LoadTeacherTable(tcache)
	if err != nil {
		t.Fatal(err)
	}
	res = run(t, m, data, formats.Preprocess{}, nil, table, &eval.Options{Batch: 7})
	fixtures.CheckEval(t, res, fixtures.WantEval(got, labels, fixtures.TopKTeacher(logits, 3, 2, func(i int) bool { return i%2 == 0 })), n)
	if res.Teacher.Matched != n/2 || res.Teacher.Path != tcache || res.Teacher.Rows != n/2 || res.Latency != nil {
		t.Errorf("teacher %+v, latency %v", res.Teacher, res.Latency)
	}

	// The JSON form round-trips: it is what report reads.
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back eval.Result
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(&back, res) {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back, *res)
	}
}

// TestRunDataset evaluates a checkpoint on a dataset file with
// preprocessing and a separate labels file, and no teacher.
func TestRunDataset(t *testing.T) {
	ckpt := fixtures.WriteStudent(t, filepath.Join(t.TempDir(), "b.ckpt"), 0, nil)
	x4, y4 := filepath.Join(fixtures.Dir(), "tiny", "x4.npy"), filepath.Join(fixtures.Dir(), "tiny", "y4.npy")
	b := fixtures.ReadRows(t, x4, &dataset.Options{Labels: y4}, 64)
	x := slices.Clone(b.Cols["input"])
	for i := range x {
		x[i] *= 0.5
	}
	m, err := eval.OpenCheckpoint(ckpt, 1)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, m, x4, formats.Preprocess{Scale: 0.5}, &dataset.Options{Labels: y4}, nil, &eval.Options{Batch: 7})
	fixtures.CheckEval(t, res, fixtures.WantEval(logitsOf(t, ckpt, x, 7), b.Labels, func(int, []float64) ([]float64, []float64, int, bool) {
		return nil, nil, 0, false
	}), 64)
	if res.Teacher != nil || res.Agreement != nil || res.Data.Kind != "dataset" || res.Model.Training.Method != "labels" ||
		!slices.Equal(res.Data.Preprocessing, []string{"scale 0.5"}) {
		t.Errorf("teacher %+v, agreement %v, data %+v, training %+v", res.Teacher, res.Agreement, res.Data, res.Model.Training)
	}
}

// TestRunErrors checks that the caller's mistakes are ErrOption errors and
// the data's are not.
func TestRunErrors(t *testing.T) {
	tmp := t.TempDir()
	rows, x, labels, logits := fixtures.ClassData(20, 2)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	noInput := fixtures.WriteClassCache(t, filepath.Join(tmp, "no-input"), rows, nil, labels, logits, 0)
	five := fixtures.WriteClassCache(t, filepath.Join(tmp, "five"), rows, x, labels, slices.Repeat(logits, 2)[:20*5], 0)
	m, err := eval.OpenCheckpoint(fixtures.WriteStudent(t, filepath.Join(tmp, "s.ckpt"), 0.5, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eval.OpenData(data, nil, formats.Preprocess{Scale: 2}); !errors.Is(err, eval.ErrOption) {
		t.Errorf("preprocessing a cache: %v, want ErrOption", err)
	}
	if _, err := eval.OpenData(filepath.Join(tmp, "missing"), nil, formats.Preprocess{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing data: %v", err)
	}
	for _, tc := range []struct {
		data, input, teacher string
		option               bool
	}{
		{data, "y", "", true},
		{noInput, "", "", false},
		{data, "", five, false},
	} {
		d, err := eval.OpenData(tc.data, nil, formats.Preprocess{})
		if err != nil {
			t.Fatal(err)
		}
		var table *eval.TeacherTable
		if tc.teacher != "" {
			if table, err = eval.LoadTeacherTable(tc.teacher); err != nil {
				t.Fatal(err)
			}
		}
		_, err = eval.Run(context.Background(), m, d, table, &eval.Options{Input: tc.input})
		d.Close()
		if err == nil || errors.Is(err, eval.ErrOption) != tc.option {
			t.Errorf("%+v: %v, want ErrOption %v", tc, err, tc.option)
		}
	}
	// Cancelled: the context's error.
	d, err := eval.OpenData(data, nil, formats.Preprocess{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := eval.Run(ctx, m, d, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestAccumulator feeds hand-made scores: a NaN row, a label outside the
// classes, a teacher row with NaN scores, and checks each metric's
// treatment of them against plain arithmetic.
func TestAccumulator(t *testing.T) {
	nan := float32(math.NaN())
	scores := []float32{
		2, 0, 0, // pred 0, label 0: right
		0, 3, 0, // pred 1, label 2: wrong
		nan, 0, 0, // non-finite: wrong, no prediction, no KL, not binned
		0, 0, 1, // pred 2, label 7: out of range, wrong, binned as wrong
	}
	labels := []int64{0, 2, 1, 7}
	rows := []int64{10, 11, 12, 13}
	teacher := &eval.TeacherScores{N: 4, Classes: 3, Logits: []float32{
		1, 0, 0, // top 0: agrees
		0, 0, 5, // top 2: disagrees
		0, 1, 0, // top 1: the NaN row disagrees
		0, nan, 0, // NaN teacher: top-1 is 0, KL left out
	}}
	ms, acc, agree := eval.ClassifierMetrics(3, true, true)
	a := eval.NewAccumulator(3, ms...)
	a.Add(scores[:6], labels[:2], rows[:2], &eval.TeacherScores{N: 2, Classes: 3, Logits: teacher.Logits[:6]})
	a.Add(scores[6:], labels[2:], rows[2:], &eval.TeacherScores{N: 2, Classes: 3, Logits: teacher.Logits[6:]})
	var res eval.Result
	a.Fill(&res)
	if res.Rows != 4 || res.NonFinite != 1 || res.LabelsOutOfRange != 1 || *res.Errors != 3 || *res.Accuracy != 0.25 {
		t.Errorf("rows %d, non-finite %d, out of range %d, errors %d, accuracy %v", res.Rows, res.NonFinite, res.LabelsOutOfRange, *res.Errors, *res.Accuracy)
	}
	if acc.FirstBad != 7 || acc.FirstBadRow != 13 || agree.Matched() != 4 {
		t.Errorf("first bad label %d at row %d; matched %d", acc.FirstBad, acc.FirstBadRow, agree.Matched())
	}
	want := [][]int64{{1, 0, 0}, {0, 0, 0}, {0, 1, 0}} // the NaN row (label 1) predicts nothing; label 7 is left out
	if !reflect.DeepEqual(res.Confusion, want) {
		t.Errorf("confusion %v, want %v", res.Confusion, want)
	}
	if *res.Agreement != 0.25 {
		t.Errorf("agreement %v, want 1/4", *res.Agreement)
	}
	// KL over rows 0 and 1 only.
	kl := func(p, s []float32) float64 {
		pp, qq := fixtures.Softmax(p), fixtures.Softmax(s)
		var v float64
		for c := range pp {
			v += pp[c] * math.Log(pp[c]/qq[c])
		}
		return v
	}
	if k := (kl(teacher.Logits[:3], scores[:3]) + kl(teacher.Logits[3:6], scores[3:6])) / 2; math.Abs(*res.KL-k) > 1e-12 {
		t.Errorf("KL %v, want %v", *res.KL, k)
	}
	// Binned: rows 0 (right), 1 and 3 (wrong), by their confidences.
	var binned, right float64
	for _, b := range res.Reliability {
		binned += float64(b.Rows)
		if b.Accuracy != nil {
			right += *b.Accuracy * float64(b.Rows)
		}
	}
	if binned != 3 || math.Abs(right-1) > 1e-12 || res.ECEReference != "labels" {
		t.Errorf("reliability holds %v rows, %v right, reference %q", binned, right, res.ECEReference)
	}

	// No labels: no accuracy; ECE against the teacher.
	ms, acc, _ = eval.ClassifierMetrics(3, false, true)
	a = eval.NewAccumulator(3, ms...)
	a.Add(scores[:6], nil, rows[:2], &eval.TeacherScores{N: 2, Classes: 3, Logits: teacher.Logits[:6]})
	res = eval.Result{}
	a.Fill(&res)
	if acc != nil || res.Accuracy != nil || res.ECEReference != "teacher" || res.ECE == nil {
		t.Errorf("without labels: %+v", res)
	}
	// Neither: no ECE.
	ms, _, _ = eval.ClassifierMetrics(3, false, false)
	a = eval.NewAccumulator(3, ms...)
	a.Add(scores[:6], nil, rows[:2], nil)
	res = eval.Result{}
	a.Fill(&res)
	if res.ECE != nil || res.Agreement != nil || res.Rows != 2 {
		t.Errorf("without labels and teacher: %+v", res)
	}
}

// nll is a language-model metric written against the Metric interface
// alone, as a later per-token evaluation adds it: the mean negative
// log-likelihood of the label (the next token) in nats, and the perplexity
// exp(NLL).
type nll struct {
	sum  float64
	n    int64
	ppl  float64
	mean float64
}

func (m *nll) Add(p *eval.Position) {
	if p.Finite && p.HasLabel {
		m.sum -= p.LogQ[p.Label]
		m.n++
	}
}

func (m *nll) Fill(*eval.Result) {
	m.mean = m.sum / float64(m.n)
	m.ppl = math.Exp(m.mean)
}

// TestMetricPerToken evaluates a "language model" per token with the
// classifier loop: every token a position over a vocabulary of 5, its
// label the next token, the teacher's per-token scores beside it. A new
// metric (nll) joins Agreement and Accuracy without any other change.
func TestMetricPerToken(t *testing.T) {
	const vocab = 5
	// Two sequences of 4 tokens: positions are (sequence, token) rows.
	next := []int64{1, 2, 3, 4, 0, 0, 2, 1}
	var scores, tscores []float32
	for i := range next {
		for v := range vocab {
			scores = append(scores, float32((i+2*v)%vocab)*0.7)
			tscores = append(tscores, float32((i+v)%vocab))
		}
	}
	rows := []int64{0, 1, 2, 3, 100, 101, 102, 103}
	m := &nll{}
	agree := &eval.Agreement{}
	acc := eval.NewAccuracy(vocab)
	a := eval.NewAccumulator(vocab, m, agree, acc)
	a.Add(scores, next, rows, &eval.TeacherScores{N: len(next), Classes: vocab, Logits: tscores})
	var res eval.Result
	a.Fill(&res)

	var sum float64
	var agreeN, right int
	for i, y := range next {
		s := scores[i*vocab : (i+1)*vocab]
		sum -= math.Log(fixtures.Softmax(s)[y])
		pred := fixtures.Argmax(s)
		if pred == fixtures.Argmax(tscores[i*vocab:(i+1)*vocab]) {
			agreeN++
		}
		if pred == int(y) {
			right++
		}
	}
	wantNLL := sum / float64(len(next))
	if math.Abs(m.mean-wantNLL) > 1e-12 || math.Abs(m.ppl-math.Exp(wantNLL)) > 1e-9 {
		t.Errorf("NLL %v, perplexity %v; want %v, %v", m.mean, m.ppl, wantNLL, math.Exp(wantNLL))
	}
	if *res.Agreement != float64(agreeN)/8 || *res.Accuracy != float64(right)/8 || res.Rows != 8 {
		t.Errorf("agreement %v (want %d/8), accuracy %v (want %d/8), rows %d", *res.Agreement, agreeN, *res.Accuracy, right, res.Rows)
	}
}

func TestBenchLatency(t *testing.T) {
	calls := 0
	l, err := eval.BenchLatency(func() error { calls++; time.Sleep(50 * time.Microsecond); return nil }, 4, 5*time.Millisecond, 20)
	if err != nil {
		t.Fatal(err)
	}
	if l.Runs < 20 || calls != l.Runs+2 || l.Batch != 4 {
		t.Errorf("%d runs (%d calls), batch %d", l.Runs, calls, l.Batch)
	}
	if !(l.P50Batch >= 0.05 && l.P50Batch <= l.P99Batch) || math.Abs(l.P50*4-l.P50Batch) > 1e-12 ||
		math.Abs(l.Throughput-4/(l.P50Batch/1e3)) > 1e-6*l.Throughput {
		t.Errorf("latency %+v", l)
	}
	boom := errors.New("boom")
	if _, err := eval.BenchLatency(func() error { return boom }, 1, time.Millisecond, 1); err != boom {
		t.Errorf("error %v, want boom", err)
	}
}

// studentRunner runs a student as an eval.Runner, adding shift to class 0
// of every row: a stand-in for an exported model.
type studentRunner struct {
	s      *train.Student
	shift  float32
	probs  bool
	closed *bool
}

func (r studentRunner) Run(shape []int64, x []float32) ([][]float32, error) {
	n := int(shape[0])
	y := slices.Clone(r.s.Forward(train.Mat{Rows: n, Cols: len(x) / n, Data: x}).Data)
	C := len(y) / n
	for i := range n {
		y[i*C] += r.shift
	}
	out := [][]float32{y}
	if r.probs {
		var p []float32
		for i := range n {
			for _, v := range fixtures.Softmax(y[i*C : (i+1)*C]) {
				p = append(p, float32(v))
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func (r studentRunner) Close() error { *r.closed = true; return nil }

func TestParity(t *testing.T) {
	tmp := t.TempDir()
	const n = 300 // more than one ParityBatch
	rows, x, labels, logits := fixtures.ClassData(n, 3)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	c, err := train.Load(fixtures.WriteStudent(t, filepath.Join(tmp, "s.ckpt"), 0.5, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := fixtures.WantEval(logitsOf(t, filepath.Join(tmp, "s.ckpt"), x, eval.ParityBatch)[:250], labels[:250], func(int, []float64) ([]float64, []float64, int, bool) {
		return nil, nil, 0, false
	})
	var closed bool
	p, err := eval.Parity(context.Background(), c, data, 250, true, func() (eval.Runner, error) {
		return studentRunner{s: c.Student, probs: true, closed: &closed}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 250 || p.MaxDiff != 0 || p.Agree != 250 || p.Labeled != 250 || p.GoCorrect != want.Correct || p.ONNXCorrect != want.Correct ||
		!(p.MaxAbs > 0) || !(p.ProbsDiff < 1e-6) || !closed {
		t.Errorf("same model: %+v (want %d correct; closed %v)", p, want.Correct, closed)
	}
	p, err = eval.Parity(context.Background(), c, data, n, false, func() (eval.Runner, error) {
		return studentRunner{s: c.Student, shift: 5, closed: &closed}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != n || math.Abs(p.MaxDiff-5) > 1e-5 || p.Agree == n || p.Probs {
		t.Errorf("shifted model: %+v", p)
	}
	// A cache without the input column fails before the model is opened.
	noInput := fixtures.WriteClassCache(t, filepath.Join(tmp, "no-input"), rows, nil, labels, logits, 0)
	_, err = eval.Parity(context.Background(), c, noInput, n, false, func() (eval.Runner, error) {
		t.Error("opened the model for a cache without inputs")
		return nil, errors.New("no")
	})
	if err == nil {
		t.Error("no error for a cache without inputs")
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		cfg  train.Config
		want string
	}{
		{train.Config{Inputs: 784, Hidden: []int{800, 800}, Classes: 10}, "mlp 784-800-800-10 relu"},
		{train.Config{Type: "mlp", Inputs: 4, Classes: 3, Activation: train.GELU, LayerNorm: true, Dropout: 0.1}, "mlp 4-3 gelu layernorm dropout 0.1"},
	} {
		if got := eval.DescribeStudent(tc.cfg); got != tc.want {
			t.Errorf("DescribeStudent(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
	if l := eval.TrainingOf(0.9, 4, 10).Label(); l != "KD α=0.9 T=4" {
		t.Errorf("KD label %q", l)
	}
	if tr := eval.TrainingOf(0, 4, 10); tr.Method != "labels" || tr.Label() != "hard labels" {
		t.Errorf("hard-label training %+v, %q", tr, tr.Label())
	}
}

// TestRunNonFiniteInput: a NaN input value is an error naming its row.
func TestRunNonFiniteInput(t *testing.T) {
	tmp := t.TempDir()
	rows, x, labels, logits := fixtures.ClassData(30, 7)
	x[4*17+2] = float32(math.NaN())
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	m, err := eval.OpenCheckpoint(fixtures.WriteStudent(t, filepath.Join(tmp, "s.ckpt"), 0.5, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := eval.OpenData(data, nil, formats.Preprocess{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = eval.Run(context.Background(), m, d, nil, &eval.Options{Batch: 8})
	if err == nil || !strings.Contains(err.Error(), "row 1017 has a NaN or infinite input value") {
		t.Errorf("NaN input: %v", err)
	}
}

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

func runEvalJSON(t *testing.T, args ...string) *eval.Result {
	t.Helper()
	code, out, errOut := runDistill(append([]string{"eval", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("distill eval %q: exit %d\n%s", args, code, errOut)
	}
	var r eval.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("eval --json output: %v\n%s", err, out)
	}
	return &r
}

// studentLogits runs the checkpoint's student on x [n, 4] in batches of 7
// rows (as eval --batch 7 does, so the matrix products round the same).
func studentLogits(t *testing.T, ckpt string, x []float32) [][]float32 {
	t.Helper()
	c, err := train.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for lo := 0; lo < len(x)/4; lo += 7 {
		hi := min(lo+7, len(x)/4)
		y := c.Student.Forward(train.Mat{Rows: hi - lo, Cols: 4, Data: x[lo*4 : hi*4]})
		for r := range hi - lo {
			out = append(out, slices.Clone(y.Row(r)))
		}
	}
	return out
}

func TestEvalCheckpoint(t *testing.T) {
	tmp := t.TempDir()
	const n = 120
	rows, x, labels, logits := fixtures.ClassData(n, 1)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	ckpt := fixtures.WriteStudent(t, filepath.Join(tmp, "kd.ckpt"), 0.7, nil)
	got := studentLogits(t, ckpt, x)

	out := filepath.Join(tmp, "run", "eval", "kd.json")
	res := runEvalJSON(t, "--model", ckpt, "--data", data, "--batch", "7", "--threads", "1", "--bench-time", "1ms", "--out", out)
	fixtures.CheckEval(t, res, fixtures.WantEval(got, labels, fixtures.FullTeacher(logits, 3)), n)
	if res.Name != "kd" || res.Model.Kind != "checkpoint" || res.Model.Training == nil || res.Model.Training.Method != "kd" ||
		res.Model.Training.Alpha != 0.7 || res.Teacher == nil || res.Teacher.Matched != n || res.ECEReference != "labels" {
		t.Errorf("model/teacher info: %+v %+v %+v", res.Model, res.Model.Training, res.Teacher)
	}
	// 4·6+6 + 6·3+3 weights and biases + 2·4 standardization values.
	if res.Model.Params != 59 {
		t.Errorf("params %d, want 59", res.Model.Params)
	}
	if st, err := os.Stat(filepath.Join(ckpt, train.ModelFile)); err != nil || res.Model.FileBytes != st.Size() {
		t.Errorf("file bytes %d, want model.safetensors' size (%v)", res.Model.FileBytes, err)
	}
	if len(res.Latency) != 2 || res.Latency[0].Batch != 1 || res.Latency[1].Batch != 7 ||
		res.Latency[0].Runs < 100 || res.Latency[1].Runs < 10 ||
		!(res.Latency[0].P50 > 0 && res.Latency[0].P50 <= res.Latency[0].P99) {
		t.Errorf("latency %+v", res.Latency)
	}
	// --out holds what --json printed.
	var file eval.Result
	if data, err := os.ReadFile(out); err != nil || json.Unmarshal(data, &file) != nil || file.Name != "kd" || *file.Accuracy != *res.Accuracy {
		t.Errorf("--out %s: %v", out, err)
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
	res = runEvalJSON(t, "--model", ckpt, "--data", data, "--teacher-cache", tcache, "--batch", "7", "--threads", "1", "--bench-time", "0")
	fixtures.CheckEval(t, res, fixtures.WantEval(got, labels, fixtures.TopKTeacher(logits, 3, 2, func(i int) bool { return i%2 == 0 })), n)
	if res.Teacher.Matched != n/2 || res.Teacher.Path != tcache || res.Latency != nil {
		t.Errorf("teacher %+v, latency %v", res.Teacher, res.Latency)
	}

	// People's output.
	code, text, errOut := runDistill("eval", "--model", ckpt, "--data", data, "--bench-time", "0")
	for _, want := range []string{"kd (checkpoint, KD α=0.7 T=3)", "accuracy", "errors", "agreement", "KL(teacher‖model)", "ECE", "params             59",
		"per class:", "reliability", "confusion matrix (rows: label, columns: prediction)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if code != 0 {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestEvalCheckpointDataset evaluates a checkpoint on a dataset file with
// preprocessing and a separate labels file, and no teacher.
func TestEvalCheckpointDataset(t *testing.T) {
	tmp := t.TempDir()
	ckpt := fixtures.WriteStudent(t, filepath.Join(tmp, "b.ckpt"), 0, nil)
	x4, y4 := "../../fixtures/tiny/x4.npy", "../../fixtures/tiny/y4.npy"
	b := fixtures.ReadRows(t, x4, &dataset.Options{Labels: y4}, 64)
	x := slices.Clone(b.Cols["input"])
	for i := range x {
		x[i] *= 0.5
	}
	res := runEvalJSON(t, "--model", ckpt, "--data", x4, "--labels", y4, "--scale", "1/2", "--batch", "7", "--threads", "1", "--bench-time", "0")
	fixtures.CheckEval(t, res, fixtures.WantEval(studentLogits(t, ckpt, x), b.Labels, func(int, []float64) ([]float64, []float64, int, bool) {
		return nil, nil, 0, false
	}), 64)
	if res.Teacher != nil || res.Agreement != nil || res.Data.Kind != "dataset" || res.Model.Training.Method != "labels" ||
		!slices.Equal(res.Data.Preprocessing, []string{"scale 0.5"}) {
		t.Errorf("teacher %+v, agreement %v, data %+v, training %+v", res.Teacher, res.Agreement, res.Data, res.Model.Training)
	}
}

// TestEvalONNX evaluates the tiny fixture MLP through the command line:
// the flags that reach eval/onnxmodel (--output, --scores, --threads) and
// eval (--batch, --bench-time, --teacher-cache, --labels). The metrics of
// every fixture variant are eval/onnxmodel's TestRunONNX. Per
// fixtures/tiny/README.md the models compute x4_logits.npy and get 56 of
// the 64 labels of y4.npy right.
func TestEvalONNX(t *testing.T) {
	requireLib(t)
	x4, y4 := "../../fixtures/tiny/x4.npy", "../../fixtures/tiny/y4.npy"
	xb := fixtures.ReadRows(t, x4, &dataset.Options{Labels: y4}, 64)
	ref := fixtures.ReadRows(t, "../../fixtures/tiny/x4_logits.npy", nil, 64).Cols["input"]
	cache := fixtures.WriteClassCache(t, filepath.Join(t.TempDir(), "c4"), xb.Rows, xb.Cols["input"], xb.Labels, ref, 0)
	var refRows [][]float32
	for i := range 64 {
		refRows = append(refRows, ref[i*3:(i+1)*3])
	}
	want := fixtures.WantEval(refRows, xb.Labels, fixtures.FullTeacher(ref, 3))
	want.KL = 0

	// The fixed-batch softmax model, its logits named: run at batch 10.
	res := runEvalJSON(t, "--model", "../../fixtures/tiny/mlp_softmax_fixed10.onnx", "--data", cache, "--output", "logits_pre",
		"--scores", "logits", "--batch", "16", "--threads", "1", "--bench-time", "5ms")
	fixtures.CheckEval(t, res, want, 64)
	if res.Model.ScoreTensor != "logits_pre" || res.Model.ScoreKind != "logits" || res.Threads != 1 ||
		len(res.Latency) != 2 || res.Latency[0].RunBatch != 10 || res.Latency[1].Batch != 16 || res.Latency[1].RunBatch != 10 {
		t.Errorf("model %+v, latency %+v", res.Model, res.Latency)
	}

	// The dataset file itself, the teacher from the cache by row id.
	res = runEvalJSON(t, "--model", "../../fixtures/tiny/mlp_logits.onnx", "--data", x4, "--labels", y4, "--teacher-cache", cache, "--bench-time", "0")
	fixtures.CheckEval(t, res, want, 64)
	if res.Data.Kind != "dataset" || res.Teacher.Matched != 64 {
		t.Errorf("data %+v teacher %+v", res.Data, res.Teacher)
	}
}

func TestEvalErrors(t *testing.T) {
	tmp := t.TempDir()
	rows, x, labels, logits := fixtures.ClassData(20, 2)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	ckpt := fixtures.WriteStudent(t, filepath.Join(tmp, "s.ckpt"), 0.5, nil)
	other := fixtures.WriteClassCache(t, filepath.Join(tmp, "five"), rows, x, labels, slices.Repeat(logits, 2)[:20*5], 0)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data", data}, exitUsage, "--model is required"},
		{[]string{"--model", ckpt}, exitUsage, "--data is required"},
		{[]string{"--model", ckpt, "--data", data, "--report"}, exitUsage, "--report needs --out"},
		{[]string{"--model", ckpt, "--data", data, "--batch", "0"}, exitUsage, "--batch 0"},
		{[]string{"--model", ckpt, "--data", data, "--scale", "1/0"}, exitUsage, "--scale"},
		{[]string{"--model", ckpt, "--data", data, "--scale", "2"}, exitUsage, "apply to dataset files"},
		{[]string{"--model", ckpt, "--data", data, "--input", "y"}, exitUsage, `no such input column`},
		{[]string{"--model", filepath.Join(tmp, "none.ckpt"), "--data", data}, exitFailure, "no such file"},
		{[]string{"--model", ckpt, "--data", data, "--teacher-cache", other}, exitFailure, "the model scores 3 classes but the teacher"},
		{[]string{"--model", "../../fixtures/tiny/two_inputs.onnx", "--data", data}, exitFailure, "eval feeds models with one input"},
	} {
		code, _, stderr := runDistill(append([]string{"eval", "--bench-time", "0"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("distill eval %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
}

// TestEvalExportedStudent evaluates a checkpoint and its ONNX export (distill
// export) on the same cache: the same predictions, parameter count and
// training method (from the export's metadata).
func TestEvalExportedStudent(t *testing.T) {
	requireLib(t)
	tmp := t.TempDir()
	rows, x, labels, logits := fixtures.ClassData(100, 6)
	data := fixtures.WriteClassCache(t, filepath.Join(tmp, "cache"), rows, x, labels, logits, 0)
	ckpt := fixtures.WriteStudent(t, filepath.Join(tmp, "kd.ckpt"), 0.7, nil)
	c, err := train.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	onnx := filepath.Join(tmp, "kd.onnx")
	if err := export.WriteFile(onnx, c, nil); err != nil {
		t.Fatal(err)
	}
	a := runEvalJSON(t, "--model", ckpt, "--data", data, "--bench-time", "0", "--threads", "1")
	b := runEvalJSON(t, "--model", onnx, "--data", data, "--bench-time", "0", "--threads", "1")
	if *a.Errors != *b.Errors || *a.Agreement != *b.Agreement || !slices.EqualFunc(a.Confusion, b.Confusion, slices.Equal) ||
		math.Abs(*a.KL-*b.KL) > 1e-5 || math.Abs(*a.ECE-*b.ECE) > 1e-5 {
		t.Errorf("checkpoint: %d errors, agreement %v, KL %v, ECE %v; ONNX: %d, %v, %v, %v",
			*a.Errors, *a.Agreement, *a.KL, *a.ECE, *b.Errors, *b.Agreement, *b.KL, *b.ECE)
	}
	if a.Model.Params != b.Model.Params || b.Model.Training == nil || *b.Model.Training != *a.Model.Training {
		t.Errorf("checkpoint %d params, training %+v; ONNX %d params, training %+v", a.Model.Params, a.Model.Training, b.Model.Params, b.Model.Training)
	}
}

package onnxmodel_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/eval/onnxmodel"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

func tiny(name string) string { return filepath.Join(fixtures.Dir(), "tiny", name) }

func evaluate(t *testing.T, model string, o *onnxmodel.Options, data string, dso *dataset.Options, teacher *eval.TeacherTable, eo *eval.Options) *eval.Result {
	t.Helper()
	m, err := onnxmodel.Open(model, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := eval.OpenData(data, dso, formats.Preprocess{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := eval.Run(context.Background(), m, d, teacher, eo)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRunONNX evaluates the tiny fixture MLP in its variants (logits,
// softmax with a fixed batch of 10, log-softmax, ZipMap probabilities,
// float64) through onnxruntime. Per fixtures/tiny/README.md they all
// compute x4_logits.npy exactly (up to the softmax's rounding), and get
// 56 of the 64 labels of y4.npy right.
func TestRunONNX(t *testing.T) {
	lib := fixtures.RequireLib(t)
	x4, y4 := tiny("x4.npy"), tiny("y4.npy")
	xb := fixtures.ReadRows(t, x4, &dataset.Options{Labels: y4}, 64)
	ref := fixtures.ReadRows(t, tiny("x4_logits.npy"), nil, 64).Cols["input"]
	cache := fixtures.WriteClassCache(t, filepath.Join(t.TempDir(), "c4"), xb.Rows, xb.Cols["input"], xb.Labels, ref, 0)
	var refRows [][]float32
	for i := range 64 {
		refRows = append(refRows, ref[i*3:(i+1)*3])
	}
	want := fixtures.WantEval(refRows, xb.Labels, fixtures.FullTeacher(ref, 3))
	if want.Correct != 56 || want.Agree != 64 {
		t.Fatalf("reference: %d right, %d agree; the fixture says 56 and 64", want.Correct, want.Agree)
	}
	want.KL = 0

	for _, tc := range []struct {
		model string
		bench time.Duration
		kind  string
	}{
		{"mlp_logits.onnx", 0, "logits"},
		{"mlp_softmax_fixed10.onnx", 5 * time.Millisecond, "logits"},
		{"mlp_logsoftmax.onnx", 0, "logits"},
		{"zipmap_probs.onnx", 0, "logits"}, // ZipMap ← Softmax ← logits_pre
		{"mlp_f64.onnx", 0, "logits"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			model := tiny(tc.model)
			res := evaluate(t, model, &onnxmodel.Options{Lib: lib, Threads: 1}, cache, nil, nil, &eval.Options{Batch: 16, BenchTime: tc.bench})
			fixtures.CheckEval(t, res, want, 64)
			if res.Model.Kind != "onnx" || res.Model.ScoreKind != tc.kind || res.Model.Input != "x" || res.Model.Params != 67 ||
				!strings.HasPrefix(res.Model.Producer, "distill-fixtures") || res.Model.Training != nil {
				t.Errorf("model info %+v, want score kind %s, input x, 4·8+8+8·3+3 = 67 params", res.Model, tc.kind)
			}
			if st, _ := os.Stat(model); res.Model.FileBytes != st.Size() {
				t.Errorf("file bytes %d, want %d", res.Model.FileBytes, st.Size())
			}
			if tc.bench > 0 {
				if len(res.Latency) != 2 || res.Latency[0].RunBatch != 10 || res.Latency[1].Batch != 16 || res.Latency[1].RunBatch != 10 {
					t.Errorf("latency %+v", res.Latency)
				}
			}
		})
	}

	// NaN scores (rows listed in fixtures/tiny/README.md) are errors and
	// disagreements, left out of KL and ECE.
	nan := []int{8, 9, 11, 14, 36, 39, 42, 49, 50, 56}
	res := evaluate(t, tiny("nan_out.onnx"), &onnxmodel.Options{Lib: lib}, cache, nil, nil, nil)
	right := 0
	for i := range 64 {
		if !slices.Contains(nan, i) && fixtures.Argmax(refRows[i]) == int(xb.Labels[i]) {
			right++
		}
	}
	if res.NonFinite != 10 || *res.Errors != int64(64-right) || *res.Agreement != 54.0/64 || *res.KL > 1e-6 || res.Reliability == nil {
		t.Errorf("nan_out: %d non-finite, %d errors (want %d), agreement %v, KL %v", res.NonFinite, *res.Errors, 64-right, *res.Agreement, *res.KL)
	}

	// The dataset file itself, the teacher from the cache by row id.
	table, err := eval.LoadTeacherTable(cache)
	if err != nil {
		t.Fatal(err)
	}
	res = evaluate(t, tiny("mlp_logits.onnx"), &onnxmodel.Options{Lib: lib}, x4, &dataset.Options{Labels: y4}, table, nil)
	fixtures.CheckEval(t, res, want, 64)
	if res.Data.Kind != "dataset" || res.Teacher.Matched != 64 {
		t.Errorf("data %+v teacher %+v", res.Data, res.Teacher)
	}

	// The scores named and their kind forced: the softmax model's logits.
	res = evaluate(t, tiny("mlp_softmax_fixed10.onnx"), &onnxmodel.Options{Lib: lib, Output: "logits_pre", Scores: extract.Logits}, cache, nil, nil, nil)
	fixtures.CheckEval(t, res, want, 64)
	if res.Model.ScoreTensor != "logits_pre" {
		t.Errorf("score tensor %q", res.Model.ScoreTensor)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := onnxmodel.Open(tiny("two_inputs.onnx"), nil); err == nil {
		t.Error("two inputs: no error")
	}
	if _, err := onnxmodel.Open(tiny("x4.npy"), nil); err == nil {
		t.Error("not a model: no error")
	}
	if _, err := onnxmodel.Open(tiny("mlp_logits.onnx"), &onnxmodel.Options{Output: "nope"}); err == nil {
		t.Error("unknown --output: no error")
	}
}

func TestParams(t *testing.T) {
	m, err := extract.LoadModel(tiny("mlp_logits.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// W1 4×8, b1 8, W2 8×3, b2 3.
	if n := onnxmodel.Params(m.Proto); n != 67 {
		t.Errorf("Params = %d, want 67", n)
	}
}

// TestRunner runs mlp_logits through a Runner: its logits are
// x4_logits.npy bit for bit (fixtures/tiny/README.md).
func TestRunner(t *testing.T) {
	lib := fixtures.RequireLib(t)
	data, err := os.ReadFile(tiny("mlp_logits.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := onnxmodel.NewRunner(lib, data, "x", []string{"logits"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	x := fixtures.ReadRows(t, tiny("x4.npy"), nil, 64).Cols["input"]
	ref := fixtures.ReadRows(t, tiny("x4_logits.npy"), nil, 64).Cols["input"]
	out, err := r.Run([]int64{64, 4}, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || !slices.Equal(out[0], ref) {
		t.Errorf("logits differ from x4_logits.npy")
	}
}

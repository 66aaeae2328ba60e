//go:build cgo

package extract

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// readCache reads every row of the cache at dir.
func readCache(t testing.TB, dirs ...string) (*formats.Cache, []formats.Batch) {
	t.Helper()
	c, err := formats.Open(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var all []formats.Batch
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, *b.Clone())
	}
	return c, all
}

// readJoined reads every row of the cache at dir as one batch, in the
// order the cache lists them.
func readJoined(t testing.TB, dirs ...string) *formats.Batch {
	t.Helper()
	_, bs := readCache(t, dirs...)
	all := &formats.Batch{Hidden: map[string][]float32{}}
	for _, b := range bs {
		all.Rows = append(all.Rows, b.Rows...)
		all.Labels = append(all.Labels, b.Labels...)
		all.Logits = append(all.Logits, b.Logits...)
		all.TopKIndex = append(all.TopKIndex, b.TopKIndex...)
		all.TopKLogit = append(all.TopKLogit, b.TopKLogit...)
		all.LogSumExp = append(all.LogSumExp, b.LogSumExp...)
		all.SampleCount = append(all.SampleCount, b.SampleCount...)
		for k, v := range b.Hidden {
			all.Hidden[k] = append(all.Hidden[k], v...)
		}
	}
	return all
}

// accuracy is argmax of the cached scores against the cached labels.
func accuracy(t testing.TB, batches []formats.Batch, classes int) (correct, n int) {
	for _, b := range batches {
		if len(b.Labels) != b.Len() {
			t.Fatalf("cache has no labels")
		}
		for i := range b.Rows {
			row := b.Logits[i*classes : (i+1)*classes]
			best := 0
			for c := range row {
				if row[c] > row[best] {
					best = c
				}
			}
			if int64(best) == b.Labels[i] {
				correct++
			}
			n++
		}
	}
	return correct, n
}

func mnistTest(t testing.TB) string {
	dir, err := dataset.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
}

// TestSharedTeachersAccuracy extracts every third-party teacher in
// ../shared/teachers and reproduces the accuracy its README states from the
// cache alone (argmax of the cached scores against the labels).
func TestSharedTeachersAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("full MNIST test set through five teachers")
	}
	dir := sharedTeachers(t)
	rt := requireRuntime(t)
	iris := filepath.Join(dir, "data", "iris.csv")
	norm := Preprocess{Scale: 1.0 / 255, Mean: []float64{0.1307}, Std: []float64{0.3081}}
	tests := []struct {
		teacher string
		data    string
		pre     Preprocess
		ds      *dataset.Options
		want    int // correct rows, from ../shared/teachers/README.md
		rows    int
		hidden  string
		kind    formats.ScoreKind
	}{
		{"mnist8-zoo.onnx", mnistTest(t), Preprocess{}, nil, 9891, 10000, "Pooling160_Output_0_reshape0", formats.ScoreLogits},
		{"mnist-lenet5-dynbatch.onnx", mnistTest(t), Preprocess{}, nil, 9826, 10000, "/net/net.10/Relu_output_0", formats.ScoreLogits},
		{"mnist-lenet5-b10-softmax.onnx", mnistTest(t), norm, nil, 9913, 10000, "22", formats.ScoreLogits},
		{"iris-rf-skl2onnx.onnx", iris, Preprocess{}, &dataset.Options{Label: "virginica", Features: []string{"150", "4", "setosa", "versicolor"}}, 147, 150, "", formats.ScoreLogProbs},
		{"iris2-xgboost-skl2onnx.onnx", iris, Preprocess{}, &dataset.Options{Label: "virginica", Features: []string{"150", "4"}}, 128, 150, "variable", formats.ScoreLogProbs},
	}
	for _, tc := range tests {
		t.Run(tc.teacher, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "cache")
			o := Options{Teacher: filepath.Join(dir, tc.teacher), Data: tc.data, Out: out, Preprocess: tc.pre,
				Dataset: tc.ds, Threads: 2, PartRows: 4096}
			if tc.hidden != "" {
				o.Hidden = []string{tc.hidden}
			}
			if _, err := rt.Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			c, batches := readCache(t, out)
			if got := c.Manifest().ScoreKind; got != tc.kind {
				t.Errorf("score kind %q, want %q", got, tc.kind)
			}
			correct, n := accuracy(t, batches, c.Config().Classes)
			if n != tc.rows || correct != tc.want {
				t.Errorf("accuracy from the cache: %d/%d, README says %d/%d", correct, n, tc.want, tc.rows)
			}
			if tc.hidden != "" && len(batches[0].Hidden[tc.hidden]) == 0 {
				t.Errorf("hidden %q not cached", tc.hidden)
			}
		})
	}
}

// TestProjectTeacher extracts the project's own teacher with its hidden
// layer and checks the cached logits and hidden state against the torch
// reference outputs stored beside it.
func TestProjectTeacher(t *testing.T) {
	rt := requireRuntime(t)
	out := filepath.Join(t.TempDir(), "cache")
	o := Options{Teacher: "../fixtures/teacher/mnist_cnn.onnx", Data: mnistTest(t), Out: out,
		Preprocess: Preprocess{Scale: 1.0 / 255}, Hidden: []string{"hidden"}, KeepInput: true, Threads: 2, Batch: 100}
	if testing.Short() {
		o.Data = "../fixtures/teacher/ref_image16.npy"
		o.Dataset = &dataset.Options{Labels: "../fixtures/teacher/ref_label16.npy"}
		o.Preprocess = Preprocess{}
	}
	res, err := rt.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Source.Tensor != "logits" || res.Source.Kind != Logits {
		t.Errorf("score source %+v", res.Source)
	}
	c, batches := readCache(t, out)
	refLogits := readNpy(t, "../fixtures/teacher/ref_logits16.npy")
	refHidden := readNpy(t, "../fixtures/teacher/ref_hidden16.npy")
	b := batches[0]
	for i := 0; i < 16; i++ {
		for k := 0; k < 10; k++ {
			if d := math.Abs(float64(b.Logits[i*10+k] - refLogits[i*10+k])); d > 1e-4 {
				t.Fatalf("row %d logit %d: %v vs torch %v", i, k, b.Logits[i*10+k], refLogits[i*10+k])
			}
		}
		for k := 0; k < 128; k++ {
			if d := math.Abs(float64(b.Hidden["hidden"][i*128+k] - refHidden[i*128+k])); d > 1e-4 {
				t.Fatalf("row %d hidden %d: %v vs torch %v", i, k, b.Hidden["hidden"][i*128+k], refHidden[i*128+k])
			}
		}
	}
	if got := len(b.Inputs["image"]); got != b.Len()*784 {
		t.Errorf("kept %d input values for %d rows", got, b.Len())
	}
	if !testing.Short() {
		correct, n := accuracy(t, batches, c.Config().Classes)
		if n != 10000 || correct != 9929 {
			t.Errorf("teacher accuracy from the cache %d/%d, fixtures/teacher/README.md says 9929/10000", correct, n)
		}
	}
}

func readNpy(t testing.TB, path string) []float32 {
	t.Helper()
	ds, err := dataset.Open(path, &dataset.Options{Label: dataset.NoLabel})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var b dataset.Batch
	if err := ds.Read(0, ds.Len(), &b); err != nil {
		t.Fatal(err)
	}
	return b.Cols[ds.Columns()[0].Name]
}

const tiny = "../fixtures/tiny/"

func tinyOpts(t testing.TB, model string) Options {
	return Options{Teacher: tiny + model, Data: tiny + "x4.npy", Out: filepath.Join(t.TempDir(), "cache"),
		Dataset: &dataset.Options{Labels: tiny + "y4.npy"}, Batch: 16, Threads: 1}
}

// TestTinyModels runs every tiny fixture model and compares the cached
// scores and hidden state with the references computed in numpy.
func TestTinyModels(t *testing.T) {
	rt := requireRuntime(t)
	logits := readNpy(t, tiny+"x4_logits.npy")
	hidden := readNpy(t, tiny+"x4_h.npy")
	tests := []struct {
		model    string
		want     []float32
		kind     formats.ScoreKind
		tensor   string
		tol      float64
		relaxed  bool
		batch    int
		dataOpts *dataset.Options
	}{
		{model: "mlp_logits.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits", tol: 0},
		{model: "mlp_softmax_fixed10.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits_pre", tol: 0, relaxed: true},
		{model: "mlp_logsoftmax.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits_pre", tol: 0},
		{model: "mlp_f64.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits", tol: 0},
		{model: "mlp_f16.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits", tol: 2e-3},
		{model: "fixed_batch1.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits", tol: 0, relaxed: true},
		{model: "zipmap_probs.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits_pre", tol: 0},
		{model: "mlp_softmax_fixed10.onnx", want: logits, kind: formats.ScoreLogits, tensor: "logits_pre", tol: 0, relaxed: false, batch: 10},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			o := tinyOpts(t, tc.model)
			o.Hidden = []string{"h"}
			if tc.batch > 0 {
				o.Batch = tc.batch
			}
			res, err := rt.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Source.Tensor != tc.tensor || res.Relaxed != tc.relaxed {
				t.Errorf("read scores from %q (relaxed %v), want %q (relaxed %v): %s", res.Source.Tensor, res.Relaxed, tc.tensor, tc.relaxed, res.Source.Why)
			}
			c, batches := readCache(t, o.Out)
			if c.Manifest().ScoreKind != tc.kind {
				t.Errorf("score kind %q, want %q", c.Manifest().ScoreKind, tc.kind)
			}
			var got, h []float32
			var labels []int64
			for _, b := range batches {
				got = append(got, b.Logits...)
				h = append(h, b.Hidden["h"]...)
				labels = append(labels, b.Labels...)
			}
			if len(got) != 64*3 || len(h) != 64*8 || len(labels) != 64 {
				t.Fatalf("cached %d scores, %d hidden, %d labels; want 192, 512, 64", len(got), len(h), len(labels))
			}
			for i := range got {
				if d := math.Abs(float64(got[i] - tc.want[i])); d > tc.tol {
					t.Fatalf("score %d = %v, want %v (tolerance %g)", i, got[i], tc.want[i], tc.tol)
				}
			}
			for i := range h {
				if h[i] != hidden[i] {
					t.Fatalf("hidden %d = %v, want %v", i, h[i], hidden[i])
				}
			}
			if correct, _ := accuracy(t, batches, 3); correct != 56 {
				t.Errorf("accuracy %d/64, want 56 (y4.npy is built so)", correct)
			}
		})
	}
}

func TestTopKMatchesFull(t *testing.T) {
	rt := requireRuntime(t)
	full := tinyOpts(t, "mlp_logits.onnx")
	top := tinyOpts(t, "mlp_logits.onnx")
	top.TopK = 2
	top.Dtype = "f16"
	for _, o := range []Options{full, top} {
		if _, err := rt.Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	_, fb := readCache(t, full.Out)
	c, tb := readCache(t, top.Out)
	if c.Config().TopK != 2 || c.Config().ScoreDtype != formats.Float16 {
		t.Fatalf("config %+v", c.Config())
	}
	for bi := range fb {
		for r := range fb[bi].Rows {
			row := fb[bi].Logits[r*3 : r*3+3]
			lse := formats.LogSumExp(row)
			if d := math.Abs(float64(tb[bi].LogSumExp[r]) - lse); d > 1e-5 {
				t.Fatalf("row %d logsumexp %v, want %v", r, tb[bi].LogSumExp[r], lse)
			}
			i0, i1 := tb[bi].TopKIndex[r*2], tb[bi].TopKIndex[r*2+1]
			if row[i0] < row[i1] || math.Abs(float64(tb[bi].TopKLogit[r*2]-row[i0])) > 2e-3 {
				t.Fatalf("row %d: top-2 %v %v of %v", r, i0, i1, row)
			}
		}
	}
}

func TestTwoInputs(t *testing.T) {
	rt := requireRuntime(t)
	path := writeTwoInputs(t)
	o := tinyOpts(t, "two_inputs.onnx")
	o.Data, o.Dataset = path, nil
	if _, err := rt.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	_, batches := readCache(t, o.Out)
	want := readNpy(t, tiny+"x4_logits.npy")
	var got []float32
	for _, b := range batches {
		got = append(got, b.Logits...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("score %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestNonFiniteScores(t *testing.T) {
	rt := requireRuntime(t)
	o := tinyOpts(t, "nan_out.onnx")
	_, err := rt.Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "rows 8, 9, 11, 14") || !strings.Contains(err.Error(), "--allow-nonfinite") {
		t.Fatalf("err = %v; want the NaN rows named and the flag suggested", err)
	}
	o = tinyOpts(t, "nan_out.onnx")
	o.AllowNonFinite = true
	if _, err := rt.Run(context.Background(), o); err != nil {
		t.Fatalf("--allow-nonfinite: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	rt := requireRuntime(t)
	notOnnx := filepath.Join(t.TempDir(), "model.onnx")
	os.WriteFile(notOnnx, []byte("definitely not protobuf \xff\xff\xff"), 0o644)
	truncated := filepath.Join(t.TempDir(), "trunc.onnx")
	data, _ := os.ReadFile(tiny + "mlp_logits.onnx")
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	tests := []struct {
		name string
		edit func(*Options)
		want []string
	}{
		{"missing model", func(o *Options) { o.Teacher = "nope.onnx" }, []string{"nope.onnx", "no such file"}},
		{"not onnx", func(o *Options) { o.Teacher = notOnnx }, []string{"not an ONNX model"}},
		{"truncated model", func(o *Options) { o.Teacher = truncated }, []string{"trunc.onnx"}},
		{"shape mismatch", func(o *Options) { o.Teacher = "../fixtures/teacher/mnist_cnn.onnx" }, []string{"4 values per row", "[N,1,28,28]", "784"}},
		{"unknown hidden", func(o *Options) { o.Hidden = []string{"hh"} }, []string{`no tensor named "hh"`, `"h"`}},
		{"topk too large", func(o *Options) { o.TopK = 4 }, []string{"--topk 4", "3 classes"}},
		{"bad dtype", func(o *Options) { o.Dtype = "f8" }, []string{"--dtype"}},
		{"bad shard", func(o *Options) { o.ShardIndex, o.ShardCount = 3, 3 }, []string{"shard 3/3"}},
		{"missing data", func(o *Options) { o.Data = "nope.npy" }, []string{"nope.npy"}},
		{"bad mean", func(o *Options) { o.Preprocess.Mean = []float64{1, 2} }, []string{"--mean has 2 values"}},
		{"provider missing", func(o *Options) { o.Provider = "cuda" }, []string{"execution provider cuda is not available", "--ort-lib"}},
		{"unknown provider", func(o *Options) { o.Provider = "tpu" }, []string{`unknown --provider "tpu"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tinyOpts(t, "mlp_logits.onnx")
			tc.edit(&o)
			_, err := rt.Run(context.Background(), o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(o.Out); len(entries) > 0 {
				t.Errorf("a failed run left %d files in %s", len(entries), o.Out)
			}
		})
	}
}

func TestResumeRefusesOtherSettings(t *testing.T) {
	rt := requireRuntime(t)
	o := tinyOpts(t, "mlp_logits.onnx")
	o.PartRows = 16
	if _, err := rt.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	again := o
	if _, err := rt.Run(context.Background(), again); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("second run into the same --out: %v", err)
	}
	other := o
	other.Resume = true
	other.Teacher = tiny + "mlp_logsoftmax.onnx"
	other.TopK = 2
	_, err := rt.Run(context.Background(), other)
	if !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), "teacher sha256") || !strings.Contains(err.Error(), "--topk") {
		t.Fatalf("resume with another teacher and --topk: %v", err)
	}
	// The recorded recipe for the inputs (format 1.1) must match too.
	renamed := o
	renamed.Resume = true
	renamed.Dataset = &dataset.Options{Labels: tiny + "y4.npy", FeatureName: "z"}
	_, err = rt.Run(context.Background(), renamed)
	if !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), "dataset inputs") || !strings.Contains(err.Error(), "dataset options") {
		t.Fatalf("resume with another dataset column name: %v", err)
	}
	same := o
	same.Resume = true
	res, err := rt.Run(context.Background(), same)
	if err != nil || res.Rows != 0 || res.Skipped != 64 {
		t.Fatalf("resume of a complete cache: %+v, %v", res, err)
	}
}

// TestShardsReadAsOne extracts in three shards into one directory and
// checks that it reads as the unsharded cache, and that a missing shard is
// reported.
func TestShardsReadAsOne(t *testing.T) {
	rt := requireRuntime(t)
	whole := tinyOpts(t, "mlp_logits.onnx")
	whole.PartRows = 8
	if _, err := rt.Run(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(t.TempDir(), "sharded")
	for i := 0; i < 3; i++ {
		o := whole
		o.Out, o.ShardIndex, o.ShardCount = parent, i, 3
		if i == 1 {
			continue
		}
		if _, err := rt.Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := formats.Open(parent); !errors.Is(err, formats.ErrIncomplete) || !strings.Contains(err.Error(), "[1]") {
		t.Fatalf("open with shard 1 missing: %v", err)
	}
	o := whole
	o.Out, o.ShardIndex, o.ShardCount = parent, 1, 3
	if _, err := rt.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	_, a := readCache(t, whole.Out)
	_, b := readCache(t, parent)
	flat := func(bs []formats.Batch) (rows []int64, logits []float32) {
		for _, x := range bs {
			rows = append(rows, x.Rows...)
			logits = append(logits, x.Logits...)
		}
		return
	}
	ra, la := flat(a)
	rb, lb := flat(b)
	if len(ra) != 64 || len(rb) != 64 {
		t.Fatalf("rows: %d unsharded, %d sharded", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i] != rb[i] || la[i*3] != lb[i*3] {
			t.Fatalf("row %d differs: %d/%v vs %d/%v", i, ra[i], la[i*3], rb[i], lb[i*3])
		}
	}
}

package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// smallCache is the training data most tests share: 600 rows in 3 parts of
// units of 64 rows, 6 inputs, 4 classes, a hidden state of 5.
func smallCache(t testing.TB, dir string, mod func(*synth)) *formats.Cache {
	s := synth{Rows: 600, Inputs: 6, Classes: 4, Hidden: 5, RowsPerBatch: 64, RowsPerPart: 200, Seed: 1}
	if mod != nil {
		mod(&s)
	}
	return writeSynth(t, dir, s)
}

func TestTrainLearns(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	val := smallCache(t, filepath.Join(tmp, "val"), func(s *synth) { s.Rows, s.Seed = 300, 2; s.RowsPerPart = 300 })
	for _, tc := range []struct {
		name string
		cfg  Config
		o    Options
	}{
		{"kd", Config{Hidden: []int{32}}, Options{Temperature: 2, Alpha: 0.9, LR: 3e-3}},
		{"labels", Config{Hidden: []int{32}}, Options{LR: 3e-3}},
		{"teacher-only-features-cosine-sgd", Config{Hidden: []int{16, 16}, Activation: Tanh, LayerNorm: true, Dropout: 0.1},
			Options{Alpha: 1, Temperature: 3, Optimizer: SGD, Momentum: 0.9, LR: 0.05, Schedule: ScheduleCosine, Warmup: 5,
				Features: []FeaturePair{{Teacher: "h", Layer: 1}, {Teacher: "h", Layer: 2, Weight: 0.5}}, FeatureLoss: Cosine}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Epochs, o.BatchSize, o.Val, o.Threads = 8, 32, val, 1
			var last Epoch
			o.OnEpoch = func(e Epoch) error { last = e; return nil }
			res, err := Train(context.Background(), tc.cfg, data, &o)
			if err != nil {
				t.Fatal(err)
			}
			m := last.Val
			t.Logf("loss %.4f val acc %v agreement %.3f KL %.4f ECE %.4f", last.TrainLoss, *m.Accuracy, m.Agreement, m.KL, m.ECE)
			// The labels are a linear function of the inputs: an MLP
			// should reach far above chance (25%).
			if *m.Accuracy < 0.8 || m.Agreement < 0.8 {
				t.Errorf("val accuracy %v, agreement %v after 8 epochs", *m.Accuracy, m.Agreement)
			}
			if res.Info.Epoch != 8 || len(res.Info.Metrics) != 8 {
				t.Errorf("info: epoch %d, %d metrics", res.Info.Epoch, len(res.Info.Metrics))
			}
			// Evaluate agrees with the last epoch's metrics.
			em, err := Evaluate(context.Background(), res.Student, val, "", 50)
			if err != nil {
				t.Fatal(err)
			}
			if em.Agreement != m.Agreement || em.KL-m.KL > 1e-9 || m.KL-em.KL > 1e-9 {
				t.Errorf("Evaluate %+v, epoch metrics %+v", em, *m)
			}
		})
	}
}

// trainStopped trains with o and stops the run when epoch stop has been
// checkpointed, as a preempted job is; it fails unless Train returns that
// stop.
func trainStopped(t *testing.T, data Source, cfg Config, o Options, stop int) {
	t.Helper()
	errStop := errors.New("stop")
	o.OnEpoch = func(e Epoch) error {
		if e.Epoch == stop {
			return errStop
		}
		return nil
	}
	if _, err := Train(context.Background(), cfg, data, &o); !errors.Is(err, errStop) {
		t.Fatalf("stopped run: %v", err)
	}
}

// trainFiles trains with o into dir and returns the checkpoint's files.
func trainFiles(t *testing.T, data Source, cfg Config, o Options) map[string][]byte {
	t.Helper()
	if _, err := Train(context.Background(), cfg, data, &o); err != nil {
		t.Fatal(err)
	}
	return readDir(t, o.Out)
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

func sameFiles(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d files vs %d", len(a), len(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs", name)
		}
	}
}

// TestDeterminismAndResume trains the same run three ways — twice
// uninterrupted, once stopped after epoch 2 and resumed — and checks that
// all three checkpoints are byte-identical, for one and for two threads.
// The run uses streaming windows (2 units of 64 rows, the others
// prefetched), dropout, LayerNorm, feature distillation and a cosine
// schedule, so every source of state is exercised.
func TestDeterminismAndResume(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	val := smallCache(t, filepath.Join(tmp, "val"), func(s *synth) { s.Rows, s.Seed = 100, 2 })
	for _, threads := range []int{1, 2} {
		base := Options{Epochs: 4, BatchSize: 24, LR: 3e-3, Temperature: 2, Alpha: 0.7, Seed: 42, Threads: threads,
			Schedule: ScheduleCosine, Warmup: 3, ShuffleWindow: 2, Val: val,
			Features: []FeaturePair{{Teacher: "h", Layer: 2, Weight: 0.3}}}
		cfg := Config{Hidden: []int{20, 12}, LayerNorm: true, Dropout: 0.2, Activation: GELU}
		run := func(name string) Options {
			o := base
			o.Out = filepath.Join(tmp, fmt.Sprint(threads), name, "student.ckpt")
			return o
		}
		a := trainFiles(t, data, cfg, run("a"))
		b := trainFiles(t, data, cfg, run("b"))
		sameFiles(t, a, b)

		o := run("c")
		trainStopped(t, data, cfg, o, 2)
		c, err := Load(o.Out)
		if err != nil || c.Info.Epoch != 2 {
			t.Fatalf("checkpoint after the stop: epoch %v, %v", c.Info.Epoch, err)
		}
		o.Resume = true
		if _, err := Train(context.Background(), cfg, data, &o); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, a, readDir(t, o.Out))
		if !strings.Contains(string(a[ConfigFile]), `"digest"`) || bytes.Contains(a[ConfigFile], []byte("seconds")) {
			t.Errorf("config.json:\n%s", a[ConfigFile])
		}
	}
}

func TestTrainErrors(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	noInput := smallCache(t, filepath.Join(tmp, "noinput"), func(s *synth) { s.NoInputs = true })
	noLabels := smallCache(t, filepath.Join(tmp, "nolabels"), func(s *synth) { s.NoLabels = true })
	nan := smallCache(t, filepath.Join(tmp, "nan"), func(s *synth) { s.NaNRow = 123 })
	other := smallCache(t, filepath.Join(tmp, "other"), func(s *synth) { s.Inputs = 5 })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		data Source
		cfg  Config
		o    Options
		want string
	}{
		{"no input", noInput, Config{}, Options{}, "--keep-input"},
		{"no labels", noLabels, Config{}, Options{Alpha: 0.5}, "needs labels"},
		{"hidden not cached", data, Config{Hidden: []int{4}}, Options{Alpha: 1, Features: []FeaturePair{{Teacher: "conv1", Layer: 1}}}, `"conv1" was not cached; cached hidden states: h`},
		{"bad layer", data, Config{Hidden: []int{4}}, Options{Alpha: 1, Features: []FeaturePair{{Teacher: "h", Layer: 2}}}, "hidden blocks 1..1"},
		{"input shape", data, Config{Inputs: 7}, Options{}, "student takes 7 input values, cache input \"x\" has 6"},
		{"classes", data, Config{Classes: 3}, Options{}, "3 classes, the cache's teacher 4"},
		{"val shape", data, Config{}, Options{Val: other}, "--val cache input"},
		{"nan", nan, Config{Hidden: []int{4}}, Options{Alpha: 0.5, BatchSize: 600}, "cache rows with a non-finite loss: 123 "},
		{"alpha", data, Config{}, Options{Alpha: 2}, "alpha 2 not in [0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Epochs = 1
			_, err := Train(ctx, tc.cfg, tc.data, &o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			t.Log(err)
			if tc.name == "no input" && !errors.Is(err, ErrNoInput) {
				t.Errorf("error does not wrap ErrNoInput")
			}
			var ne *NonFiniteError
			if tc.name == "nan" && (!errors.As(err, &ne) || ne.Step != 1 || len(ne.Rows) != 1) {
				t.Errorf("NonFiniteError %+v", ne)
			}
		})
	}
}

func TestResumeErrors(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	other := smallCache(t, filepath.Join(tmp, "other"), func(s *synth) { s.Seed = 5 })
	out := filepath.Join(tmp, "student.ckpt")
	o := Options{Epochs: 2, Out: out, Alpha: 0.5, Temperature: 2, Threads: 1}
	cfg := Config{Hidden: []int{8}}
	if _, err := Train(context.Background(), cfg, data, &o); err != nil {
		t.Fatal(err)
	}
	// A fresh run refuses to overwrite the checkpoint.
	if _, err := Train(context.Background(), cfg, data, &o); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("overwrite: %v", err)
	}
	ro := o
	ro.Resume, ro.LR, ro.Temperature, ro.Threads = true, 0.01, 3, 2
	_, err := Train(context.Background(), Config{Hidden: []int{9}}, other, &ro)
	wantResumeDiffs(t, err, "lr: 0.001 in the checkpoint, now 0.01", "temperature: 2 in the checkpoint, now 3", "student:", "training cache digest")
	// Resuming a finished run is a no-op that returns the student.
	ro = o
	ro.Resume = true
	res, err := Train(context.Background(), cfg, data, &ro)
	if err != nil || res.Info.Epoch != 2 {
		t.Fatalf("resume finished run: %v", err)
	}
	// A corrupt checkpoint is reported.
	if err := os.WriteFile(filepath.Join(out, ModelFile), []byte("garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), cfg, data, &ro); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("corrupt checkpoint: %v", err)
	}
}

// wantResumeDiffs checks that err, the error of a resume with changed
// options and threads, lists each of want and not the thread count.
func wantResumeDiffs(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("resume with changed options: no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "threads") {
		t.Errorf("threads listed as a difference: %v", err)
	}
}

func TestTrainTopK(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), func(s *synth) { s.TopK = 2 })
	var last Epoch
	o := Options{Epochs: 6, BatchSize: 32, LR: 3e-3, Alpha: 1, Temperature: 3, Threads: 1, Val: data,
		OnEpoch: func(e Epoch) error { last = e; return nil }}
	if _, err := Train(context.Background(), Config{Hidden: []int{32}}, data, &o); err != nil {
		t.Fatal(err)
	}
	if last.Val.Agreement < 0.8 || *last.Val.Accuracy < 0.8 {
		t.Errorf("top-2 teacher: agreement %v accuracy %v", last.Val.Agreement, *last.Val.Accuracy)
	}
}

// TestTrainCancel cancels training in the middle of epoch 2: Train returns
// the context's error and the checkpoint of epoch 1 stays loadable.
func TestTrainCancel(t *testing.T) {
	tmp := t.TempDir()
	data := smallCache(t, filepath.Join(tmp, "train"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := Options{Epochs: 3, BatchSize: 20, Threads: 1, Out: filepath.Join(tmp, "s.ckpt"),
		OnStep: func(s Step) error {
			if s.Epoch == 2 && s.Rows >= 300 {
				cancel()
			}
			return nil
		}}
	if _, err := Train(ctx, Config{Hidden: []int{8}}, data, &o); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	c, err := Load(o.Out)
	if err != nil || c.Info.Epoch != 1 {
		t.Fatalf("checkpoint after cancel: %v", err)
	}
}

// TestStepAllocs checks that a training step allocates nothing once its
// buffers exist (with one thread: the gemm package may start goroutines).
func TestStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	defer SetThreads(Threads())
	SetThreads(1)
	tr := &trainer{o: Options{BatchSize: 16, Alpha: 0.5, Temperature: 2, Features: []FeaturePair{{Teacher: "h", Layer: 1, Weight: 1}}}}
	tr.o, _ = tr.o.resolve()
	tr.kd = KD{Temperature: 2, Alpha: 0.5}
	var err error
	if tr.s, err = NewStudent(Config{Inputs: 20, Hidden: []int{32, 16}, Classes: 5, LayerNorm: true, Dropout: 0.1, Activation: GELU}, 1); err != nil {
		t.Fatal(err)
	}
	head, err := newFeatureHead(0, []int{32}, []int64{4}, MSE)
	if err != nil {
		t.Fatal(err)
	}
	tr.heads = []*featureHead{head}
	tr.headPs = NewParams(head.Params()...)
	tr.opt = NewAdamW(0.01, tr.s.Params, tr.headPs)
	tr.alloc()
	rng := rand.New(rand.NewPCG(1, 1))
	b := &batch{n: 16, rows: make([]int64, 16), x: randMat(rng, 16, 20, 1).Data, hidden: [][]float32{randMat(rng, 16, 4, 1).Data},
		t: Targets{Labels: make([]int64, 16), Logits: randMat(rng, 16, 5, 1).Data}}
	tr.s.SetTraining(true, rng)
	if allocs := testing.AllocsPerRun(20, func() {
		if _, err := tr.step(b, 1e-3); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per step", allocs)
	}
}

// TestGivenStandardization checks that a given input mean and std are
// used and stored instead of the computed ones.
func TestGivenStandardization(t *testing.T) {
	data := smallCache(t, filepath.Join(t.TempDir(), "c"), nil)
	mean, std := []float32{1, 2, 3, 4, 5, 6}, []float32{1, 1, 2, 2, 3, 3}
	o := Options{Epochs: 1, Threads: 1, InputMean: mean, InputStd: std}
	res, err := Train(context.Background(), Config{}, data, &o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mean {
		if res.Student.Standardize.Mean.Data[i] != mean[i] || res.Student.Standardize.Std.Data[i] != std[i] {
			t.Fatalf("standardization %v %v, want %v %v", res.Student.Standardize.Mean.Data, res.Student.Standardize.Std.Data, mean, std)
		}
	}
	o.InputStd = []float32{1, 1, 1, 1, 1, 0}
	if _, err := Train(context.Background(), Config{}, data, &o); err == nil || !strings.Contains(err.Error(), "feature 5") {
		t.Errorf("std 0: %v", err)
	}
}

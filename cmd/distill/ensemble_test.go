package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestTrainEnsembleMNIST extracts MNIST test with two real teachers, each
// with its own preprocessing and units (the project's CNN on p/255 with
// full scores; the third-party LeNet-5 on raw pixels with top-3 scores, as
// two shards), trains a student on their ensemble and checks that the
// checkpoint names both teachers (the sha256 of each .onnx), their
// normalized weights and the mode; then the ensemble's bad flags.
func TestTrainEnsembleMNIST(t *testing.T) {
	requireLib(t)
	if testing.Short() {
		t.Skip("extracts MNIST test with two teachers")
	}
	tmp := t.TempDir()
	images := mnistTestImages(t)
	cnnONNX := "../../fixtures/teacher/mnist_cnn.onnx"
	lenetONNX := filepath.Join(sharedtest.Dir(t, "teachers"), "mnist-lenet5-dynbatch.onnx")
	cnn, lenet := filepath.Join(tmp, "cnn"), filepath.Join(tmp, "lenet")
	for _, shard := range []string{"0/2", "1/2"} {
		mustDistill(t, "extract", "--teacher", cnnONNX, "--data", images, "--out", cnn, "--scale", "1/255",
			"--batch", "250", "--part-rows", "2500", "--shard", shard, "--threads", "1")
	}
	mustDistill(t, "extract", "--teacher", lenetONNX, "--data", images, "--out", lenet, "--topk", "3",
		"--batch", "200", "--part-rows", "1500", "--threads", "1")
	cnnShards, err := filepath.Glob(filepath.Join(cnn, "shard-*"))
	if err != nil || len(cnnShards) != 2 {
		t.Fatalf("cnn shards %v: %v", cnnShards, err)
	}
	out := filepath.Join(tmp, "ens.ckpt")
	// The shards of the CNN's cache are given apart, around the LeNet's.
	args := []string{"train", "--cache", cnnShards[0], "--cache", lenet, "--cache", cnnShards[1], "--teacher-weights", "3,1",
		"--val", cnn, "--out", out, "--layers", "32", "--epochs", "1", "--batch", "64", "--lr", "3e-3", "--threads", "1"}
	code, stdout, stderr := runDistill(args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "an ensemble of 2 teachers (mnist_cnn.onnx, mnist-lenet5-dynbatch.onnx), weights 0.75,0.25") ||
		!strings.Contains(stderr, "probabilities at T = 4") {
		t.Errorf("stderr does not describe the ensemble:\n%s", stderr)
	}
	c, err := train.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Info.Cache
	lenetSHA, cnnSHA := fileSHA256(t, lenetONNX), fileSHA256(t, cnnONNX)
	if p.TeacherSHA256 != cnnSHA+","+lenetSHA || p.Rows != 10000 || p.Ensemble == nil || p.Ensemble.Mode != train.EnsembleProbs || len(p.Ensemble.Teachers) != 2 {
		t.Fatalf("checkpoint cache provenance %+v: want both teachers", p)
	}
	for i, want := range []struct {
		sha, file string
		topK      int
		weight    float64
	}{{cnnSHA, "mnist_cnn.onnx", 0, 0.75}, {lenetSHA, "mnist-lenet5-dynbatch.onnx", 3, 0.25}} {
		got := p.Ensemble.Teachers[i]
		if got.TeacherSHA256 != want.sha || got.TeacherFile != want.file || got.TopK != want.topK || got.Weight != want.weight || got.Rows != 10000 || got.Digest == "" {
			t.Errorf("teacher %d: %+v, want %s (%s), top-k %d, weight %v", i, got, want.file, want.sha, want.topK, want.weight)
		}
	}
	// One epoch on 10,000 images: well past chance, as a student of
	// either teacher would be.
	if m := c.Info.Metrics; len(m) != 1 || m[0].Val == nil || m[0].Val.Accuracy == nil || *m[0].Val.Accuracy < 0.85 {
		t.Errorf("metrics %+v", m)
	}
	// Resume with other weights: the cache digest differs.
	resume := append([]string{}, args...)
	resume[slices.Index(resume, "3,1")] = "1,1"
	code, _, stderr = runDistill(append(resume, "--resume")...)
	if code != exitFailure || !strings.Contains(stderr, "training cache digest") {
		t.Errorf("resume with other weights: exit %d: %s", code, stderr)
	}

	synthetic := trainTestCache(t, filepath.Join(tmp, "synthetic"), 100, 1, false)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"weight count", []string{"--cache", cnn, "--cache", lenet, "--teacher-weights", "1,2,3"}, exitUsage, []string{"--teacher-weights 1,2,3: 3 weights for 2 teachers", "mnist_cnn.onnx"}},
		{"weights of one teacher", []string{"--cache", cnn, "--teacher-weights", "1"}, exitUsage, []string{"--teacher-weights", "two or more teachers", "mnist_cnn.onnx"}},
		{"logits of one teacher", []string{"--cache", cnn, "--ensemble", "logits"}, exitUsage, []string{"--ensemble logits", "two or more teachers"}},
		{"mode", []string{"--cache", cnn, "--cache", lenet, "--ensemble", "median"}, exitUsage, []string{`--ensemble "median"`, "probs", "logits"}},
		{"negative weight", []string{"--cache", cnn, "--cache", lenet, "--teacher-weights", "1,-1"}, exitUsage, []string{"--teacher-weights 1,-1", "≥ 0"}},
		{"weights 0", []string{"--cache", cnn, "--cache", lenet, "--teacher-weights", "0,0"}, exitUsage, []string{"--teacher-weights 0,0", "sum to 0"}},
		{"classes", []string{"--cache", cnn, "--cache", synthetic}, exitFailure, []string{"synthetic", "has 3 classes", "same classes"}},
		{"val of another teacher", []string{"--cache", lenet, "--cache", cnn, "--val", cnn}, exitFailure, []string{"--val " + cnn, `"image"`, "scale 0.00392", `"input"`, "fed unchanged", "its --cache first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runDistill(append([]string{"train", "--out", filepath.Join(tmp, "bad.ckpt"), "--layers", "8", "--threads", "1"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, stderr)
				}
			}
			if tc.code == exitUsage && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("more than one line: %s", stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "bad.ckpt")); !os.IsNotExist(err) {
		t.Errorf("a refused run wrote its --out: %v", err)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/train"
)

// TestTrainCNNCommand extracts the project's MNIST teacher over the 10,000
// MNIST test images and trains the peer's `tiny` CNN on them for one
// epoch: on real images it learns (accuracy on its own training rows well
// above what a broken convolution or BatchNorm reaches), the checkpoint
// records the expanded spec and the cache's [1,28,28] input, and distill
// eval (BatchNorm in eval mode) reads it.
func TestTrainCNNCommand(t *testing.T) {
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "cache")
	mustDistill(t, "extract", "--teacher", "../../fixtures/teacher/mnist_cnn.onnx", "--data", mnistTestImages(t),
		"--out", cache, "--scale", "1/255", "--batch", "500", "--threads", "2", "--keep-input")
	out := filepath.Join(tmp, "tiny.ckpt")
	stdout := mustDistill(t, "train", "--cache", cache, "--val", cache, "--out", out, "--student", "cnn", "--arch", "tiny",
		"--epochs", "1", "--batch", "64", "--lr", "3e-3", "--threads", "2")
	t.Log(stdout)
	c, err := train.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Student.Config
	if cfg.Type != "cnn" || cfg.Arch != train.CNNPresets["tiny"] || !equalShape(cfg.InputShape, []int{1, 28, 28}) {
		t.Errorf("checkpoint student %+v", cfg)
	}
	acc := *c.Info.Metrics[0].Val.Accuracy
	if acc < 0.9 {
		t.Errorf("tiny after one epoch on 10,000 MNIST images: accuracy %.4f on them", acc)
	}
	res := runEvalJSON(t, "--model", out, "--data", cache, "--bench-time", "1ms")
	t.Logf("eval: params %d, architecture %q", res.Model.Params, res.Model.Architecture)
	if got := res.Accuracy; got == nil || *got != acc {
		t.Errorf("distill eval accuracy %v, the last epoch's %v", got, acc)
	}
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTrainCNNCommandErrors(t *testing.T) {
	tmp := t.TempDir()
	flat := trainTestCache(t, filepath.Join(tmp, "flat"), 100, 1, false)
	out := filepath.Join(tmp, "out")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--student", "cnn"}, exitUsage, "--student cnn needs --arch"},
		{[]string{"--student", "cnn", "--arch", "tiny", "--layers", "8"}, exitUsage, "--layers is an mlp or transformer flag"},
		{[]string{"--student", "cnn", "--arch", "tiny", "--dropout", "0.1"}, exitUsage, "are mlp flags"},
		{[]string{"--student", "cnn", "--arch", "tiny", "--feature", "h=1"}, exitUsage, "not supported yet"},
		{[]string{"--layers", "8", "--arch", "tiny"}, exitUsage, "--arch is a --student cnn flag"},
		{[]string{"--student", "cnn", "--arch", "tiny"}, exitFailure, "needs image inputs of shape [C,H,W] or [H,W]; the input has shape [3]"},
	} {
		args := append([]string{"train", "--cache", flat, "--out", out}, tc.args...)
		code, _, stderr := runDistill(args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("distill %q: exit %d, want %d with %q:\n%s", args, code, tc.code, tc.want, stderr)
		}
	}
}

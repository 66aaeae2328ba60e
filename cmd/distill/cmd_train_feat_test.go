package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/train"
)

// TestTrainCNNFeatureCommand extracts the project's MNIST teacher over the
// 10,000 MNIST test images with its pool2 map ([64,7,7]) cached and
// trains the tiny CNN with feature pairs on it: attention transfer from
// the second maxpool2 (token 7, [16,7,7]) for two epochs, whose feature
// term the epoch lines report and which decreases; and one epoch of
// FitNets from the first maxpool2 (token 3, [8,14,14], average-pooled to
// 7×7) through a 1×1 regressor 8→64, which the checkpoint keeps in
// state.safetensors and not in the model.
func TestTrainCNNFeatureCommand(t *testing.T) {
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "cache")
	mustDistill(t, "extract", "--teacher", "../../fixtures/teacher/mnist_cnn.onnx", "--data", mnistTestImages(t),
		"--out", cache, "--scale", "1/255", "--batch", "500", "--threads", "2", "--keep-input", "--hidden", "pool2")
	common := []string{"train", "--cache", cache, "--student", "cnn", "--arch", "tiny", "--batch", "64", "--lr", "3e-3",
		"--alpha", "0.9", "--temperature", "4", "--threads", "2"}

	at := filepath.Join(tmp, "at.ckpt")
	code, _, stderr := runDistill(append(common, "--out", at, "--epochs", "2", "--feature", "pool2=7:10", "--feature-loss", "at")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	feat := epochFeatures(t, stderr, 2)
	t.Logf("attention transfer term per epoch: %v", feat)
	if !(feat[1] < 0.9*feat[0]) {
		t.Errorf("attention transfer term %v → %v: not decreasing", feat[0], feat[1])
	}

	fit := filepath.Join(tmp, "fitnets.ckpt")
	code, _, stderr = runDistill(append(common, "--out", fit, "--epochs", "1", "--feature", "pool2=3")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("FitNets term: %v", epochFeatures(t, stderr, 1))
	c, err := train.Load(fit)
	if err != nil {
		t.Fatal(err)
	}
	var proj []string
	for _, p := range c.State {
		if strings.HasPrefix(p.Name, "feature.") {
			proj = append(proj, fmt.Sprint(p.Name, p.Shape))
		}
	}
	if got := strings.Join(proj, " "); got != "feature.0.weight[64 8 1 1] feature.0.bias[64]" {
		t.Errorf("state.safetensors projections: %s", got)
	}
	if f := c.Info.Training.Features; len(f) != 1 || f[0].Teacher != "pool2" || f[0].Layer != 3 || c.Info.Metrics[0].TrainFeature <= 0 {
		t.Errorf("recorded pairs %+v, metrics %+v", f, c.Info.Metrics)
	}
}

var epochFeature = regexp.MustCompile(`epoch (\d+)/\d+: loss [0-9.]+ \(feature ([0-9.]+)\)`)

// epochFeatures returns the feature term of each of the epochs lines of a
// train run's stderr.
func epochFeatures(t *testing.T, stderr string, epochs int) []float64 {
	t.Helper()
	var out []float64
	for _, m := range epochFeature.FindAllStringSubmatch(stderr, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out = append(out, v)
	}
	if len(out) != epochs || out[0] <= 0 {
		t.Fatalf("feature terms %v in the epoch lines, want %d positive ones:\n%s", out, epochs, stderr)
	}
	return out
}

package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// trainTestCache writes a cache of n rows whose label is the argmax of the
// 3 inputs, teacher scores 2·x, and hidden state "h" = x/2; with inputs
// unless noInput.
func trainTestCache(t *testing.T, dir string, n int, seed uint64, noInput bool) string {
	t.Helper()
	cfg := formats.Config{Classes: 3, HasLabel: true, Hidden: []formats.TensorSpec{{Name: "h", Shape: []int64{3}}}}
	if !noInput {
		cfg.Inputs = []formats.TensorSpec{{Name: "image", Shape: []int64{3}}}
	}
	m := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: testTeacherSHA}, Dataset: formats.Dataset{Path: "d", Rows: int64(n)}}
	cw, err := formats.CreateCache(dir, m, cfg, &formats.WriterOptions{RowsPerBatch: 50})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	b := &formats.Batch{Hidden: map[string][]float32{}, Inputs: map[string][]float32{}}
	for i := range n {
		b.Rows = append(b.Rows, int64(i))
		best, bv := 0, float32(-10)
		for c := range 3 {
			x := float32(rng.NormFloat64())
			if x > bv {
				best, bv = c, x
			}
			if !noInput {
				b.Inputs["image"] = append(b.Inputs["image"], x)
			}
			b.Logits = append(b.Logits, 2*x)
			b.Hidden["h"] = append(b.Hidden["h"], x/2)
		}
		b.Labels = append(b.Labels, int64(best))
	}
	if _, err := cw.WritePart(b); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTrainCommand(t *testing.T) {
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 400, 1, false)
	val := trainTestCache(t, filepath.Join(tmp, "val"), 200, 2, false)
	out := filepath.Join(tmp, "student.ckpt")
	args := []string{"train", "--cache", data, "--val", val, "--out", out, "--layers", "16", "--epochs", "3",
		"--batch", "32", "--lr", "0.01", "--feature", "h=1:0.5", "--threads", "1"}
	code, stdout, stderr := runDistill(args...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"epoch 1/3: loss", "epoch 3/3: loss", "val acc", "agreement", "KL", "ECE", "samples/s"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "train: 3 epochs") {
		t.Errorf("stdout: %s", stdout)
	}
	c, err := train.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info.Epoch != 3 || c.Info.Cache.TeacherSHA256 != testTeacherSHA || c.Info.Cache.Digest == "" ||
		len(c.Info.Metrics) != 3 || c.Info.Metrics[2].Val == nil || *c.Info.Metrics[2].Val.Accuracy < 0.8 {
		t.Errorf("checkpoint info %+v", c.Info)
	}
	for _, f := range []string{train.ModelFile, train.ConfigFile, train.MetricsFile, train.StateFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// Resume of the finished run with the same flags: nothing to do.
	if code, _, stderr := runDistill(append(args, "--resume")...); code != 0 {
		t.Errorf("resume: exit %d: %s", code, stderr)
	}
	// Resume with other options lists the differences.
	changed := append(append([]string(nil), args...), "--resume", "--lr", "0.02", "--temperature", "2")
	code, _, stderr = runDistill(changed...)
	if code != exitFailure || !strings.Contains(stderr, "lr: 0.01 in the checkpoint, now 0.02") || !strings.Contains(stderr, "temperature: 4 in the checkpoint, now 2") {
		t.Errorf("resume with changes: exit %d: %s", code, stderr)
	}
	// A fresh run does not overwrite the checkpoint.
	if code, _, stderr := runDistill(args...); code != exitFailure || !strings.Contains(stderr, "--resume") {
		t.Errorf("overwrite: exit %d: %s", code, stderr)
	}
}

func TestTrainCommandBadInput(t *testing.T) {
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 100, 1, false)
	noInput := trainTestCache(t, filepath.Join(tmp, "noinput"), 100, 1, true)
	out := func(name string) string { return filepath.Join(tmp, name) }
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--cache", data, "--out", out("a")}, exitUsage, "--layers is required"},
		{[]string{"--out", out("a"), "--layers", "8"}, exitUsage, "--cache is required"},
		{[]string{"--cache", data, "--layers", "8"}, exitUsage, "--out is required"},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8,x"}, exitUsage, `"x" is not a width`},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8", "--alpha", "1.5"}, exitUsage, "--alpha"},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8", "--activation", "swish"}, exitUsage, "--activation"},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8", "--feature", "h=3"}, exitUsage, "hidden block 1..1"},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8", "--feature", "h"}, exitUsage, "TEACHER_HIDDEN=STUDENT_LAYER"},
		{[]string{"--cache", data, "--out", out("a"), "--layers", "8", "--student", "rnn"}, exitUsage, "want mlp, cnn or transformer"},
		{[]string{"--cache", noInput, "--out", out("b"), "--layers", "8"}, exitFailure, "--keep-input"},
		{[]string{"--cache", data, "--out", out("c"), "--layers", "8", "--feature", "conv=1"}, exitFailure, "cached hidden states: h"},
		{[]string{"--cache", filepath.Join(tmp, "nothing"), "--out", out("d"), "--layers", "8"}, exitFailure, "not a cache directory"},
	} {
		code, _, stderr := runDistill(append([]string{"train"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("distill train %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
	// A corrupt checkpoint is reported on resume.
	bad := out("bad.ckpt")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, train.ConfigFile), []byte("{not json"), 0o644)
	code, _, stderr := runDistill("train", "--cache", data, "--out", bad, "--layers", "8", "--resume")
	if code != exitFailure || !strings.Contains(stderr, "bad checkpoint") {
		t.Errorf("corrupt checkpoint: exit %d: %s", code, stderr)
	}
}

// TestTrainKillResume kills `distill train` with SIGKILL at several
// moments, reruns the same command with --resume each time, and checks
// that the final checkpoint is byte-identical to an uninterrupted run's
// (one thread, same seed): a kill at any moment leaves a loadable
// checkpoint of the previous or the new epoch, never a mix.
func TestTrainKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several times (≈10 s)")
	}
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 6000, 1, false)
	args := func(out string) []string {
		return []string{"train", "--cache", data, "--out", out, "--layers", "384,384", "--epochs", "6", "--batch", "16",
			"--threads", "1", "--dropout", "0.1", "--feature", "h=2", "--resume"}
	}
	files := []string{train.ModelFile, train.ConfigFile, train.MetricsFile, train.StateFile}
	killResume(t, tmp, args, files, func(dir string) (int, error) {
		c, err := train.Load(dir)
		if err != nil {
			return 0, err
		}
		return c.Info.Epoch, nil
	})
}

// TestTrainInterrupt sends SIGINT after the first checkpoint: exit 130, the
// resume command printed, the checkpoint intact.
func TestTrainInterrupt(t *testing.T) {
	tmp := t.TempDir()
	data := trainTestCache(t, filepath.Join(tmp, "train"), 6000, 1, false)
	out := filepath.Join(tmp, "s.ckpt")
	interruptAfterCheckpoint(t, out, "train", "--cache", data, "--out", out, "--layers", "384,384", "--epochs", "50", "--batch", "16", "--threads", "1")
	if c, err := train.Load(out); err != nil || c.Info.Epoch < 1 || c.Info.Epoch >= 50 {
		t.Fatalf("checkpoint after Ctrl-C: %v", err)
	}
}

// recipeCache writes a CSV dataset of n rows (columns a, b, c) and a cache
// extracted from it without --keep-input (format 1.1: the manifest records
// how the inputs are read, here scaled by 1/2); it returns the cache and
// dataset paths.
func recipeCache(t *testing.T, dir string, n int) (cache, data string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	data = filepath.Join(dir, "d.csv")
	rng := rand.New(rand.NewPCG(4, 1))
	csv := []byte("a,b,c\n")
	b := &formats.Batch{}
	for i := range n {
		best, bv := 0, float32(-10)
		for c := range 3 {
			x := float32(rng.IntN(64)-32) / 8 // exact in CSV and float32
			csv = strconv.AppendFloat(csv, float64(x), 'g', -1, 32)
			if c < 2 {
				csv = append(csv, ',')
			} else {
				csv = append(csv, '\n')
			}
			if x > bv {
				best, bv = c, x
			}
			b.Logits = append(b.Logits, x) // 2·(x/2): the scaled input, doubled
		}
		b.Rows, b.Labels = append(b.Rows, int64(i)), append(b.Labels, int64(best))
	}
	if err := os.WriteFile(data, csv, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := dataset.FileSHA256(data)
	if err != nil {
		t.Fatal(err)
	}
	m := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: testTeacherSHA},
		Dataset: formats.Dataset{Path: data, SHA256: sum, Rows: int64(n),
			Inputs:     []formats.DatasetInput{{Name: "image", Column: dataset.DefaultFeatureName, Shape: []int64{3}}},
			Preprocess: &formats.Preprocess{Scale: 0.5}}}
	cache = filepath.Join(dir, "cache")
	cw, err := formats.CreateCache(cache, m, formats.Config{Classes: 3, HasLabel: true}, &formats.WriterOptions{RowsPerBatch: 50})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.WritePart(b); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return cache, data
}

// TestTrainCommandFromDataset trains on caches without input columns, the
// inputs read from their datasets; --data and --val-data name datasets that
// moved, and a changed dataset is refused.
func TestTrainCommandFromDataset(t *testing.T) {
	tmp := t.TempDir()
	cache, data := recipeCache(t, filepath.Join(tmp, "train"), 300)
	val, valData := recipeCache(t, filepath.Join(tmp, "val"), 100)
	args := []string{"train", "--cache", cache, "--val", val, "--layers", "16", "--epochs", "2", "--batch", "32", "--lr", "0.01", "--threads", "1"}
	code, _, stderr := runDistill(append(args, "--out", filepath.Join(tmp, "a.ckpt"))...)
	if code != 0 || !strings.Contains(stderr, "reading the inputs from the dataset "+data) || !strings.Contains(stderr, "val acc") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	moved := filepath.Join(tmp, "moved.csv")
	if err := os.Rename(data, moved); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runDistill(append(args, "--out", filepath.Join(tmp, "b.ckpt"))...); code != exitFailure || !strings.Contains(stderr, "--data") {
		t.Errorf("moved dataset: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := runDistill(append(args, "--out", filepath.Join(tmp, "c.ckpt"), "--data", moved)...); code != 0 {
		t.Errorf("--data: exit %d:\n%s", code, stderr)
	}
	os.WriteFile(moved, []byte("a,b,c\n1,2,3\n"), 0o644)
	if code, _, stderr := runDistill(append(args, "--out", filepath.Join(tmp, "d.ckpt"), "--data", moved)...); code != exitFailure || !strings.Contains(stderr, "sha256") {
		t.Errorf("changed dataset: exit %d:\n%s", code, stderr)
	}
	if err := os.Rename(valData, moved); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runDistill("train", "--cache", val, "--val", val, "--val-data", moved, "--data", moved, "--layers", "4", "--epochs", "1", "--out", filepath.Join(tmp, "e.ckpt"))
	if code != 0 {
		t.Errorf("--val-data: exit %d:\n%s", code, stderr)
	}
}

package main

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

// exportTestCache writes a cache of n rows with input "image" [1,4,4],
// 4 classes and labels (the argmax of the first 4 input values).
func exportTestCache(t *testing.T, dir string, n int) string {
	t.Helper()
	cfg := formats.Config{Classes: 4, HasLabel: true, Inputs: []formats.TensorSpec{{Name: "image", Shape: []int64{1, 4, 4}}}}
	m := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: testTeacherSHA}, Dataset: formats.Dataset{Path: "d", Rows: int64(n)}}
	cw, err := formats.CreateCache(dir, m, cfg, &formats.WriterOptions{RowsPerBatch: 100})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 1))
	b := &formats.Batch{Inputs: map[string][]float32{}}
	for i := range n {
		b.Rows = append(b.Rows, int64(i))
		x := make([]float32, 16)
		for j := range x {
			x[j] = float32(rng.NormFloat64())
		}
		b.Inputs["image"] = append(b.Inputs["image"], x...)
		b.Labels = append(b.Labels, int64(fixtures.Argmax(x[:4])))
		b.Logits = append(b.Logits, x[:4]...)
	}
	if _, err := cw.WritePart(b); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// exportTestStudent writes a checkpoint of a small student whose first
// layer reads the 4 label-deciding inputs, so its accuracy is far from
// chance, with a non-trivial standardization.
func exportTestStudent(t *testing.T, dir string, cfg train.Config) string {
	t.Helper()
	s, err := train.NewStudent(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := make([]float32, cfg.Inputs), make([]float32, cfg.Inputs)
	for i := range mean {
		mean[i], std[i] = 0.1*float32(i%3), 1+0.1*float32(i%5)
	}
	if err := s.Standardize.Set(mean, std); err != nil {
		t.Fatal(err)
	}
	info := train.CheckpointInfo{Student: s.Config, Input: "image", Training: train.Options{Temperature: 4, Alpha: 0.9},
		Cache: train.Provenance{Digest: "sha256:0", TeacherSHA256: testTeacherSHA}}
	path := filepath.Join(dir, "student.ckpt")
	if err := train.WriteCheckpoint(path, &train.Checkpoint{Info: info, Student: s}); err != nil {
		t.Fatal(err)
	}
	return path
}

var exportTestConfig = train.Config{Inputs: 16, InputShape: []int{1, 4, 4}, Hidden: []int{8}, Classes: 4, Activation: train.GELU, LayerNorm: true}

func TestExportCommand(t *testing.T) {
	requireLib(t)
	tmp := t.TempDir()
	ckpt := exportTestStudent(t, tmp, exportTestConfig)
	cache := exportTestCache(t, filepath.Join(tmp, "cache"), 300)
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"f32", nil, []string{"opset 17 (IR 8), dtype f32, quantize none", "input image [N,1,4,4] → logits [N,4]", "300 rows", "tolerance 1e-05 × max(1, max |logit|)", "accuracy: Go student"}},
		{"f16", []string{"--dtype", "f16", "--probs"}, []string{"dtype f16", "logits [N,4], probs [N,4]", "tolerance 0.01 × max(1, max |logit|)", "max |probs − softmax(logits)|", "): ok"}},
		{"int8", []string{"--quantize", "int8", "--opset", "13"}, []string{"opset 13 (IR 7)", "quantize int8", "tolerance 0.1 × max(1, max |logit|)", "): ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tmp, tc.name+".onnx")
			args := append([]string{"export", "--student", ckpt, "--out", out, "--verify", cache, "--verify-rows", "300"}, tc.flags...)
			code, stdout, stderr := runDistill(args...)
			t.Logf("%s", stdout)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, w := range append(tc.want, "export: "+out+": ", "bytes)", "top-1 agreement") {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
		})
	}
}

// TestExportVerifyMismatch: --verify reports a model that is not the
// student's and exit 1 follows.
func TestExportVerifyMismatch(t *testing.T) {
	requireLib(t)
	tmp := t.TempDir()
	cache := exportTestCache(t, filepath.Join(tmp, "cache"), 50)
	a, err := train.Load(exportTestStudent(t, filepath.Join(tmp, "a"), exportTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	other := exportTestConfig
	other.Activation = train.Tanh
	b, err := train.Load(exportTestStudent(t, filepath.Join(tmp, "b"), other))
	if err != nil {
		t.Fatal(err)
	}
	model, err := export.Marshal(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verifyExport(context.Background(), a, model, &export.Options{}, cache, 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Rows != 50 || !strings.Contains(res.String(), "EXCEEDED") {
		t.Errorf("a different model passed verification:\n%s", res)
	}
}

// TestExportBadInput: every failure is a clear error, exit 1 or 2, and
// leaves no file in the output directory.
func TestExportBadInput(t *testing.T) {
	tmp := t.TempDir()
	good := exportTestStudent(t, filepath.Join(tmp, "good"), exportTestConfig)
	cache := exportTestCache(t, filepath.Join(tmp, "cache"), 20)
	corrupt := func(name string, edit func(dir string)) string {
		dir := filepath.Join(tmp, name)
		if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
			t.Fatal(err)
		}
		edit(dir)
		return dir
	}
	rewrite := func(path string, f func([]byte) []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	truncated := corrupt("truncated", func(dir string) {
		rewrite(filepath.Join(dir, train.ModelFile), func(b []byte) []byte { return b[:len(b)/2] })
	})
	garbage := corrupt("garbage", func(dir string) {
		rewrite(filepath.Join(dir, train.ModelFile), func(b []byte) []byte {
			for i := 8; i < 40; i++ {
				b[i] = '#'
			}
			return b
		})
	})
	newer := corrupt("newer", func(dir string) {
		rewrite(filepath.Join(dir, train.ConfigFile), func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"version": 1`, `"version": 2`, 1))
		})
	})
	noConfig := corrupt("noconfig", func(dir string) { os.Remove(filepath.Join(dir, train.ConfigFile)) })
	outDir := filepath.Join(tmp, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "s.onnx")
	isDir := filepath.Join(outDir, "dir.onnx")
	if err := os.Mkdir(isDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", out}, exitUsage, "--student is required"},
		{[]string{"--student", good}, exitUsage, "--out is required"},
		{[]string{"--student", good, "--out", out, "--dtype", "bf16"}, exitUsage, "--dtype"},
		{[]string{"--student", good, "--out", out, "--quantize", "int4"}, exitUsage, "--quantize"},
		{[]string{"--student", good, "--out", out, "--quantize", "int8", "--dtype", "f16"}, exitUsage, "cannot be combined"},
		{[]string{"--student", good, "--out", out, "--opset", "30"}, exitUsage, "--opset 30"},
		{[]string{"--student", good, "--out", out, "--verify", cache, "--verify-rows", "0"}, exitUsage, "--verify-rows"},
		{[]string{"--student", truncated, "--out", out}, exitFailure, "bad checkpoint"},
		{[]string{"--student", garbage, "--out", out}, exitFailure, "bad checkpoint"},
		{[]string{"--student", newer, "--out", out}, exitFailure, "newer distill"},
		{[]string{"--student", noConfig, "--out", out}, exitFailure, "config.json"},
		{[]string{"--student", filepath.Join(tmp, "missing.ckpt"), "--out", out}, exitFailure, "no such file"},
		{[]string{"--student", good, "--out", out, "--opset", "10", "--quantize", "int8"}, exitFailure, "needs opset 11"},
		{[]string{"--student", good, "--out", isDir}, exitFailure, "is a directory"},
		{[]string{"--student", good, "--out", filepath.Join(outDir, "no", "s.onnx")}, exitFailure, "no such file"},
		{[]string{"--student", good, "--out", out, "--verify", filepath.Join(tmp, "nocache")}, exitFailure, "--verify"},
	} {
		code, _, stderr := runDistill(append([]string{"export"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("distill export %q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
		// The last case writes the model, then fails to open the cache.
		if tc.want == "--verify" {
			os.Remove(out)
		}
		entries, _ := os.ReadDir(outDir)
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("distill export %q left %v in the output directory", tc.args, names)
		}
	}
}

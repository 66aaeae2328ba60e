package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
	"github.com/distill-ml/distill/train"
)

// trainTinyLM runs distill data text (TinyStories, tok512), extract of
// stories260K with --keep-input and train --student transformer of a tiny
// GQA Llama for one epoch, and returns the checkpoint, the token dataset
// and the cache.
func trainTinyLM(t *testing.T, dir string, extra ...string) (ckpt, data, cache string) {
	t.Helper()
	seq := sharedtest.Dir(t, "teachers", "seq")
	data, _ = storyWindows(t, seq, dir)
	cache = filepath.Join(dir, "cache")
	if code, _, stderr := runDistill("extract", "--teacher", filepath.Join(seq, "stories260K.onnx"), "--data", data, "--out", cache,
		"--topk", "8", "--dtype", "f16", "--keep-input", "--threads", "1"); code != exitOK {
		t.Fatalf("extract: exit %d\n%s", code, stderr)
	}
	ckpt = filepath.Join(dir, "lm")
	args := append([]string{"train", "--student", "transformer", "--cache", cache, "--out", ckpt, "--epochs", "1", "--batch", "8",
		"--layers", "2", "--dim", "32", "--heads", "4", "--kv-heads", "2", "--ffn", "64", "--lr", "3e-3", "--threads", "1"}, extra...)
	if code, stdout, stderr := runDistill(args...); code != exitOK {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	return ckpt, data, cache
}

// TestExportTransformerCLI trains a tiny transformer through the command
// line and exports it: as the decoder with past (the tokenizer found
// through the checkpoint's cache and token dataset), with --no-cache and
// f16, and int8; each --verify runs prefill and cached decoding through
// onnxruntime against the Go forward and passes; the KV export samples
// the checkpoint's tokens (a left-padded batch, the same seeds). The folder holds
// what the help says; bad flags are usage errors naming the fix; a checkpoint
// whose cache is gone needs --tokenizer.
func TestExportTransformerCLI(t *testing.T) {
	requireLib(t)
	dir := t.TempDir()
	ckpt, data, cache := trainTinyLM(t, dir)
	seq := sharedtest.Dir(t, "teachers", "seq")
	for _, tc := range []struct {
		name  string
		args  []string
		files string
	}{
		{"kv", []string{"--verify", data}, "config.json genai_config.json model.onnx tok512.bin"},
		{"nocache_f16", []string{"--no-cache", "--dtype", "f16", "--verify", cache, "--verify-rows", "2"}, "config.json model.onnx tok512.bin"},
		{"kv_int8", []string{"--quantize", "int8", "--verify", data}, "config.json genai_config.json model.onnx tok512.bin"},
	} {
		out := filepath.Join(dir, "out", tc.name)
		code, stdout, stderr := runDistill(append([]string{"export", "--student", ckpt, "--out", out}, tc.args...)...)
		t.Logf("%s:\n%s", tc.name, stdout)
		if code != exitOK {
			t.Fatalf("%s: exit %d\n%s\n%s", tc.name, code, stdout, stderr)
		}
		if !strings.Contains(stdout, ": OK") || !strings.Contains(stdout, "steps of one token") {
			t.Errorf("%s: no verification in\n%s", tc.name, stdout)
		}
		ents, _ := os.ReadDir(out)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != tc.files {
			t.Errorf("%s: the folder holds %v, want %s", tc.name, names, tc.files)
		}
		js, _ := os.ReadFile(filepath.Join(out, "config.json"))
		var cfg map[string]any
		if err := json.Unmarshal(js, &cfg); err != nil || cfg["bos_token_id"] != 1.0 || cfg["eos_token_id"] != 2.0 || cfg["num_key_value_heads"] != 2.0 {
			t.Errorf("%s: config.json %s (%v)", tc.name, js, err)
		}
		m, err := onnxlm.Open(out, nil)
		if err != nil {
			t.Fatalf("%s: onnxlm cannot open the export: %v", tc.name, err)
		}
		info := m.Info()
		m.Close()
		if info.BOS != 1 || info.EOS != 2 || info.Vocab != 512 || info.MaxPositions != 32 || info.KVCache == (tc.name == "nocache_f16") {
			t.Errorf("%s: onnxlm reads %+v", tc.name, info)
		}
		// distill eval reads how the exported student was trained from its
		// metadata, as it does for an exported MLP.
		code, stdout, stderr = runDistill("eval", "--model", out, "--data", cache, "--json", "--rows", "2", "--decode-steps", "2", "--decode-batch", "1", "--threads", "1")
		var res struct {
			Model struct {
				Architecture string
				Training     *struct {
					Method string
					Epochs int
				}
			}
		}
		if code != exitOK || json.Unmarshal([]byte(stdout), &res) != nil {
			t.Fatalf("%s: eval: exit %d\n%s\n%s", tc.name, code, stdout, stderr)
		}
		if tr := res.Model.Training; tr == nil || tr.Method != "kd" || tr.Epochs != 1 || !strings.Contains(res.Model.Architecture, "dim 32, 2 layers") {
			t.Errorf("%s: eval reads the model as %+v (training %+v)", tc.name, res.Model, tr)
		}
	}

	// The export generates what the checkpoint generates (lm.OpenCheckpoint,
	// the Go decoder): a left-padded batch of 3 prompts, sampled at
	// temperature 1 with the same seeds (logits within 1e-5 draw the same
	// tokens but for a draw within that of a boundary).
	prompts := [][]int64{{1, 400, 300}, {1}, {1, 260, 261, 262, 263, 264}}
	gen := func(m lm.Model) [][]int64 {
		defer m.Close()
		out := make([][]int64, len(prompts))
		err := lm.Generate(context.Background(), m, prompts, &lm.GenerateOptions{Sampling: lm.Sampling{Temperature: 1}, Seed: 3, MaxNew: 20, Batch: 3, Stop: []int64{},
			OnSample: func(s lm.Sample) error { out[s.Index] = s.IDs; return nil }})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ck, err := lm.OpenCheckpoint(ckpt, 1)
	if err != nil {
		t.Fatal(err)
	}
	ox, err := onnxlm.Open(filepath.Join(dir, "out", "kv"), &onnxlm.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, b := gen(ck), gen(ox)
	t.Logf("sampled continuations: %v", a)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("sampled from the checkpoint %v, from the export %v", a, b)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--out", filepath.Join(dir, "x.onnx")}, exitUsage, "give the folder's path, e.g. --out " + filepath.Join(dir, "x")},
		{[]string{"--out", filepath.Join(dir, "x"), "--probs"}, exitUsage, "--probs is for an MLP student"},
		{[]string{"--out", filepath.Join(dir, "x"), "--opset", "12"}, exitUsage, "--opset 12: a transformer is written at opsets 13..23"},
		{[]string{"--out", filepath.Join(dir, "x"), "--verify-rows", "300", "--verify", data}, exitUsage, "--verify-rows 300: want 1..256"},
		{[]string{"--out", ckpt}, exitUsage, "--out " + ckpt + " is also the input --student"},
		{[]string{"--out", cache}, exitUsage, "--out " + cache + " is a cache"},
		{[]string{"--out", filepath.Join(dir, "x"), "--verify", filepath.Join(seq, "tok512.bin")}, exitFailure, "--verify"},
	} {
		code, stdout, stderr := runDistill(append([]string{"export", "--student", ckpt}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.want, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
			t.Errorf("%v: a failed export left %s", tc.args, filepath.Join(dir, "x"))
		}
	}

	// Without the cache the tokenizer cannot be found: --tokenizer names it.
	if err := os.Rename(cache, cache+".moved"); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runDistill("export", "--student", ckpt, "--out", filepath.Join(dir, "y"))
	if code != exitFailure || !strings.Contains(stderr, "--tokenizer") || !strings.Contains(stderr, cache) {
		t.Errorf("cache gone: exit %d\n%s", code, stderr)
	}
	out := filepath.Join(dir, "y")
	if code, stdout, stderr := runDistill("export", "--student", ckpt, "--out", out, "--tokenizer", filepath.Join(seq, "tok512.bin")); code != exitOK {
		t.Fatalf("--tokenizer: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "tok512.bin")); err != nil {
		t.Error(err)
	}
}

// TestVerifyLMCatchesMismatch checks that verifyLM fails an export that is
// not the checkpoint's model: the export of one random transformer
// against the Go forward of another is far beyond the tolerance, and
// against its own within it.
func TestVerifyLMCatchesMismatch(t *testing.T) {
	requireLib(t)
	cfg := train.TransformerConfig{Vocab: 40, Dim: 16, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16, T: 24}
	mk := func(seed uint64) *train.Transformer {
		m, err := train.NewTransformer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		train.NewParams(m.Params()...)
		m.Init(rand.New(rand.NewPCG(seed, 1)))
		for _, p := range m.Params() {
			for i := range p.Data {
				p.Data[i] *= 5
			}
		}
		return m
	}
	a, b := mk(1), mk(2)
	out := filepath.Join(t.TempDir(), "a")
	if err := export.WriteLMDir(out, a, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	model, err := onnxlm.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	windows := [][]int32{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, {5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2}}
	for _, tc := range []struct {
		m    *train.Transformer
		fail bool
	}{{a, false}, {b, true}} {
		r, err := verifyLM(context.Background(), tc.m, model, windows)
		if err != nil {
			t.Fatal(err)
		}
		tol := export.Tolerance(nil, r.MaxAbs)
		t.Logf("prefill %d + %d steps: max |Δlogit| %.3g (tolerance %.3g)", r.Prefill, r.Steps, r.MaxDiff, tol)
		if (r.MaxDiff > tol) != tc.fail || r.Prefill != 12 || r.Steps != 12 || r.Positions != 48 {
			t.Errorf("mismatched %v: %+v", tc.fail, r)
		}
	}
	if !slices.Equal(windows[0][:3], []int32{1, 2, 3}) {
		t.Error("verifyLM changed its windows")
	}
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/train"
)

// cacheNLL is the mean −log softmax(teacher logits)[label] of a dense
// per-token cache, in float64 (the teacher's own NLL on its windows), and
// its positions.
func cacheNLL(t *testing.T, dir string) (nll float64, tokens int64) {
	t.Helper()
	return cacheNLLRows(t, dir, -1)
}

// TestEvalLanguageModel evaluates stories260K through the command line on
// TinyStories windows: against its own dense cache (agreement 1, KL 0,
// the cache's NLL), and the KV-cache export of the same weights on the
// token dataset with that cache as --teacher-cache (the same figures)
// with the prefill and decode latencies.
func TestEvalLanguageModel(t *testing.T) {
	requireLib(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	tmp := t.TempDir()
	stories := storiesPrefix(t, seq, filepath.Join(tmp, "stories.txt"), 12000)
	tokens, cache := filepath.Join(tmp, "tokens.parquet"), filepath.Join(tmp, "cache")
	mustDistill(t, "data", "text", "--tokenizer", filepath.Join(seq, "tok512.bin"), "--seq-len", "48", "--join-blocks", "4", "--out", tokens, stories)
	full, kv := filepath.Join(seq, "stories260K.onnx"), filepath.Join(seq, "stories260K-kv.onnx")
	mustDistill(t, "extract", "--teacher", full, "--data", tokens, "--out", cache, "--threads", "1")
	want, n := cacheNLL(t, cache)

	out := filepath.Join(tmp, "run", "eval", "teacher.json")
	res := runEvalJSON(t, "--model", full, "--data", cache, "--threads", "1", "--bench-time", "0", "--out", out)
	if res.Tokens != n || res.NLL == nil || math.Abs(*res.NLL-want) > 1e-5 || math.Abs(*res.Perplexity-math.Exp(want)) > 1e-4 {
		t.Errorf("teacher on its cache: %d tokens, NLL %v; the cache's: %d tokens, %.6f", res.Tokens, res.NLL, n, want)
	}
	if res.Agreement == nil || *res.Agreement != 1 || res.KL == nil || *res.KL > 1e-6 || res.Teacher.Matched != n {
		t.Errorf("teacher against its own scores: agreement %v, KL %v, %v", res.Agreement, res.KL, res.Teacher)
	}
	if res.LM == nil || res.LM.Kind != lm.KindONNXFull || res.LM.SeqLen != 48 || res.LM.Vocab != 512 || res.Classes != 512 ||
		res.Model.Params != 264171 || res.LM.Prefill != nil || res.Data.Kind != "cache" {
		t.Errorf("result: %+v, lm %+v", res, res.LM)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("--out: %v", err)
	}

	res = runEvalJSON(t, "--model", kv, "--data", tokens, "--teacher-cache", cache, "--threads", "1", "--bench-time", "1ms",
		"--decode-batch", "1,3", "--decode-steps", "5", "--decode-prompt", "4", "--batch", "3", "--rows", "4")
	wantKV, _ := cacheNLLRows(t, cache, 4)
	if res.Rows != 4 || res.Tokens != 4*48 || math.Abs(*res.NLL-wantKV) > 1e-4 || *res.Agreement < 0.99 || *res.KL > 1e-4 {
		t.Errorf("KV model, 4 windows: %d windows, %d tokens, NLL %v (cache %.6f), agreement %v, KL %v", res.Rows, res.Tokens, *res.NLL, wantKV, *res.Agreement, *res.KL)
	}
	if l := res.LM; l.Kind != lm.KindONNXCache || !l.KVCache || l.Prefill == nil || l.Prefill.Tokens != 48 || len(l.Decode) != 2 ||
		l.Decode[1].Batch != 3 || l.Decode[1].Steps != 5 || l.Decode[1].Past != 4 || !(l.Decode[1].TokensPerSec > 0) || l.MaxPositions != 512 || l.BOS != 1 {
		t.Errorf("KV model's lm info %+v", l)
	}

	// The token dataset alone: the same windows, the same NLL, no teacher.
	res = runEvalJSON(t, "--model", kv, "--data", tokens, "--threads", "1", "--bench-time", "0", "--rows", "4")
	if res.Tokens != 4*48 || math.Abs(*res.NLL-wantKV) > 1e-4 || res.Agreement != nil || res.Data.Kind != "tokens" || res.Data.Split != "all" {
		t.Errorf("KV model on the token dataset: %d tokens, NLL %v (cache %.6f), agreement %v, data %+v", res.Tokens, *res.NLL, wantKV, res.Agreement, res.Data)
	}
	// The same weights as a Hugging Face directory, through the Go forward
	// pass with its KV cache.
	res = runEvalJSON(t, "--model", filepath.Join(seq, "stories260K-hf"), "--data", cache, "--threads", "1", "--bench-time", "1ms",
		"--decode-batch", "2", "--decode-steps", "3", "--rows", "4")
	if res.Tokens != 4*48 || math.Abs(*res.NLL-wantKV) > 1e-4 || *res.KL > 1e-4 || res.LM.Kind != lm.KindCheckpoint || !res.LM.KVCache ||
		len(res.LM.Decode) != 1 || res.Model.Params != 260032 {
		t.Errorf("the HF directory: %d tokens, NLL %v (ONNX's %.6f), KL %v, lm %+v, %d params", res.Tokens, *res.NLL, wantKV, *res.KL, res.LM, res.Model.Params)
	}
	// A student trained by distill train --student transformer: its
	// held-out NLL, agreement and KL in training.json (train's Forward over
	// the windows) equal eval's (the KV-cache decoder).
	ckpt := filepath.Join(tmp, "run", "student-lm") // in the run directory the report reads
	mustDistill(t, "train", "--student", "transformer", "--cache", cache, "--val", cache, "--dim", "16", "--layers", "1", "--heads", "2", "--kv-heads", "1",
		"--ffn", "16", "--epochs", "1", "--batch", "4", "--threads", "1", "--out", ckpt)
	res = runEvalJSON(t, "--model", ckpt, "--data", cache, "--threads", "1", "--bench-time", "0")
	info, err := train.LoadLMCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.Info.Epochs[0]
	if math.Abs(*res.NLL-ep.ValNLL) > 1e-4 || math.Abs(*res.Agreement-ep.ValAgreement) > 1e-3 || math.Abs(*res.KL-ep.ValKL) > 1e-4 {
		t.Errorf("student: eval NLL %v agreement %v KL %v, training.json %v %v %v", *res.NLL, *res.Agreement, *res.KL, ep.ValNLL, ep.ValAgreement, ep.ValKL)
	}
	if res.Model.Kind != lm.KindCheckpoint || res.Model.Training == nil || res.Model.Training.Epochs != 1 ||
		!strings.HasPrefix(res.Model.Architecture, "transformer dim 16, 1 layers, 2 heads (1 KV)") || res.Model.File != filepath.Join(ckpt, "model.safetensors") {
		t.Errorf("student model info %+v", res.Model)
	}

	// A run directory: the teacher's and the student's eval outputs and
	// samples (distill generate --out), then distill report.
	run := filepath.Join(tmp, "run")
	for _, m := range []struct{ name, model string }{{"teacher", filepath.Join(seq, "stories260K-hf")}, {"student", ckpt}} {
		mustDistill(t, "eval", "--model", m.model, "--data", cache, "--threads", "1", "--bench-time", "1ms", "--decode-steps", "3", "--rows", "2",
			"--name", m.name, "--out", filepath.Join(run, "eval", m.name+".json"))
		mustDistill(t, "generate", "--model", m.model, "--tokenizer", filepath.Join(seq, "tok512.bin"), "--prompt", "Once upon a time",
			"--max-new", "12", "--temperature", "0", "--threads", "1", "--out", filepath.Join(run, m.name+".jsonl"))
	}
	table := mustDistill(t, "report", run, "--table")
	page, err := os.ReadFile(filepath.Join(run, "report", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Language models: size and speed", "Language-model training", "Generated samples",
		`<th class="l">teacher</th>`, `<th class="l">student</th>`, "Once upon a time", "decode tokens/s<br>batch 16", "<td>student-lm</td>", "lm-curves.png"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(table, "decode tok/s b=1") || !strings.Contains(table, "teacher") || !strings.Contains(table, "student") {
		t.Errorf("report --table:\n%s", table)
	}

	code, text2, errOut := runDistill("eval", "--model", kv, "--data", tokens, "--threads", "1", "--bench-time", "0", "--rows", "2")
	for _, s := range []string{"perplexity", "2 windows of 48 tokens", "next-token accuracy", "onnx-kv"} {
		if code != 0 || !strings.Contains(text2, s) {
			t.Errorf("text output lacks %q (exit %d):\n%s%s", s, code, text2, errOut)
		}
	}
	// Flags of the other kind of model are usage errors.
	for _, tc := range []struct{ model, data, flag string }{
		{kv, tokens, "--scale=0.5"}, {kv, tokens, "--input=x"},
		{"../../fixtures/tiny/mlp_logits.onnx", "../../fixtures/tiny/x4.npy", "--decode-steps=3"},
		{"../../fixtures/tiny/mlp_logits.onnx", "../../fixtures/tiny/x4.npy", "--split=val"},
	} {
		code, _, errOut := runDistill("eval", "--model", tc.model, "--data", tc.data, "--bench-time", "0", tc.flag)
		if name, _, _ := strings.Cut(tc.flag, "="); code != 2 || !strings.Contains(errOut, name+" applies to") {
			t.Errorf("%s: exit %d\n%s", tc.flag, code, errOut)
		}
	}
	// A per-sample dataset for a language model.
	if code, _, errOut := runDistill("eval", "--model", kv, "--data", "../../fixtures/tiny/x4.npy", "--bench-time", "0"); code != 1 || !strings.Contains(errOut, "distill data text") {
		t.Errorf("a language model on a .npy: exit %d\n%s", code, errOut)
	}
}

// cacheNLLRows is cacheNLL over the first rows windows of the cache (all
// for rows < 0).
func cacheNLLRows(t *testing.T, dir string, rows int) (float64, int64) {
	t.Helper()
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := c.Config()
	V, T := cfg.Classes, cfg.Positions
	var sum float64
	var n int64
	for b, err := range c.All() {
		if err != nil {
			t.Fatal(err)
		}
		for q, y := range b.Labels {
			if rows >= 0 && n == int64(rows*T) {
				break
			}
			sum -= math.Log(fixtures.Softmax(b.Logits[q*V : (q+1)*V])[y])
			n++
		}
	}
	return sum / float64(n), n
}

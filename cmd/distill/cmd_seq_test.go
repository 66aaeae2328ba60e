package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// TestLanguageModelPipeline runs the language-model stage 1 through the
// command line: TinyStories text → token windows (data text) → a sampled
// and a top-k per-token cache of stories260K (extract) → inspect --verify.
func TestLanguageModelPipeline(t *testing.T) {
	requireLib(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	tmp := t.TempDir()
	stories := storiesPrefix(t, seq, filepath.Join(tmp, "stories.txt"), 40000)
	train, val := filepath.Join(tmp, "train.parquet"), filepath.Join(tmp, "val.parquet")
	mustDistill(t, "data", "text", "--tokenizer", filepath.Join(seq, "tok512.bin"), "--seq-len", "64", "--val-every", "5", "--val-out", val, "--out", train, stories)
	teacher := filepath.Join(seq, "stories260K.onnx")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sampled", []string{"--samples", "16", "--sample-temperature", "1.5", "--dtype", "f16"}, "sampled         16 draws per position from softmax(logits/1.5)"},
		{"top16", []string{"--topk", "16", "--dtype", "f16", "--hidden", "hidden_states.5,attentions.4"}, "top-k           16 of 512 classes"},
	} {
		cache := filepath.Join(tmp, tc.name)
		mustDistill(t, append([]string{"extract", "--teacher", teacher, "--data", val, "--out", cache, "--threads", "1"}, tc.args...)...)
		out := mustDistill(t, "inspect", cache, "--verify")
		for _, want := range []string{tc.want, "tokens          64 per row", "per token", "verify: OK", "stored as log-probabilities",
			"windows: the text of each window's labels", "    next: ", "(the text has "} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: inspect lacks %q:\n%s", tc.name, want, out)
			}
		}
		c, err := formats.Open(cache)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := c.Config(); cfg.Positions != 64 || cfg.Classes != 512 || !cfg.TopKLogProbs || c.NumRows() == 0 {
			t.Errorf("%s: config %+v, %d rows", tc.name, cfg, c.NumRows())
		}
		c.Close()
	}
	// Windows of another tokenizer (roberta's 50,265 ids) are refused
	// before they reach the teacher.
	roberta := filepath.Join(tmp, "roberta.parquet")
	mustDistill(t, "data", "text", "--tokenizer", filepath.Join(seq, "..", "..", "tokenizers", "roberta-base", "tokenizer.json"), "--seq-len", "64", "--out", roberta, stories)
	if code, _, errOut := runDistill("extract", "--teacher", teacher, "--data", roberta, "--out", filepath.Join(tmp, "wrong")); code == 0 ||
		!strings.Contains(errOut, "(50265 ids) but the teacher scores 512 tokens") {
		t.Errorf("windows of another tokenizer: exit %d\n%s", code, errOut)
	}
	// A classifier command on a per-token cache says why it cannot.
	code, _, errOut := runDistill("train", "--cache", filepath.Join(tmp, "top16"), "--out", filepath.Join(tmp, "s.ckpt"), "--layers", "8")
	if code == 0 || !strings.Contains(errOut, "per-token") {
		t.Errorf("train on a per-token cache: exit %d\n%s", code, errOut)
	}
}

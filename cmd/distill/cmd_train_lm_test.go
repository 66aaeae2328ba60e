package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// TestTrainTransformerCLI runs the language-model pipeline through the
// command line on real data: distill data text (TinyStories, tok512),
// extract of stories260K with --topk 8 --keep-input, then train
// --student transformer from scratch and initialized from the teacher's
// layers 0 and 4 (--init-from stories260K-hf): both print per-epoch
// held-out NLL, perplexity and agreement and leave a Hugging Face
// checkpoint that reads back; the initialized student starts far closer
// to the teacher. Bad combinations are usage errors naming the flag.
func TestTrainTransformerCLI(t *testing.T) {
	requireLib(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	data, val := storyWindows(t, seq, dir)
	teacher := filepath.Join(seq, "stories260K.onnx")
	for _, d := range []struct{ data, out string }{{data, "cache"}, {val, "valcache"}} {
		if code, _, stderr := runDistill("extract", "--teacher", teacher, "--data", d.data, "--out", filepath.Join(dir, d.out),
			"--topk", "8", "--dtype", "f16", "--keep-input", "--threads", "1"); code != exitOK {
			t.Fatalf("extract %s: exit %d\n%s", d.data, code, stderr)
		}
	}
	common := []string{"train", "--student", "transformer", "--cache", filepath.Join(dir, "cache"), "--val", filepath.Join(dir, "valcache"),
		"--epochs", "1", "--batch", "8", "--alpha", "0.9", "--temperature", "1", "--threads", "1"}
	nll := func(stderr string) string {
		i := strings.LastIndex(stderr, "val NLL ")
		if i < 0 {
			t.Fatalf("no val NLL in:\n%s", stderr)
		}
		return strings.Fields(stderr[i+len("val NLL "):])[0]
	}
	scratch := filepath.Join(dir, "scratch")
	code, stdout, stderr := runDistill(append(common, "--out", scratch, "--layers", "2", "--dim", "32", "--heads", "4", "--kv-heads", "2", "--ffn", "64", "--lr", "3e-3")...)
	if code != exitOK || !strings.Contains(stdout, "train: 1 epochs") || !strings.Contains(stderr, "perplexity") {
		t.Fatalf("train from scratch: exit %d\n%s\n%s", code, stdout, stderr)
	}
	init := filepath.Join(dir, "init")
	code, stdout, stderr2 := runDistill(append(common, "--out", init, "--init-from", filepath.Join(seq, "stories260K-hf"), "--init-layers", "0,4", "--lr", "1e-3")...)
	if code != exitOK {
		t.Fatalf("train from the teacher's layers: exit %d\n%s\n%s", code, stdout, stderr2)
	}
	a, b := nll(stderr), nll(stderr2)
	t.Logf("held-out NLL after one epoch: %s from scratch, %s from the teacher's layers 0 and 4", a, b)
	if b >= a {
		t.Errorf("the initialized student (NLL %s) is not ahead of the scratch one (%s)", b, a)
	}
	for _, ck := range []string{scratch, init} {
		js, err := os.ReadFile(filepath.Join(ck, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := train.ParseHFLlamaConfig(js, 32); err != nil {
			t.Errorf("%s/config.json: %v", ck, err)
		}
		if _, err := os.Stat(filepath.Join(ck, "model.safetensors")); err != nil {
			t.Error(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", filepath.Join(dir, "x1")}, "needs --layers, --dim, --heads and --ffn"},
		{[]string{"--out", filepath.Join(dir, "x2"), "--layers", "2", "--dim", "32", "--heads", "4", "--ffn", "64", "--feature", "hidden_states.1=3"}, "--feature"},
		{[]string{"--out", filepath.Join(dir, "x3"), "--layers", "2", "--dim", "32", "--heads", "4", "--ffn", "64", "--divergence", "jsd", "--beta", "1"}, "--beta"},
		{[]string{"--out", filepath.Join(dir, "x4"), "--init-from", filepath.Join(seq, "stories260K-hf"), "--init-layers", "0,9"}, "--init-layers"},
		{[]string{"--out", filepath.Join(dir, "x6"), "--layers", "2", "--dim", "32", "--heads", "4", "--ffn", "64", "--divergence", "bogus"}, "--divergence"},
		{[]string{"--out", filepath.Join(dir, "x7"), "--layers", "two", "--dim", "32", "--heads", "4", "--ffn", "64"}, "--layers"},
		{[]string{"--out", filepath.Join(dir, "x8"), "--init-layers", "0"}, "--init-layers needs --init-from"},
		{[]string{"--out", filepath.Join(dir, "x9"), "--layers", "2", "--dim", "32", "--heads", "4", "--ffn", "64", "--adam-beta2", "1"}, "--adam-beta2"},
		{[]string{"--out", filepath.Join(dir, "x10"), "--layers", "2", "--dim", "32", "--heads", "4", "--ffn", "64", "--optimizer", "sgd", "--adam-beta2", "0.95"}, "--adam-beta2"},
	} {
		if code, _, stderr := runDistill(append(common, tc.args...)...); code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d naming %s:\n%s", tc.args, code, exitUsage, tc.want, stderr)
		}
	}
	if code, _, stderr := runDistill("train", "--cache", filepath.Join(dir, "cache"), "--out", filepath.Join(dir, "x5"), "--layers", "4", "--dim", "8"); code != exitUsage || !strings.Contains(stderr, "--dim") {
		t.Errorf("--dim with an mlp student: exit %d\n%s", code, stderr)
	}
}

package main

import (
	"cmp"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// storyWindows writes the token windows of the first 60,000 characters
// of TinyStories (tok512, distill data text --seq-len 32, every 8th
// window held out) to dir and returns the training and held-out files.
func storyWindows(t *testing.T, seq, dir string) (data, val string) {
	t.Helper()
	in := storiesPrefix(t, seq, filepath.Join(dir, "text.txt"), 60000)
	data, val = filepath.Join(dir, "train.parquet"), filepath.Join(dir, "val.parquet")
	if code, _, stderr := runDistill("data", "text", "--tokenizer", filepath.Join(seq, "tok512.bin"), "--seq-len", "32", "--val-every", "8",
		"--val-out", val, "--out", data, in); code != exitOK {
		t.Fatalf("data text: exit %d\n%s", code, stderr)
	}
	return data, val
}

// storiesPrefix writes the first n bytes of seq's tinystories_val.txt to
// path and returns path.
func storiesPrefix(t *testing.T, seq, path string, n int) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(seq, "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// epochAttention returns the attention terms of each epoch line in
// stderr ("epoch E/N: loss L (attention A), ...").
func epochAttention(t *testing.T, stderr string) []float64 {
	t.Helper()
	var out []float64
	for _, m := range regexp.MustCompile(`epoch \d+/\d+: loss [0-9.]+ \(attention ([0-9.]+)\)`).FindAllStringSubmatch(stderr, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// heldOutAttentionKL returns the KL from the teacher's cached map name
// to block l of the checkpoint ck ([T]-token windows) on the first unit
// of the cache dir.
func heldOutAttentionKL(t *testing.T, ck, dir, name string, l, T int) float64 {
	t.Helper()
	m, err := train.LoadHFLlama(ck, T)
	if err != nil {
		t.Fatal(err)
	}
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b formats.Batch
	if err := c.ReadBatch(0, &b); err != nil {
		t.Fatal(err)
	}
	ids := make([]int32, len(b.Inputs["input_ids"]))
	for i, v := range b.Inputs["input_ids"] {
		ids[i] = int32(v)
	}
	seqs := len(ids) / T
	m.Forward(train.Mat{Rows: len(ids), Cols: m.Cfg.Vocab, Data: make([]float32, len(ids)*m.Cfg.Vocab)}, ids)
	A := b.Hidden[name]
	P := m.Blocks[l].Attn.Probs()[:seqs*m.Cfg.Heads*T*T]
	kl, err := train.AttentionKL(make([]float32, len(P)), P, A, seqs, m.Cfg.Heads, len(A)/(seqs*T*T), T)
	if err != nil {
		t.Fatal(err)
	}
	return kl
}

// TestTrainTransformerAttentionCLI distils stories260K's attention
// through the command line: TinyStories windows of 32 tokens, a top-8
// cache with the teacher's attentions.3 (8 heads) and hidden_states.2 and
// .5, then a 2-block, 4-head student trained 3 epochs without a pair, with
// --attention attentions.3=1 (KL) and with --attention-loss mse. With a
// pair the epoch lines show the attention term falling epoch by epoch,
// and block 1's attention on held-out windows ends far closer to the
// teacher's than without the pair. --layer-map uniform pairs blocks 1 and
// 2 with hidden_states.2 and .5 (the loss grows by their terms), and says
// what to extract when they are missing. Bad pairs are errors naming
// the problem.
func TestTrainTransformerAttentionCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("extracts three caches and trains five students (about 20 s of CPU)")
	}
	requireLib(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	const T = 32
	data, val := storyWindows(t, seq, dir)
	cache, valcache, plaincache := filepath.Join(dir, "cache"), filepath.Join(dir, "valcache"), filepath.Join(dir, "plaincache")
	for _, d := range []struct {
		data, out string
		hidden    []string
	}{{data, cache, []string{"--hidden", "attentions.3,hidden_states.2,hidden_states.5"}}, {val, valcache, []string{"--hidden", "attentions.3"}}, {val, plaincache, nil}} {
		args := append([]string{"extract", "--teacher", filepath.Join(seq, "stories260K.onnx"), "--data", d.data, "--out", d.out,
			"--topk", "8", "--dtype", "f16", "--keep-input", "--threads", "1"}, d.hidden...)
		if code, _, stderr := runDistill(args...); code != exitOK {
			t.Fatalf("extract %s: exit %d\n%s", d.out, code, stderr)
		}
	}
	common := []string{"train", "--student", "transformer", "--val", plaincache, "--epochs", "3", "--batch", "8",
		"--alpha", "0.9", "--temperature", "1", "--threads", "1", "--lr", "3e-3", "--layers", "2", "--dim", "32", "--heads", "4", "--kv-heads", "2", "--ffn", "64"}
	train := func(name string, extra ...string) (ck, stderr string) {
		t.Helper()
		ck = filepath.Join(dir, name)
		code, stdout, stderr := runDistill(append(append(common, "--cache", cache, "--out", ck), extra...)...)
		if code != exitOK || !strings.Contains(stdout, "train: ") {
			t.Fatalf("train %s: exit %d\n%s\n%s", name, code, stdout, stderr)
		}
		return ck, stderr
	}
	plain, stderr := train("plain")
	if a := epochAttention(t, stderr); len(a) != 0 {
		t.Errorf("without pairs the epoch lines show attention terms %v:\n%s", a, stderr)
	}
	plainKL := heldOutAttentionKL(t, plain, valcache, "attentions.3", 1, T)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"kl", []string{"--attention", "attentions.3=1"}},
		{"mse", []string{"--attention", "attentions.3=1:10", "--attention-loss", "mse"}},
	} {
		ck, stderr := train(tc.name, tc.args...)
		a := epochAttention(t, stderr)
		kl := heldOutAttentionKL(t, ck, valcache, "attentions.3", 1, T)
		t.Logf("%s: attention term per epoch %v; block 1's held-out attention KL to the teacher's attentions.3 %.4f (%.4f without the pair)", tc.name, a, kl, plainKL)
		if len(a) != 3 || !(a[1] < a[0] && a[2] < a[1] && a[2] < 0.8*a[0]) {
			t.Errorf("%s: the attention term does not fall epoch by epoch: %v\n%s", tc.name, a, stderr)
		}
		if !(kl < 0.7*plainKL) {
			t.Errorf("%s: block 1's held-out attention KL %.4f with the pair, %.4f without", tc.name, kl, plainKL)
		}
	}
	// --layer-map uniform: blocks 1, 2 of 2 ← hidden_states.2, .5 of 5.
	loss1 := func(stderr string) float64 {
		m := regexp.MustCompile(`epoch 1/\d+: loss ([0-9.]+)`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("no epoch line in:\n%s", stderr)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	_, mapped := train("mapped", "--layer-map", "uniform", "--epochs", "1")
	if a, b := loss1(stderr), loss1(mapped); !(b > a+0.05) {
		t.Errorf("--layer-map uniform: first-epoch loss %v, %v without the hidden-state pairs", b, a)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
		c    string // the cache, when not cache
	}{
		{[]string{"--attention", "attentions.9=1"}, exitFailure, `"attentions.9" was not cached; cached hidden states: attentions.3, hidden_states.2, hidden_states.5`, ""},
		{[]string{"--attention", "hidden_states.2=1"}, exitFailure, "hidden_states.2 has shape [32 64] per window, not [heads, 32, 32]", ""},
		{[]string{"--attention", "attentions.3=2"}, exitUsage, "--attention: attention pair \"attentions.3=2\": student block \"2\", want 0..1", ""},
		{[]string{"--attention", "attentions.3=1:0"}, exitUsage, "weight \"0\"", ""},
		{[]string{"--attention", "attentions.3=1", "--attention-loss", "l2"}, exitUsage, "--attention-loss \"l2\": want kl or mse", ""},
		{[]string{"--attention-loss", "mse"}, exitUsage, "--attention-loss mse needs --attention pairs", ""},
		{[]string{"--attention", "attentions.3=1", "--dim", "48", "--heads", "6", "--kv-heads", "3"}, exitFailure, "the teacher map has 8 heads and the student 6", ""},
		{[]string{"--layer-map", "tinybert"}, exitUsage, "--layer-map \"tinybert\"", ""},
		{[]string{"--layer-map", "uniform", "--feature", "hidden_states.5=2"}, exitUsage, "--feature hidden_states.5=2 is one of --layer-map uniform's pairs", ""},
		{[]string{"--layer-map", "uniform"}, exitFailure, "the cache lacks hidden_states.2, hidden_states.5: extract with --hidden hidden_states.2,hidden_states.5", valcache},
	} {
		c := cmp.Or(tc.c, cache)
		code, _, stderr := runDistill(append(append(common, "--cache", c, "--out", filepath.Join(dir, "bad")), tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d naming %s:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !os.IsNotExist(err) {
		t.Errorf("a refused run left %s: %v", filepath.Join(dir, "bad"), err)
	}
	if code, _, stderr := runDistill("train", "--cache", cache, "--out", filepath.Join(dir, "mlp"), "--layers", "4", "--attention", "attentions.3=0"); code != exitUsage || !strings.Contains(stderr, "--student transformer flags") {
		t.Errorf("--attention with an mlp student: exit %d\n%s", code, stderr)
	}
}

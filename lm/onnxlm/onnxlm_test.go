package onnxlm_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
)

// open opens a model of ../shared/teachers/seq with one thread. Without
// onnxruntime the test is skipped, except under CI, where it fails.
func open(t *testing.T, name string) lm.Model {
	t.Helper()
	m, err := onnxlm.Open(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), name), &onnxlm.Options{Threads: 1})
	if errors.Is(err, extract.ErrNoRuntime) {
		if os.Getenv("CI") != "" {
			t.Fatalf("onnxruntime is required in CI: %v", err)
		}
		t.Skipf("onnxruntime not available (run make setup): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func tok512(t *testing.T) tokenizer.Tokenizer {
	t.Helper()
	tok, _, err := tokenizer.Load(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func argmax(v []float32) int64 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int64(best)
}

// greedy decodes n tokens from prompt (one row) with m, one token per Step
// after the prompt, and returns the prompt with them and the logits of
// every step.
func greedy(t *testing.T, m lm.Model, prompt []int64, n int) ([]int64, [][]float32) {
	t.Helper()
	s, err := m.Start(1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	V := m.Info().Vocab
	ids := slices.Clone(prompt)
	feed := prompt
	var steps [][]float32
	for range n {
		mask := slices.Repeat([]int64{1}, s.Past()+len(feed))
		lg, err := s.Step(feed, len(feed), mask, lm.Positions(mask, 1, len(feed)))
		if err != nil {
			t.Fatal(err)
		}
		last := slices.Clone(lg[(len(feed)-1)*V:])
		steps = append(steps, last)
		next := argmax(last)
		ids = append(ids, next)
		feed = []int64{next}
	}
	return ids, steps
}

func maxDiff(a, b []float32) (d, scale float64) {
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(a[i])))
	}
	return d, scale
}

// TestGolden decodes stories260K greedily from BOS for 200 tokens through
// the decoder with past and through the full-sequence model over the
// growing prefix: both give the golden text byte for byte, and their
// logits agree at every step (seq README: max |diff| 3.1e-5).
func TestGolden(t *testing.T) {
	tok := tok512(t)
	kv, full := open(t, "stories260K-kv.onnx"), open(t, "stories260K.onnx")
	// The decoder with past declares its sizes and token ids in
	// metadata_props; the full-sequence file has none, and a symbolic
	// vocabulary axis, which Open learns from one run.
	if in := kv.Info(); in.Vocab != 512 || in.BOS != 1 || in.EOS != 2 || in.MaxPositions != 512 || in.Params < 260032 {
		t.Errorf("kv: info %+v", in)
	}
	if in := full.Info(); in.Vocab != 512 || in.BOS != -1 || in.Params < 260032 {
		t.Errorf("full: info %+v", in)
	}
	if kv.Info().Kind != lm.KindONNXCache || !kv.Info().KVCache || full.Info().Kind != lm.KindONNXFull || full.Info().KVCache {
		t.Fatalf("kinds: %+v %+v", kv.Info(), full.Info())
	}
	idsKV, stepsKV := greedy(t, kv, []int64{1}, 200)
	idsFull, stepsFull := greedy(t, full, []int64{1}, 200)
	for name, ids := range map[string][]int64{"kv": idsKV, "full": idsFull} {
		ints := make([]int, len(ids))
		for i, id := range ids {
			ints[i] = int(id)
		}
		if got := tok.Decode(ints, true); got != sharedtest.StoriesGreedy {
			t.Errorf("%s: greedy text differs from the golden text:\n%q\n%q", name, got, sharedtest.StoriesGreedy)
		}
	}
	worst := 0.0
	for i := range stepsKV {
		d, scale := maxDiff(stepsKV[i], stepsFull[i])
		worst = max(worst, d/max(1, scale))
	}
	t.Logf("cached vs full-sequence logits over 200 steps: max |diff| / max(1, max |logit|) = %.2g", worst)
	if worst > 1e-5 {
		t.Errorf("cached and full-sequence logits differ by %.3g (relative)", worst)
	}
}

// TestLeftPadded runs three TinyStories prompts of 40, 17 and 64 tokens as
// one left-padded batch (prefill, then 16 cached greedy steps) through
// both models: every row's logits at its real positions equal the row run
// alone and unpadded, and the pads' logits are finite.
func TestLeftPadded(t *testing.T) {
	tok := tok512(t)
	text, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(text), "\n\n")
	var prompts [][]int64
	for i, n := range []int{40, 17, 64} {
		ids, err := tok.Encode(docs[i], true)
		if err != nil || len(ids) < n {
			t.Fatalf("doc %d: %d ids, %v", i, len(ids), err)
		}
		p := make([]int64, n)
		for j := range p {
			p[j] = int64(ids[j])
		}
		prompts = append(prompts, p)
	}
	const steps = 16
	for _, name := range []string{"stories260K-kv.onnx", "stories260K.onnx"} {
		m := open(t, name)
		V := m.Info().Vocab
		s, err := m.Start(len(prompts))
		if err != nil {
			t.Fatal(err)
		}
		ids, mask, L := lm.LeftPad(prompts, 0)
		got := make([][][]float32, len(prompts)) // [row][step] logits of the last real token
		feed, n := ids, L
		for range steps + 1 {
			lg, err := s.Step(feed, n, mask, lm.Positions(mask, len(prompts), n))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, v := range lg {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%s: a non-finite logit", name)
				}
			}
			feed = make([]int64, len(prompts))
			for b := range prompts {
				last := slices.Clone(lg[(b*n+n-1)*V : (b*n+n)*V])
				got[b] = append(got[b], last)
				feed[b] = argmax(last)
			}
			n = 1
			grown := make([]int64, 0, len(mask)+len(prompts))
			for b := range prompts {
				row := mask[b*len(mask)/len(prompts) : (b+1)*len(mask)/len(prompts)]
				grown = append(append(grown, row...), 1)
			}
			mask = grown
		}
		s.Close()
		for b, p := range prompts {
			_, alone := greedy(t, m, p, steps+1)
			for i := range alone {
				d, scale := maxDiff(alone[i], got[b][i])
				if d > 1e-5*max(1, scale) {
					t.Errorf("%s: row %d (%d tokens) step %d: max |diff| %.3g vs the row alone", name, b, len(p), i, d)
				}
			}
		}
	}
}

// TestOpenErrors: a classifier, a directory without model.onnx and a
// checkpoint directory are refused with lm.ErrModel, and a Step with the
// wrong shapes is an error.
func TestOpenErrors(t *testing.T) {
	open(t, "stories260K-kv.onnx") // skip here without onnxruntime
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	if err := os.MkdirAll(ckpt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ckpt, "training.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(fixtures.Dir(), "teacher", "mnist_cnn.onnx"): `no input "input_ids"`,
		dir:  "without model.onnx",
		ckpt: "checkpoint directory",
	} {
		_, err := onnxlm.Open(path, nil)
		if !errors.Is(err, lm.ErrModel) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want lm.ErrModel saying %q", path, err, want)
		}
	}
	m := open(t, "stories260K-kv.onnx")
	s, err := m.Start(2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		ids, mask, pos []int64
		want           string
	}{
		{[]int64{1}, []int64{1, 1}, []int64{0, 0}, "ids for batch 2"},
		{[]int64{1, 1}, []int64{1}, []int64{0, 0}, "mask of 1"},
		{[]int64{1, 600}, []int64{1, 1}, []int64{0, 0}, "outside the vocabulary"},
		{[]int64{1, 1}, []int64{1, 1}, []int64{0, 512}, "position 512"},
	} {
		if _, err := s.Step(c.ids, 1, c.mask, c.pos); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Step(%v, %v, %v): %v, want %q", c.ids, c.mask, c.pos, err, c.want)
		}
	}
}

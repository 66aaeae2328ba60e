package lm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
)

func stories(t *testing.T) (lm.Model, tokenizer.Tokenizer) {
	t.Helper()
	seq := sharedtest.Dir(t, "teachers", "seq")
	m, err := lm.OpenCheckpoint(filepath.Join(seq, "stories260K-hf"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, _, err := tokenizer.Load(filepath.Join(seq, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

// generate runs Generate and returns the samples in the order given.
func generate(t *testing.T, m lm.Model, prompts [][]int64, o lm.GenerateOptions) []lm.Sample {
	t.Helper()
	var out []lm.Sample
	o.OnSample = func(s lm.Sample) error { out = append(out, s); return nil }
	if err := lm.Generate(context.Background(), m, prompts, &o); err != nil {
		t.Fatal(err)
	}
	return out
}

func ids64(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

func ints(ids []int64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// TestOpenCheckpointHF opens the stories260K Hugging Face directory: its
// Info, and greedy generation from BOS (200 tokens, Generate's prefill
// and cached steps through the Go decoder) gives llama2.c's golden text
// byte for byte.
func TestOpenCheckpointHF(t *testing.T) {
	m, tok := stories(t)
	info := m.Info()
	st, err := os.ReadFile(filepath.Join(info.Path, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(st)
	if info.Kind != lm.KindCheckpoint || info.Vocab != 512 || info.MaxPositions != 512 || !info.KVCache || info.BOS != 1 || info.EOS != 2 ||
		info.Params != 260032 || info.Bytes != int64(len(st)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("info %+v", info)
	}
	s := generate(t, m, [][]int64{{1}}, lm.GenerateOptions{MaxNew: 200})
	if len(s) != 1 || s[0].Stop != lm.StopMaxNew || len(s[0].IDs) != 200 {
		t.Fatalf("samples %+v", s)
	}
	if got := tok.Decode(ints(append([]int64{1}, s[0].IDs...)), true); got != sharedtest.StoriesGreedy {
		t.Errorf("greedy text\n%q\nwant\n%q", got, sharedtest.StoriesGreedy)
	}
}

// TestGenerateBatch samples (temperature 1, top-k 40, top-p 0.95) three
// prompts of different lengths in one left-padded batch, in batches of 2
// and one at a time: every sample records its seed, and drawing it again
// alone with that seed (prompt 0, batch 1) gives the same tokens, so a
// sample does not depend on its batch.
func TestGenerateBatch(t *testing.T) {
	m, tok := stories(t)
	var prompts [][]int64
	for _, text := range []string{"Once upon a time", "The dog", "Lily and Ben went to the park. They saw"} {
		ids, err := tok.Encode(text, true)
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, ids64(ids))
	}
	o := lm.GenerateOptions{Sampling: lm.Sampling{Temperature: 1, TopK: 40, TopP: 0.95}, MaxNew: 40, Seed: 100, Stop: []int64{}}
	var runs [][]lm.Sample
	for _, batch := range []int{3, 2, 1} {
		o.Batch = batch
		runs = append(runs, generate(t, m, prompts, o))
	}
	for i, s := range runs[0] {
		if s.Index != i || s.Seed != 100+uint64(i) || !slices.Equal(s.Prompt, prompts[i]) || len(s.IDs) != 40 || s.Stop != lm.StopMaxNew {
			t.Fatalf("sample %d: %+v", i, s)
		}
		for r := 1; r < len(runs); r++ {
			if !slices.Equal(runs[r][i].IDs, s.IDs) {
				t.Errorf("sample %d differs between batches:\n%v\n%v", i, s.IDs, runs[r][i].IDs)
			}
		}
		alone := generate(t, m, [][]int64{prompts[i]}, lm.GenerateOptions{Sampling: o.Sampling, MaxNew: 40, Seed: s.Seed, Stop: []int64{}})
		if !slices.Equal(alone[0].IDs, s.IDs) {
			t.Errorf("sample %d drawn alone with seed %d:\n%v\nwant\n%v", i, s.Seed, alone[0].IDs, s.IDs)
		}
		t.Logf("sample %d: %q", i, tok.Decode(ints(append(slices.Clone(s.Prompt), s.IDs...)), true))
	}
	if slices.Equal(runs[0][0].IDs, runs[0][1].IDs) {
		t.Error("two samples drew the same tokens")
	}
}

// TestGenerateStops: a stop id ends a sample with that id last; the
// model's context ends a long prompt's sample, and the shorter prompt
// batched with it one step later; progress counts every token.
func TestGenerateStops(t *testing.T) {
	m, _ := stories(t)
	golden := generate(t, m, [][]int64{{1}}, lm.GenerateOptions{MaxNew: 30})[0].IDs
	stop := golden[12]
	s := generate(t, m, [][]int64{{1}}, lm.GenerateOptions{MaxNew: 30, Stop: []int64{stop}})[0]
	first := slices.Index(golden, stop)
	if s.Stop != lm.StopEOS || !slices.Equal(s.IDs, golden[:first+1]) {
		t.Errorf("stop at %d: %+v, want %v", stop, s, golden[:first+1])
	}
	long := make([]int64, 505)
	for i := range long {
		long[i] = golden[i%len(golden)]
	}
	var last lm.Progress
	o := lm.GenerateOptions{MaxNew: 20, Batch: 2, Progress: func(p lm.Progress) { last = p }}
	ss := generate(t, m, [][]int64{long, {1, golden[0]}}, o)
	// The long prompt fills the context with its 7th token (505 + 7 = 512);
	// the short one is fed that step's token too, and stops when the
	// batch's next call would exceed 512.
	for i, want := range []int{7, 8} {
		if s := ss[i]; s.Stop != lm.StopMaxPositions || len(s.IDs) != want {
			t.Errorf("sample %d: stop %s after %d tokens, want %s after %d", i, s.Stop, len(s.IDs), lm.StopMaxPositions, want)
		}
	}
	if last.Samples != 2 || last.Total != 2 || last.Tokens != 15 || last.TokensPerSecond() <= 0 {
		t.Errorf("progress %+v", last)
	}
}

// TestGenerateCancel: a cancelled context stops Generate after the
// samples already delivered.
func TestGenerateCancel(t *testing.T) {
	m, _ := stories(t)
	ctx, cancel := context.WithCancel(context.Background())
	var got int
	o := &lm.GenerateOptions{MaxNew: 5, OnSample: func(lm.Sample) error { got++; cancel(); return nil }}
	err := lm.Generate(ctx, m, [][]int64{{1}, {1}, {1}}, o)
	if !errors.Is(err, context.Canceled) || got != 1 {
		t.Errorf("%v after %d samples", err, got)
	}
}

// TestGenerateErrors: bad prompts, options and directories are errors
// naming the problem.
func TestGenerateErrors(t *testing.T) {
	m, _ := stories(t)
	long := make([]int64, 512)
	for _, tc := range []struct {
		prompts [][]int64
		o       lm.GenerateOptions
		want    string
	}{
		{[][]int64{{1}, {}}, lm.GenerateOptions{MaxNew: 1}, "prompt 2: lm: an empty prompt"},
		{[][]int64{{1, 600}}, lm.GenerateOptions{MaxNew: 1}, "token id 600 outside the model's 512-token vocabulary"},
		{[][]int64{long}, lm.GenerateOptions{MaxNew: 1}, "a prompt of 512 tokens leaves no room in the model's context of 512"},
		{[][]int64{{1}}, lm.GenerateOptions{}, "0 new tokens"},
		{[][]int64{{1}}, lm.GenerateOptions{MaxNew: 1, Sampling: lm.Sampling{Temperature: -1}}, "temperature -1"},
		{[][]int64{{1}}, lm.GenerateOptions{MaxNew: 1, Pad: 512}, "pad id 512"},
	} {
		if err := lm.Generate(context.Background(), m, tc.prompts, &tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.want, err, tc.want)
		}
	}
	dir := t.TempDir()
	mlp := filepath.Join(dir, "mlp")
	os.Mkdir(mlp, 0o755)
	os.WriteFile(filepath.Join(mlp, "config.json"), []byte(`{"format": "distill-student", "version": 1}`), 0o644)
	os.WriteFile(filepath.Join(mlp, "model.safetensors"), nil, 0o644)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct{ dir, want string }{
		{mlp, "an MLP student"},
		{file, "is a file"},
		{dir, "training.json"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		if _, err := lm.OpenCheckpoint(tc.dir, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenCheckpoint(%s): %v, want %q", tc.dir, err, tc.want)
		}
	}
}

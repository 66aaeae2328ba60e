package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// trainLMFiles runs TrainLM and returns the files it left in o.Out.
func trainLMFiles(t *testing.T, cfg TransformerConfig, data Source, o Options) map[string][]byte {
	t.Helper()
	if _, err := TrainLM(context.Background(), cfg, data, &o, nil); err != nil {
		t.Fatal(err)
	}
	return readDir(t, o.Out)
}

// TestTrainLMDeterminismAndResume trains one transformer run three ways —
// twice uninterrupted, and stopped after epoch 2 then resumed — with one
// and two threads, and checks that all three leave the same checkpoint
// bytes (weights, Hugging Face config, optimizer and projection state,
// training record). The run has what a resume must restore: AdamW
// moments, a cosine schedule with warmup (the step), a hidden-state pair
// through a learned projection (its weights and moments), validation
// metrics and a streaming shuffle window of 2 of the cache's 6 units.
func TestTrainLMDeterminismAndResume(t *testing.T) {
	const T, V = 8, 16
	data := writeLMCache(t, 192, T, V, formats.Config{TopK: 4}, 1)
	val := writeLMCache(t, 32, T, V, formats.Config{TopK: 4}, 2)
	cfg := TransformerConfig{Dim: 16, Layers: 2, Heads: 2, KVHeads: 1, FFN: 32}
	tmp := t.TempDir()
	for _, threads := range []int{1, 2} {
		base := Options{Epochs: 4, BatchSize: 16, LR: 1e-2, Alpha: 0.7, Temperature: 2, Seed: 5, Threads: threads,
			Schedule: ScheduleCosine, Warmup: 3, ShuffleWindow: 2, Val: val,
			Features: []FeaturePair{{Teacher: "hidden_states.1", Layer: 2, Weight: 0.5}}}
		run := func(name string) Options {
			o := base
			o.Out = filepath.Join(tmp, fmt.Sprint(threads), name)
			return o
		}
		a := trainLMFiles(t, cfg, data, run("a"))
		sameFiles(t, a, trainLMFiles(t, cfg, data, run("b")))
		for _, f := range []string{ModelFile, ConfigFile, StateFile, TrainingFile} {
			if len(a[f]) == 0 {
				t.Fatalf("no %s in the checkpoint", f)
			}
		}
		if st := string(a[StateFile]); !strings.Contains(st, "exp_avg_sq.feature.1.weight") || !strings.Contains(st, "feature.1.bias") {
			t.Errorf("%s lacks the projection and its moments", StateFile)
		}

		o := run("c")
		errStop := errors.New("stop")
		stop := &LMHooks{OnEpoch: func(e LMEpoch) error {
			if e.Epoch == 2 {
				return errStop
			}
			return nil
		}}
		if _, err := TrainLM(context.Background(), cfg, data, &o, stop); !errors.Is(err, errStop) {
			t.Fatalf("stopped run: %v", err)
		}
		c, err := LoadLMCheckpoint(o.Out)
		if err != nil || c.Info.Epoch != 2 || c.Info.Step != 24 {
			t.Fatalf("checkpoint after the stop: %+v, %v", c, err)
		}
		o.Resume = true
		res, err := TrainLM(context.Background(), cfg, data, &o, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameFiles(t, a, readDir(t, o.Out))
		if len(res.Epochs) != 4 || res.Epochs[3].Step != 48 || res.Epochs[0].ValNLL == 0 {
			t.Errorf("resumed run's epochs: %+v", res.Epochs)
		}
	}
}

// TestTrainLMResumeErrors: a fresh run does not overwrite a checkpoint; a
// resume with other options, architecture or cache lists each difference
// (not --threads); a resume of a finished run has nothing to do and
// returns its model; damaged, foreign and incomplete checkpoints are
// refused naming the problem, so is an Out of other files, before
// training; a cancelled run leaves its last epoch.
func TestTrainLMResumeErrors(t *testing.T) {
	const T, V = 8, 16
	data := writeLMCache(t, 64, T, V, formats.Config{}, 1)
	other := writeLMCache(t, 64, T, V, formats.Config{}, 7)
	cfg := TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16}
	out := filepath.Join(t.TempDir(), "student")
	o := Options{Epochs: 2, BatchSize: 16, LR: 0.01, Alpha: 0.5, Temperature: 2, Threads: 1, Out: out}
	ctx := context.Background()
	first, err := TrainLM(ctx, cfg, data, &o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TrainLM(ctx, cfg, data, &o, nil); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint") {
		t.Errorf("overwrite: %v", err)
	}
	ro := o
	ro.Resume, ro.LR, ro.Temperature, ro.Threads = true, 0.02, 3, 2
	wider := cfg
	wider.FFN = 24
	_, err = TrainLM(ctx, wider, other, &ro, nil)
	wantResumeDiffs(t, err, "lr: 0.01 in the checkpoint, now 0.02", "temperature: 2 in the checkpoint, now 3", "student:", "training cache digest")
	ro = o
	ro.Resume = true
	res, err := TrainLM(ctx, cfg, data, &ro, &LMHooks{OnEpoch: func(LMEpoch) error { t.Error("an epoch ran"); return nil }})
	if err != nil || len(res.Epochs) != 2 || res.Epochs[1].Step != first.Epochs[1].Step {
		t.Fatalf("resume of the finished run: %+v, %v", res, err)
	}
	for i, p := range res.Model.Params() {
		if !slices.Equal(p.Data, first.Model.Params()[i].Data) {
			t.Fatalf("the finished run's model differs at %s", p.Name)
		}
	}

	damage := func(name string, f func(dir string)) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "student")
		if err := os.CopyFS(dir, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		f(dir)
		o := ro
		o.Out = dir
		_, err := TrainLM(ctx, cfg, data, &o, nil)
		if !errors.Is(err, ErrCheckpoint) && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	damage("flipped weight", func(dir string) { flipByte(t, filepath.Join(dir, ModelFile)) })
	damage("flipped state", func(dir string) { flipByte(t, filepath.Join(dir, StateFile)) })
	damage("no state", func(dir string) { os.Remove(filepath.Join(dir, StateFile)) })
	damage("truncated record", func(dir string) { os.Truncate(filepath.Join(dir, TrainingFile), 10) })
	damage("no record (a Hugging Face model)", func(dir string) { os.Remove(filepath.Join(dir, TrainingFile)) })

	// A directory of other files is refused before any step.
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "notes.txt"), []byte("mine"), 0o644)
	po := o
	po.Out, po.OnStep = plain, func(Step) error { t.Error("a step ran"); return nil }
	if _, err := TrainLM(ctx, cfg, data, &po, nil); err == nil || !strings.Contains(err.Error(), "is not a checkpoint") {
		t.Errorf("--out of other files: %v", err)
	}

	// Cancelled in epoch 2: context.Canceled, epoch 1 checkpointed.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	co := o
	co.Out = filepath.Join(t.TempDir(), "cancelled")
	co.OnStep = func(s Step) error {
		if s.Epoch == 2 {
			cancel()
		}
		return nil
	}
	if _, err := TrainLM(cctx, cfg, data, &co, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if c, err := LoadLMCheckpoint(co.Out); err != nil || c.Info.Epoch != 1 {
		t.Fatalf("checkpoint after the cancel: %v", err)
	}
}

// flipByte flips a bit near the end of a file (past a safetensors header).
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// countingSource records the destination batches ReadBatch fills: the
// number of distinct ones is the number of decoded units held at once.
type countingSource struct {
	Source
	mu    sync.Mutex
	dsts  map[*formats.Batch]bool
	reads int
}

func (c *countingSource) ReadBatch(u int, dst *formats.Batch) error {
	c.mu.Lock()
	if c.dsts == nil {
		c.dsts = map[*formats.Batch]bool{}
	}
	c.dsts[dst] = true
	c.reads++
	c.mu.Unlock()
	return c.Source.ReadBatch(u, dst)
}

// TestLMShuffleWindow checks the bounded shuffle window TrainLM reads its
// windows through, on a cache of 8 units of 32 windows: with a window of 2
// units every pass visits every window once, a batch of 16 mixes windows
// of both units of its window (never more), the order follows the seed
// and changes with the epoch, and no more than 4 units (the window and
// the one prefetched) are decoded at once; by default (memory budget) a
// budget of 3 units streams 1 at a time, holding 2 (within the budget),
// and a cache that fits is read once and kept. TrainLM itself holds no
// more units than that.
func TestLMShuffleWindow(t *testing.T) {
	const T, V, units, per = 8, 16, 8, 32
	cache := writeLMCache(t, units*per, T, V, formats.Config{TopK: 4}, 1)
	unitBytes := rowBytes(cache.Config()) * per
	pass := func(u *unitRows, seed uint64, e int) []int64 {
		var rows []int64
		err := u.each(context.Background(), rand.New(rand.NewPCG(seed, shuffleStream(e))), nil, func(b *formats.Batch, i int) error {
			rows = append(rows, b.Rows[i])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	src := &countingSource{Source: cache}
	u := newUnitRows(src, cache.Config(), 2, 0)
	e1, again, e2 := pass(u, 5, 1), pass(u, 5, 1), pass(u, 5, 2)
	if !slices.Equal(e1, again) || slices.Equal(e1, e2) {
		t.Error("the order is not a function of the seed and the epoch")
	}
	sorted := slices.Sorted(slices.Values(e1))
	for i, r := range sorted {
		if r != int64(i) {
			t.Fatalf("a pass does not visit each of the %d windows once", units*per)
		}
	}
	mixed := 0
	for b := 0; b < len(e1); b += 16 {
		seen := map[int64]bool{}
		for _, r := range e1[b : b+16] {
			seen[r/per] = true
		}
		if len(seen) > 2 {
			t.Fatalf("batch %d holds windows of %d units, more than a window of 2", b/16, len(seen))
		}
		if len(seen) == 2 {
			mixed++
		}
	}
	if mixed < len(e1)/16*3/4 {
		t.Errorf("only %d of %d batches mix windows of two units", mixed, len(e1)/16)
	}
	if len(src.dsts) > 4 {
		t.Errorf("%d units decoded at once, want at most 4", len(src.dsts))
	}

	src = &countingSource{Source: cache}
	u = newUnitRows(src, cache.Config(), 0, 3*unitBytes)
	pass(u, 5, 1)
	if u.window != 1 || len(src.dsts) > 2 || int64(len(src.dsts))*unitBytes > 3*unitBytes {
		t.Errorf("a budget of 3 units: window %d, %d units held", u.window, len(src.dsts))
	}
	src = &countingSource{Source: cache}
	u = newUnitRows(src, cache.Config(), 0, 0)
	pass(u, 5, 1)
	pass(u, 5, 2)
	if u.resident == nil || src.reads != units {
		t.Errorf("a cache within the default budget: resident %v, %d reads of %d units in two passes", u.resident != nil, src.reads, units)
	}

	cfg := TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16}
	for _, w := range []int{1, 2} {
		src := &countingSource{Source: cache}
		if _, err := TrainLM(context.Background(), cfg, src, &Options{Epochs: 2, Alpha: 1, Threads: 1, ShuffleWindow: w}, nil); err != nil {
			t.Fatal(err)
		}
		if len(src.dsts) > 2*w || src.reads != 2*units {
			t.Errorf("TrainLM with a window of %d units: %d units held at once, %d reads", w, len(src.dsts), src.reads)
		}
	}
}

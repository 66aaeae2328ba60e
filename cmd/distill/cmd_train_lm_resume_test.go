package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/train"
)

// lmFiles are the files of a transformer checkpoint.
var lmFiles = []string{train.ModelFile, train.ConfigFile, train.StateFile, train.TrainingFile}

// lmArgs is a small `distill train --student transformer` run on cache
// into out, with a shuffle window of 2 of the cache's units.
func lmArgs(cache, out string, epochs int, extra ...string) []string {
	return append([]string{"train", "--student", "transformer", "--cache", cache, "--out", out, "--layers", "2", "--dim", "32",
		"--heads", "4", "--kv-heads", "2", "--ffn", "64", "--epochs", strconv.Itoa(epochs), "--batch", "8", "--lr", "3e-3",
		"--alpha", "0.5", "--temperature", "2", "--schedule", "cosine", "--warmup", "5", "--shuffle-window", "2", "--threads", "1"}, extra...)
}

// TestTrainTransformerKillResume kills `distill train --student
// transformer` with SIGKILL at several moments, reruns the same command
// with --resume each time, and checks that the final checkpoint is
// byte-identical to an uninterrupted run's (weights, Hugging Face config,
// optimizer state, training record): a kill at any moment leaves a
// loadable checkpoint of the previous or the new epoch, never a mix.
func TestTrainTransformerKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several times (≈5 s)")
	}
	tmp := t.TempDir()
	cache := fixtures.WriteTokenCache(t, filepath.Join(tmp, "tokens"), 256, 16, 64, false)
	args := func(out string) []string { return lmArgs(cache, out, 6, "--resume") }
	killResume(t, tmp, args, lmFiles, func(dir string) (int, error) {
		c, err := train.LoadLMCheckpoint(dir)
		if err != nil {
			return 0, err
		}
		return c.Info.Epoch, nil
	})
}

// TestTrainTransformerInterrupt sends SIGINT after the first checkpoint:
// exit 130, the resume command printed, the checkpoint intact.
func TestTrainTransformerInterrupt(t *testing.T) {
	tmp := t.TempDir()
	cache := fixtures.WriteTokenCache(t, filepath.Join(tmp, "tokens"), 96, 16, 64, false)
	out := filepath.Join(tmp, "student")
	interruptAfterCheckpoint(t, out, lmArgs(cache, out, 200)...)
	if c, err := train.LoadLMCheckpoint(out); err != nil || c.Info.Epoch < 1 || c.Info.Epoch >= 200 {
		t.Fatalf("checkpoint after Ctrl-C: %v", err)
	}
}

// TestTrainTransformerResume: the resume of a finished run has nothing to
// do, one with other options lists the differences, a fresh run does not
// overwrite the checkpoint, and a resume into an MLP checkpoint or a
// damaged one is refused naming the problem.
func TestTrainTransformerResume(t *testing.T) {
	tmp := t.TempDir()
	cache := fixtures.WriteTokenCache(t, filepath.Join(tmp, "tokens"), 32, 8, 32, false)
	out := filepath.Join(tmp, "student")
	if code, _, stderr := runDistill(lmArgs(cache, out, 2)...); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	before := map[string][]byte{}
	for _, f := range lmFiles {
		before[f], _ = os.ReadFile(filepath.Join(out, f))
	}
	code, stdout, stderr := runDistill(lmArgs(cache, out, 2, "--resume")...)
	if code != exitOK || !strings.Contains(stdout, "train: 2 epochs") || strings.Contains(stderr, "epoch 1/2") {
		t.Errorf("resume of the finished run: exit %d:\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range lmFiles {
		if b, _ := os.ReadFile(filepath.Join(out, f)); !bytes.Equal(b, before[f]) {
			t.Errorf("the resume of a finished run changed %s", f)
		}
	}
	code, _, stderr = runDistill(lmArgs(cache, out, 2, "--resume", "--lr", "0.01", "--temperature", "3", "--threads", "2")...)
	if code != exitFailure || !strings.Contains(stderr, "lr: 0.003 in the checkpoint, now 0.01") || !strings.Contains(stderr, "temperature: 2 in the checkpoint, now 3") || strings.Contains(stderr, "threads") {
		t.Errorf("resume with changes: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runDistill(lmArgs(cache, out, 2)...); code != exitFailure || !strings.Contains(stderr, "--resume") {
		t.Errorf("overwrite: exit %d: %s", code, stderr)
	}
	mlp := fixtures.WriteStudent(t, filepath.Join(tmp, "mlp.ckpt"), 0.5, nil)
	if code, _, stderr := runDistill(lmArgs(cache, mlp, 2, "--resume")...); code != exitFailure || !strings.Contains(stderr, "not a checkpoint of distill train --student transformer") {
		t.Errorf("resume into an MLP checkpoint: exit %d: %s", code, stderr)
	}
	st := filepath.Join(out, train.StateFile)
	b, _ := os.ReadFile(st)
	os.WriteFile(st, b[:len(b)/2], 0o644)
	if code, _, stderr := runDistill(lmArgs(cache, out, 3, "--resume")...); code != exitFailure || !strings.Contains(stderr, "state.safetensors") {
		t.Errorf("damaged state: exit %d: %s", code, stderr)
	}
}

// TestTrainTransformerFromDataset trains from a per-token cache extracted
// without --keep-input, the token ids read from the token dataset its
// manifest names, and from the same cache with them: the same model bytes.
// A moved dataset is named with --data (--val-data for --val), and
// another file in its place is refused by its sha256.
func TestTrainTransformerFromDataset(t *testing.T) {
	tmp := t.TempDir()
	data := fixtures.WriteTokenData(t, filepath.Join(tmp, "tokens.parquet"), 48, 8, 12)
	keep := fixtures.WriteTokenCacheOf(t, filepath.Join(tmp, "keep"), data, true)
	recipe := fixtures.WriteTokenCacheOf(t, filepath.Join(tmp, "recipe"), data, false)
	run := func(cache, out string, extra ...string) (int, string) {
		code, _, stderr := runDistill(lmArgs(cache, filepath.Join(tmp, out), 2, append([]string{"--val", cache}, extra...)...)...)
		return code, stderr
	}
	if code, stderr := run(keep, "a"); code != exitOK {
		t.Fatalf("from the cached ids: exit %d:\n%s", code, stderr)
	}
	code, stderr := run(recipe, "b")
	if code != exitOK || !strings.Contains(stderr, "reading the inputs from the dataset "+data) {
		t.Fatalf("from the dataset: exit %d:\n%s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(tmp, "a", train.ModelFile))
	b, _ := os.ReadFile(filepath.Join(tmp, "b", train.ModelFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the model trained from the dataset differs from the one trained from the cached ids")
	}
	moved := filepath.Join(tmp, "moved.parquet")
	if err := os.Rename(data, moved); err != nil {
		t.Fatal(err)
	}
	if code, stderr := run(recipe, "c"); code != exitFailure || !strings.Contains(stderr, "--data") {
		t.Errorf("moved dataset: exit %d:\n%s", code, stderr)
	}
	if code, stderr := run(recipe, "d", "--data", moved); code != exitFailure || !strings.Contains(stderr, "--val") {
		t.Errorf("moved dataset, --data without --val-data: exit %d:\n%s", code, stderr)
	}
	if code, stderr := run(recipe, "e", "--data", moved, "--val-data", moved); code != exitOK {
		t.Errorf("--data and --val-data: exit %d:\n%s", code, stderr)
	}
	fixtures.WriteTokenData(t, moved, 52, 8, 12)
	if code, stderr := run(recipe, "f", "--data", moved, "--val-data", moved); code != exitFailure || !strings.Contains(stderr, "sha256") {
		t.Errorf("another dataset: exit %d:\n%s", code, stderr)
	}
}

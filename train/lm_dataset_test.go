package train_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/train"
)

// TestTrainLMFromDataset trains a transformer student from a per-token
// cache extracted without --keep-input, its token ids read from the token
// dataset the manifest names (train.NewDatasetSource: the first T of each
// window of T+1), and from the same cache with the ids cached: every unit
// reads the same ids and the two runs give the same weights. The raw cache
// without ids is refused naming NewDatasetSource; a moved dataset names
// --data, and another file of the same name is refused by its sha256.
func TestTrainLMFromDataset(t *testing.T) {
	const n, T, V = 48, 8, 12
	dir := t.TempDir()
	data := fixtures.WriteTokenData(t, filepath.Join(dir, "tokens.parquet"), n, T, V)
	open := func(keep bool) *formats.Cache {
		name := map[bool]string{true: "keep", false: "recipe"}[keep]
		c, err := formats.Open(fixtures.WriteTokenCacheOf(t, filepath.Join(dir, name), data, keep))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	keep, recipe := open(true), open(false)
	src, err := train.NewDatasetSource(recipe, "")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.NumBatches() != n/4 {
		t.Fatalf("%d units, want %d", src.NumBatches(), n/4)
	}
	var a, b formats.Batch
	for u := range src.NumBatches() {
		if err := keep.ReadBatch(u, &a); err != nil {
			t.Fatal(err)
		}
		if err := src.ReadBatch(u, &b); err != nil {
			t.Fatal(err)
		}
		if got, want := b.Inputs["input_ids"], a.Inputs["input_ids"]; len(got) != 4*T || !slices.Equal(got, want) {
			t.Fatalf("unit %d: token ids %v from the dataset, %v cached", u, got, want)
		}
	}
	cfg := train.TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 16}
	o := &train.Options{Epochs: 2, BatchSize: 8, LR: 1e-2, Alpha: 0.5, Temperature: 2, Seed: 3, Threads: 1}
	fromCache, err := train.TrainLM(context.Background(), cfg, keep, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromData, err := train.TrainLM(context.Background(), cfg, src, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range fromData.Model.Params() {
		if !slices.Equal(p.Data, fromCache.Model.Params()[i].Data) {
			t.Fatalf("%s differs between the runs from the dataset and from the cached ids", p.Name)
		}
	}

	if _, err := train.TrainLM(context.Background(), cfg, recipe, o, nil); err == nil || !strings.Contains(err.Error(), "NewDatasetSource") {
		t.Errorf("the cache without ids, unwrapped: %v", err)
	}
	moved := filepath.Join(dir, "moved.parquet")
	if err := os.Rename(data, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := train.NewDatasetSource(recipe, ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("moved dataset: %v", err)
	}
	s, err := train.NewDatasetSource(recipe, moved)
	if err != nil {
		t.Fatalf("moved dataset given: %v", err)
	}
	s.Close()
	fixtures.WriteTokenData(t, moved, n+4, T, V) // another dataset at that path
	if _, err := train.NewDatasetSource(recipe, moved); !errors.Is(err, train.ErrDatasetMismatch) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("another dataset: %v", err)
	}
}

//go:build cgo

package e2e

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// TestTrainFromDatasetInputs extracts the tiny teacher over x4.npy twice,
// in two shards of 4 parts each — with --keep-input and without — and
// checks that training from the second, its inputs read from the dataset
// named in the manifest and preprocessed from the recorded recipe, gives
// the same checkpoint bytes (weights, optimizer state, metrics) as
// training from the cached inputs with the same seed.
func TestTrainFromDatasetInputs(t *testing.T) {
	rt := requireRuntime(t)
	tiny := filepath.Join("..", "..", "fixtures", "tiny")
	tmp := t.TempDir()
	pre := extract.Preprocess{Scale: 2, Mean: []float64{0.25}, Std: []float64{0.5}}
	extractTiny := func(out string, keep bool) {
		for shard := range 2 {
			_, err := rt.Run(context.Background(), extract.Options{
				Teacher: filepath.Join(tiny, "mlp_logits.onnx"), Data: filepath.Join(tiny, "x4.npy"), Out: out,
				Dataset: &dataset.Options{Labels: filepath.Join(tiny, "y4.npy")}, Batch: 8, PartRows: 8, Threads: 1,
				KeepInput: keep, Preprocess: pre, ShardIndex: shard, ShardCount: 2,
			})
			if err != nil {
				t.Fatalf("extract (keep-input %v) shard %d: %v", keep, shard, err)
			}
		}
	}
	keepDir, recipeDir := filepath.Join(tmp, "keep"), filepath.Join(tmp, "recipe")
	extractTiny(keepDir, true)
	extractTiny(recipeDir, false)
	open := func(dir string) *formats.Cache {
		c, err := formats.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	keep, recipe := open(keepDir), open(recipeDir)

	m := recipe.Manifest()
	abs, _ := filepath.Abs(filepath.Join(tiny, "y4.npy"))
	if m.Version != formats.Version || len(recipe.Config().Inputs) != 0 || m.Dataset.Preprocess == nil ||
		m.Dataset.Options == nil || m.Dataset.Options.Labels != abs ||
		jsonText(m.Dataset.Inputs) != `[{"name":"x","column":"input","shape":[4]}]` ||
		jsonText(m.Dataset.Preprocess) != `{"scale":2,"mean":[0.25],"std":[0.5]}` {
		t.Fatalf("recipe in the manifest: version %s, dataset %s", m.Version, jsonText(m.Dataset))
	}
	if a, b := keep.Manifest().Settings.RowsPerBatch, m.Settings.RowsPerBatch; a != b {
		t.Errorf("rows per batch %d with the inputs kept, %d without: the units differ", a, b)
	}
	if a, b := jsonText(keep.Manifest().Dataset), jsonText(m.Dataset); a != b {
		t.Errorf("the two caches record different datasets:\n%s\n%s", a, b)
	}
	src, err := train.NewDatasetSource(recipe, "")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.NumBatches() != keep.NumBatches() || src.NumBatches() != 8 {
		t.Fatalf("%d units from the dataset, %d cached; want 8 (2 shards × 4 parts)", src.NumBatches(), keep.NumBatches())
	}
	var got, want formats.Batch
	for u := range src.NumBatches() {
		if err := src.ReadBatch(u, &got); err != nil {
			t.Fatal(err)
		}
		if err := keep.ReadBatch(u, &want); err != nil {
			t.Fatal(err)
		}
		g, w := got.Inputs["x"], want.Inputs["x"]
		if len(g) != len(w) || len(g) != 4*got.Len() {
			t.Fatalf("unit %d: %d input values, %d cached", u, len(g), len(w))
		}
		for i := range g {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("unit %d value %d: %v from the dataset, %v cached", u, i, g[i], w[i])
			}
		}
	}

	// A cache extracted without inputs and not wrapped cannot be trained
	// on; the error names the way.
	if _, err := train.Train(context.Background(), train.Config{}, recipe, &train.Options{Epochs: 1}); err == nil {
		t.Error("training on the bare cache without inputs succeeded")
	}

	ckpt := func(name string, data train.Source) map[string][]byte {
		out := filepath.Join(tmp, name)
		o := &train.Options{Epochs: 3, BatchSize: 8, LR: 1e-2, Temperature: 2, Alpha: 0.5, Seed: 7, Threads: 1,
			ShuffleWindow: 2, Val: data, Out: out}
		if _, err := train.Train(context.Background(), train.Config{Hidden: []int{8}}, data, o); err != nil {
			t.Fatalf("train %s: %v", name, err)
		}
		files := map[string][]byte{}
		for _, f := range []string{train.ModelFile, train.StateFile, train.MetricsFile} {
			b, err := os.ReadFile(filepath.Join(out, f))
			if err != nil {
				t.Fatal(err)
			}
			files[f] = b
		}
		return files
	}
	a, b := ckpt("keep.ckpt", keep), ckpt("recipe.ckpt", src)
	for f, data := range a {
		if string(data) != string(b[f]) {
			t.Errorf("%s differs between training on cached inputs and on dataset inputs", f)
		}
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package formats

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestManifestDatasetRecipe checks that the 1.1 dataset recipe survives
// CreateCache and ReadManifest, that a 1.0 manifest (no recipe) still
// reads, and that a broken recipe is refused.
func TestManifestDatasetRecipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := testManifest(0, 1)
	m.Dataset.Options = &DatasetOptions{Format: "npy", Labels: "/data/y.npy", FeatureName: "x"}
	m.Dataset.Inputs = []DatasetInput{{Name: "image", Column: "x", Shape: []int64{1, 28, 28}}}
	m.Dataset.Preprocess = &Preprocess{Scale: 1.0 / 255, Mean: []float64{0.1307}, Std: []float64{0.3081}}
	writeCache(t, dir, m, testConfigs["f32"], nil, 0, 3)
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != Version || !reflect.DeepEqual(got.Dataset.Options, m.Dataset.Options) ||
		!reflect.DeepEqual(got.Dataset.Inputs, m.Dataset.Inputs) || !reflect.DeepEqual(got.Dataset.Preprocess, m.Dataset.Preprocess) {
		t.Errorf("read back %+v (version %s)", got.Dataset, got.Version)
	}

	// The same cache written by 1.0: no recipe, and it opens.
	old := got
	old.Version = "1.0"
	old.Dataset.Options, old.Dataset.Inputs, old.Dataset.Preprocess = nil, nil, nil
	if ds, _ := json.Marshal(old.Dataset); strings.Contains(string(ds), `"inputs"`) || strings.Contains(string(ds), `"preprocess"`) || strings.Contains(string(ds), `"options"`) {
		t.Errorf("empty recipe fields are written: %s", ds)
	}
	data, _ := json.Marshal(&old)
	if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatalf("1.0 manifest: %v", err)
	}
	c.Close()

	for _, in := range []DatasetInput{{Name: "", Column: "x", Shape: []int64{1}}, {Name: "image", Column: "x", Shape: []int64{0, 3}}} {
		bad := got
		bad.Dataset.Inputs = []DatasetInput{in}
		data, _ := json.Marshal(&bad)
		if _, err := ParseManifest(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("input %+v: %v, want ErrCorrupt", in, err)
		}
	}
}

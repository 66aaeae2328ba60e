package train

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// writeNPY writes x, rows×cols float32, as a version 1.0 .npy file.
func writeNPY(t *testing.T, path string, x []float32, rows, cols int) {
	t.Helper()
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	// magic (6) + version (2) + header length (2) + header + '\n', padded to 64.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	buf := append([]byte("\x93NUMPY\x01\x00"), byte(len(header)), byte(len(header)>>8))
	buf = append(buf, header...)
	for _, v := range x {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// joinFixture is a dataset of raw values (integers 0..255, like pixels)
// and the same synthetic cache twice: once with the preprocessed inputs
// cached (keep), once with only the dataset recipe (recipe). Each is two
// shards (rows [0,150) and [150,300) of the dataset) with row ids missing
// inside units, so the dataset is read in several runs per unit.
type joinFixture struct {
	data         string // x.npy
	sha          string
	pre          formats.Preprocess
	keep, recipe *formats.Cache
}

const (
	joinRows  = 300
	joinWidth = 6 // per-sample shape [2,3]: 2 channels
)

func joinInputs(t *testing.T, dir string) *joinFixture {
	t.Helper()
	f := &joinFixture{data: filepath.Join(dir, "x.npy"),
		pre: formats.Preprocess{Scale: 1.0 / 255, Mean: []float64{0.1307, 0.5}, Std: []float64{0.3081, 0.25}}}
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, joinRows*joinWidth)
	for i := range x {
		x[i] = float32(rng.IntN(256))
	}
	writeNPY(t, f.data, x, joinRows, joinWidth)
	var err error
	if f.sha, err = dataset.FileSHA256(f.data); err != nil {
		t.Fatal(err)
	}
	shape := []int64{2, 3}
	for _, keep := range []bool{true, false} {
		name := "recipe"
		if keep {
			name = "keep"
		}
		var dirs []string
		for shard := range 2 {
			dirs = append(dirs, filepath.Join(dir, name, formats.ShardDirName(shard, 2)))
			writeJoinShard(t, dirs[shard], f, x, shape, keep, shard, f.pre)
		}
		c, err := formats.Open(dirs...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if keep {
			f.keep = c
		} else {
			f.recipe = c
		}
	}
	return f
}

// writeJoinShard writes shard i of 2 of the cache: 4 classes, labels,
// logits derived from the inputs, and inputs only if keep.
func writeJoinShard(t *testing.T, dir string, f *joinFixture, x []float32, shape []int64, keep bool, shard int, pre formats.Preprocess) {
	t.Helper()
	cfg := formats.Config{Classes: 4, HasLabel: true}
	if keep {
		cfg.Inputs = []formats.TensorSpec{{Name: "image", Shape: shape}}
	}
	m := formats.Manifest{Teacher: formats.Teacher{File: "t.onnx", SHA256: strings.Repeat("0f", 32)},
		Dataset: formats.Dataset{Path: f.data, SHA256: f.sha, Rows: joinRows, Preprocessing: pre.Describe(),
			Inputs: []formats.DatasetInput{{Name: "image", Column: dataset.DefaultFeatureName, Shape: shape}}, Preprocess: &pre},
		Settings: formats.Settings{ShardIndex: shard, ShardCount: 2}}
	cw, err := formats.CreateCache(dir, m, cfg, &formats.WriterOptions{Format: formats.FormatArrow, RowsPerBatch: 32})
	if err != nil {
		t.Fatal(err)
	}
	b := &formats.Batch{Inputs: map[string][]float32{}}
	for r := shard * joinRows / 2; r < (shard+1)*joinRows/2; r++ {
		if r%17 == 5 || r%13 == 0 { // gaps: rows the cache does not hold
			continue
		}
		in := slices.Clone(x[r*joinWidth : (r+1)*joinWidth])
		pre.Apply(in, 1, formats.Channels(shape))
		b.Rows = append(b.Rows, int64(r))
		for c := range 4 {
			b.Logits = append(b.Logits, in[c]-in[c+2]+float32(c)/4)
		}
		b.Labels = append(b.Labels, int64(r%4))
		if keep {
			b.Inputs["image"] = append(b.Inputs["image"], in...)
		}
	}
	if _, err := cw.WritePart(b); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDatasetSource checks that the inputs read from the dataset are
// bit-identical to the cached ones, unit by unit, and that training on
// either source gives the same checkpoint.
func TestDatasetSource(t *testing.T) {
	tmp := t.TempDir()
	f := joinInputs(t, tmp)
	src, err := NewDatasetSource(f.recipe, "")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if a, b := jsonString(src.Config()), jsonString(f.keep.Config()); a != b {
		t.Errorf("Config %s, want %s", a, b)
	}
	if src.NumBatches() != f.keep.NumBatches() || src.NumBatches() < 8 || src.NumRows() != f.keep.NumRows() {
		t.Fatalf("%d units, %d rows; want %d, %d", src.NumBatches(), src.NumRows(), f.keep.NumBatches(), f.keep.NumRows())
	}
	var got, want formats.Batch
	for u := range src.NumBatches() {
		if err := src.ReadBatch(u, &got); err != nil {
			t.Fatal(err)
		}
		if err := f.keep.ReadBatch(u, &want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Rows, want.Rows) || len(got.Inputs) != 1 {
			t.Fatalf("unit %d: rows %v, inputs %d; want rows %v", u, got.Rows, len(got.Inputs), want.Rows)
		}
		if i := firstDiff(got.Inputs["image"], want.Inputs["image"]); i >= 0 {
			t.Fatalf("unit %d: input value %d (row %d) differs from the cached one", u, i, got.Rows[min(i/joinWidth, got.Len()-1)])
		}
	}

	// Training: the same seed gives the same checkpoint bytes, resident
	// (the whole cache) and streaming (windows of 2 units, read by the
	// prefetching goroutine), with the validation set read the same way.
	for _, window := range []int{0, 2} {
		outs := map[string]map[string][]byte{}
		for name, data := range map[string]Source{"keep": f.keep, "recipe": src} {
			out := filepath.Join(tmp, fmt.Sprintf("%s-%d.ckpt", name, window))
			o := &Options{Epochs: 2, BatchSize: 16, Alpha: 0.5, Temperature: 2, Seed: 9, Threads: 1,
				ShuffleWindow: window, Val: data, Out: out}
			if _, err := Train(context.Background(), Config{Hidden: []int{8}}, data, o); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			outs[name] = readDir(t, out)
		}
		for _, file := range []string{ModelFile, StateFile, "metrics.jsonl"} {
			if a, b := outs["keep"][file], outs["recipe"][file]; len(a) == 0 || string(a) != string(b) {
				t.Errorf("window %d: %s differs between the cached and the dataset inputs", window, file)
			}
		}
	}
}

// firstDiff returns the first index where a and b differ in bits (or
// length), or -1.
func firstDiff(a, b []float32) int {
	for i := range min(len(a), len(b)) {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestDatasetSourceErrors(t *testing.T) {
	tmp := t.TempDir()
	f := joinInputs(t, tmp)

	// A changed dataset file, given as the moved dataset: refused, naming
	// both files and the fixes.
	data, err := os.ReadFile(f.data)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	changed := filepath.Join(tmp, "moved", "x.npy")
	os.MkdirAll(filepath.Dir(changed), 0o755)
	if err := os.WriteFile(changed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewDatasetSource(f.recipe, changed)
	if !errors.Is(err, ErrDatasetMismatch) || !strings.Contains(err.Error(), changed) || !strings.Contains(err.Error(), f.data) ||
		!strings.Contains(err.Error(), f.sha) || !strings.Contains(err.Error(), "--data") || !strings.Contains(err.Error(), "re-extract") {
		t.Errorf("sha mismatch: %v", err)
	}
	// The same bytes elsewhere are accepted (--data for a moved dataset).
	data[len(data)-1] ^= 1
	if err := os.WriteFile(changed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := NewDatasetSource(f.recipe, changed); err != nil || s.Path() != changed {
		t.Errorf("moved dataset: %v", err)
	} else {
		s.Close()
	}
	// The recorded file is gone: the error suggests --data.
	if err := os.Rename(f.data, f.data+".gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDatasetSource(f.recipe, ""); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Errorf("missing dataset: %v", err)
	}
	os.Rename(f.data+".gone", f.data)

	// A cache without the recipe (format 1.0), and one with a recipe used
	// directly: ErrNoInput, naming the fixes.
	old := smallCache(t, filepath.Join(tmp, "old"), func(s *synth) { s.NoInputs = true })
	if _, err := NewDatasetSource(old, ""); !errors.Is(err, ErrNoInput) {
		t.Errorf("no recipe: %v", err)
	}
	_, err = Train(context.Background(), Config{}, f.recipe, &Options{Epochs: 1})
	if !errors.Is(err, ErrNoInput) || !strings.Contains(err.Error(), "NewDatasetSource") {
		t.Errorf("cache with a recipe used directly: %v", err)
	}
	if !strings.Contains(ErrNoInput.Error(), "--keep-input") || !strings.Contains(ErrNoInput.Error(), "this version") {
		t.Errorf("ErrNoInput does not name both fixes: %v", ErrNoInput)
	}

	// Shards that disagree on the recipe.
	x := make([]float32, joinRows*joinWidth)
	other := f.pre
	other.Scale = 1
	var dirs []string
	for shard := range 2 {
		pre := f.pre
		if shard == 1 {
			pre = other
		}
		dirs = append(dirs, filepath.Join(tmp, "mixed", formats.ShardDirName(shard, 2)))
		writeJoinShard(t, dirs[shard], f, x, []int64{2, 3}, false, shard, pre)
	}
	mixed, err := formats.Open(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	defer mixed.Close()
	if _, err := NewDatasetSource(mixed, ""); err == nil || !strings.Contains(err.Error(), "different dataset recipes") {
		t.Errorf("mixed shards: %v", err)
	}

	// A cache row beyond the dataset (a shorter file with the same sha is
	// impossible, so a cache claiming rows past the end).
	short := filepath.Join(tmp, "short")
	sm := formats.Manifest{Teacher: formats.Teacher{File: "t.onnx", SHA256: strings.Repeat("0f", 32)},
		Dataset: formats.Dataset{Path: f.data, SHA256: f.sha, Rows: joinRows,
			Inputs: []formats.DatasetInput{{Name: "image", Column: "input", Shape: []int64{6}}}}}
	cw, err := formats.CreateCache(short, sm, formats.Config{Classes: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.WritePart(&formats.Batch{Rows: []int64{joinRows - 1, joinRows}, Logits: []float32{0, 1, 1, 0}}); err != nil {
		t.Fatal(err)
	}
	cw.Close()
	sc, err := formats.Open(short)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s, err := NewDatasetSource(sc, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b formats.Batch
	if err := s.ReadBatch(0, &b); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cache row %d is outside", joinRows)) {
		t.Errorf("row past the end: %v", err)
	}
	// A recipe naming a column the dataset lacks.
	nm := sm
	nm.Dataset.Inputs = []formats.DatasetInput{{Name: "image", Column: "pixels", Shape: []int64{6}}}
	nocol := filepath.Join(tmp, "nocol")
	if cw, err = formats.CreateCache(nocol, nm, formats.Config{Classes: 2}, nil); err != nil {
		t.Fatal(err)
	}
	cw.Close()
	nc, err := formats.Open(nocol)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := NewDatasetSource(nc, ""); err == nil || !strings.Contains(err.Error(), `no column "pixels"`) {
		t.Errorf("missing column: %v", err)
	}
}

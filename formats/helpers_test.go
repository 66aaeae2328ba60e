package formats

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// testConfigs covers every column kind and dtype.
var testConfigs = map[string]Config{
	"f32":        {Classes: 10},
	"f16-label":  {Classes: 10, ScoreDtype: Float16, HasLabel: true},
	"topk-f32":   {Classes: 10, TopK: 5, HasLabel: true},
	"topk-f16":   {Classes: 10, TopK: 3, ScoreDtype: Float16},
	"hidden":     {Classes: 4, HasLabel: true, Hidden: []TensorSpec{{Name: "h", Shape: []int64{2, 3}}, {Name: "/l2/Relu_output_0", Shape: []int64{5}, Dtype: Float16}}},
	"inputs":     {Classes: 3, TopK: 2, Inputs: []TensorSpec{{Name: "image", Shape: []int64{1, 2, 2}}}, Hidden: []TensorSpec{{Name: "s", Shape: nil}}},
	"one-class":  {Classes: 1},
	"topk-all-C": {Classes: 4, TopK: 4, ScoreDtype: Float16, HasLabel: true},
	// Per-token caches: windows of Positions tokens, a score vector each.
	"seq-dense": {Classes: 16, Positions: 5, ScoreDtype: Float16, HasLabel: true, Hidden: []TensorSpec{{Name: "hidden_states.1", Shape: []int64{5, 3}, Dtype: Float16}}},
	"seq-topk":  {Classes: 20, TopK: 4, Positions: 3, HasLabel: true, Inputs: []TensorSpec{{Name: "input_ids", Shape: []int64{3}}}},
	// Sampled targets: ragged lists of the drawn ids.
	"sampled":     {Classes: 10, Samples: 4, SampleSeed: 9, HasLabel: true},
	"seq-sampled": {Classes: 20, Samples: 6, SampleTemperature: 2, Positions: 3, ScoreDtype: Float16},
}

// makeBatch returns n deterministic rows for cfg starting at row id first.
// Values are multiples of 1/8 in [-8, 8] so that they survive float16 exactly.
func makeBatch(cfg Config, first int64, n int, seed uint64) *Batch {
	cfg, err := cfg.normalize()
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(first)))
	val := func() float32 { return float32(rng.IntN(129)-64) / 8 }
	b := &Batch{}
	P := cfg.positions()
	for i := 0; i < n; i++ {
		b.Rows = append(b.Rows, first+int64(i))
		if cfg.HasLabel {
			for range P {
				b.Labels = append(b.Labels, int64(rng.IntN(cfg.Classes)))
			}
		}
	}
	logits := make([]float32, n*P*cfg.Classes)
	for i := range logits {
		logits[i] = val()
	}
	if cfg.TopK == 0 {
		b.Logits = logits
	} else {
		k := cfg.TopK
		b.TopKIndex = make([]int32, n*P*k)
		b.TopKLogit = make([]float32, n*P*k)
		b.LogSumExp = make([]float32, n*P)
		if cfg.Samples > 0 {
			b.SampleCount = make([]int32, n*P*k)
		}
		for r := 0; r < n*P; r++ {
			if cfg.Samples > 0 {
				b.LogSumExp[r] = Sample(b.TopKIndex[r*k:(r+1)*k], b.TopKLogit[r*k:(r+1)*k], b.SampleCount[r*k:(r+1)*k],
					logits[r*cfg.Classes:(r+1)*cfg.Classes], cfg.Samples, cfg.SampleTemperature, rng)
				continue
			}
			b.LogSumExp[r] = TopK(b.TopKIndex[r*k:(r+1)*k], b.TopKLogit[r*k:(r+1)*k], logits[r*cfg.Classes:(r+1)*cfg.Classes])
		}
	}
	for _, h := range cfg.Hidden {
		if b.Hidden == nil {
			b.Hidden = map[string][]float32{}
		}
		v := make([]float32, n*h.Size())
		for i := range v {
			v[i] = val()
		}
		b.Hidden[h.Name] = v
	}
	for _, in := range cfg.Inputs {
		if b.Inputs == nil {
			b.Inputs = map[string][]float32{}
		}
		v := make([]float32, n*in.Size())
		for i := range v {
			v[i] = val()
		}
		b.Inputs[in.Name] = v
	}
	return b
}

// concatBatches appends the rows of bs into one batch.
func concatBatches(bs ...*Batch) *Batch {
	out := &Batch{}
	for _, b := range bs {
		out.Rows = append(out.Rows, b.Rows...)
		out.Labels = append(out.Labels, b.Labels...)
		out.Logits = append(out.Logits, b.Logits...)
		out.TopKIndex = append(out.TopKIndex, b.TopKIndex...)
		out.TopKLogit = append(out.TopKLogit, b.TopKLogit...)
		out.LogSumExp = append(out.LogSumExp, b.LogSumExp...)
		out.SampleCount = append(out.SampleCount, b.SampleCount...)
		for k, v := range b.Hidden {
			if out.Hidden == nil {
				out.Hidden = map[string][]float32{}
			}
			out.Hidden[k] = append(out.Hidden[k], v...)
		}
		for k, v := range b.Inputs {
			if out.Inputs == nil {
				out.Inputs = map[string][]float32{}
			}
			out.Inputs[k] = append(out.Inputs[k], v...)
		}
	}
	return out
}

// equalBatch reports differences between two batches, treating nil and
// empty slices alike and comparing floats bit for bit (NaN == NaN).
func equalBatch(t *testing.T, want, got *Batch) {
	t.Helper()
	eqI64 := func(name string, a, b []int64) {
		if len(a) != len(b) {
			t.Fatalf("%s: len %d, want %d", name, len(b), len(a))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d] = %d, want %d", name, i, b[i], a[i])
			}
		}
	}
	eqF32 := func(name string, a, b []float32) {
		if len(a) != len(b) {
			t.Fatalf("%s: len %d, want %d", name, len(b), len(a))
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s[%d] = %v, want %v", name, i, b[i], a[i])
			}
		}
	}
	eqI64("rows", want.Rows, got.Rows)
	eqI64("labels", want.Labels, got.Labels)
	eqF32("logits", want.Logits, got.Logits)
	if len(want.TopKIndex) != len(got.TopKIndex) {
		t.Fatalf("topk_index: len %d, want %d", len(got.TopKIndex), len(want.TopKIndex))
	}
	for i := range want.TopKIndex {
		if want.TopKIndex[i] != got.TopKIndex[i] {
			t.Fatalf("topk_index[%d] = %d, want %d", i, got.TopKIndex[i], want.TopKIndex[i])
		}
	}
	eqF32("topk_logit", want.TopKLogit, got.TopKLogit)
	eqF32("logsumexp", want.LogSumExp, got.LogSumExp)
	for _, m := range []struct {
		prefix    string
		want, got map[string][]float32
	}{{"hidden.", want.Hidden, got.Hidden}, {"input.", want.Inputs, got.Inputs}} {
		for k := range m.want {
			eqF32(m.prefix+k, m.want[k], m.got[k])
		}
		for k := range m.got {
			eqF32(m.prefix+k, m.want[k], m.got[k])
		}
	}
}

// writePart writes batches to an in-memory part file.
func writePart(t testing.TB, cfg Config, opts *WriterOptions, bs ...*Batch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeParts writes each batch as one part of a new cache in dir and
// commits it.
func writeParts(t testing.TB, dir string, m Manifest, cfg Config, opts *WriterOptions, parts ...*Batch) {
	t.Helper()
	cw, err := CreateCache(dir, m, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range parts {
		if _, err := cw.WritePart(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
}

// openParts writes the parts as writeParts does into a new temporary
// directory and opens the cache; it is closed when the test ends.
func openParts(t testing.TB, m Manifest, cfg Config, opts *WriterOptions, parts ...*Batch) *Cache {
	t.Helper()
	dir := t.TempDir()
	writeParts(t, dir, m, cfg, opts, parts...)
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readPart reads every batch of an in-memory part into one batch.
func readPart(t testing.TB, data []byte, opts *ReaderOptions) (*Batch, []int) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var all []*Batch
	var sizes []int
	var b Batch
	for i := 0; i < r.NumBatches(); i++ {
		if err := r.ReadBatch(i, &b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b.Clone())
		sizes = append(sizes, b.Len())
	}
	return concatBatches(all...), sizes
}

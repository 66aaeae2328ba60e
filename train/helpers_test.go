package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// synth describes a synthetic cache: inputs x [D] with per-feature offsets
// and scales (so standardization matters), labels y = argmax(W·x), teacher
// logits 2·W·x plus noise, and a hidden state tanh(A·x).
type synth struct {
	Rows, Inputs, Classes, Hidden int
	TopK                          int
	NoLabels, NoInputs            bool
	RowsPerBatch, RowsPerPart     int
	Seed                          uint64
	NaNRow                        int64   // if > 0, the teacher scores of this row are NaN
	Shape                         []int64 // per-sample input shape (product Inputs); default [1, Inputs]
}

// writeSynth writes the cache to dir and returns it opened.
func writeSynth(t testing.TB, dir string, s synth) *formats.Cache {
	t.Helper()
	if s.RowsPerBatch == 0 {
		s.RowsPerBatch = 64
	}
	if s.RowsPerPart == 0 {
		s.RowsPerPart = s.Rows
	}
	// The teacher (W, A) is the same for every seed; the rows differ.
	rng := rand.New(rand.NewPCG(0, 99))
	W := make([]float64, s.Classes*s.Inputs)
	for i := range W {
		W[i] = rng.NormFloat64()
	}
	A := make([]float64, s.Hidden*s.Inputs)
	for i := range A {
		A[i] = rng.NormFloat64() / math.Sqrt(float64(s.Inputs))
	}
	rng = rand.New(rand.NewPCG(s.Seed, 100))
	cfg := formats.Config{Classes: s.Classes, TopK: s.TopK, HasLabel: !s.NoLabels}
	if s.Hidden > 0 {
		cfg.Hidden = []formats.TensorSpec{{Name: "h", Shape: []int64{int64(s.Hidden)}}}
	}
	if !s.NoInputs {
		cfg.Inputs = []formats.TensorSpec{{Name: "x", Shape: []int64{1, int64(s.Inputs)}}}
		if s.Shape != nil {
			cfg.Inputs[0].Shape = s.Shape
		}
	}
	m := formats.Manifest{Teacher: formats.Teacher{File: "synth.onnx", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Dataset: formats.Dataset{Path: "synth", Rows: int64(s.Rows)}}
	var parts []*formats.Batch
	for start := 0; start < s.Rows; start += s.RowsPerPart {
		n := min(s.RowsPerPart, s.Rows-start)
		b := &formats.Batch{Hidden: map[string][]float32{}, Inputs: map[string][]float32{}}
		x := make([]float64, s.Inputs)
		for r := range n {
			b.Rows = append(b.Rows, int64(start+r))
			for j := range x {
				x[j] = rng.NormFloat64()
				if !s.NoInputs {
					b.Inputs["x"] = append(b.Inputs["x"], float32(3*x[j]+float64(j)))
				}
			}
			best, bestV := 0, math.Inf(-1)
			for c := range s.Classes {
				var z float64
				for j := range x {
					z += W[c*s.Inputs+j] * x[j]
				}
				if z > bestV {
					best, bestV = c, z
				}
				v := float32(2*z + 0.3*rng.NormFloat64())
				if int64(start+r) == s.NaNRow && s.NaNRow > 0 {
					v = float32(math.NaN())
				}
				b.Logits = append(b.Logits, v)
			}
			if !s.NoLabels {
				b.Labels = append(b.Labels, int64(best))
			}
			for k := range s.Hidden {
				var z float64
				for j := range x {
					z += A[k*s.Inputs+j] * x[j]
				}
				b.Hidden["h"] = append(b.Hidden["h"], float32(math.Tanh(z)))
			}
		}
		parts = append(parts, b)
	}
	return writeCache(t, dir, m, cfg, &formats.WriterOptions{Format: formats.FormatArrow, RowsPerBatch: s.RowsPerBatch}, parts...)
}

// writeCache writes each batch as one part of a new cache in dir and
// opens it; the cache is closed when the test ends.
func writeCache(t testing.TB, dir string, m formats.Manifest, cfg formats.Config, opts *formats.WriterOptions, parts ...*formats.Batch) *formats.Cache {
	t.Helper()
	cw, err := formats.CreateCache(dir, m, cfg, opts)
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
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// randMat returns a rows×cols Mat of N(0, scale²) values.
func randMat(rng *rand.Rand, rows, cols int, scale float64) Mat {
	m := Mat{Rows: rows, Cols: cols, Data: make([]float32, rows*cols)}
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64() * scale)
	}
	return m
}

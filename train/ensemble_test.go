package train

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// ensClasses is the class count of the ensemble fixtures: small enough
// that a top-3 cache leaves a rest bucket of 3 classes.
const ensClasses = 6

// ensDataSHA is the dataset sha256 the fixtures' manifests record.
var ensDataSHA = strings.Repeat("d1", 32)

// ensMember describes one teacher's cache for the ensemble tests.
type ensMember struct {
	teacher string  // teacher file name; its sha256 and scores derive from it
	rows    []int64 // row ids in cache order
	rpb     int     // rows per unit
	part    int     // rows per part (0: one part)
	topK    int
	primary bool // with inputs and a hidden state
	classes int  // 0: ensClasses
	dataSHA string
	// spike, if >= 0, is a row whose class-0 score is 60 above the rest,
	// so that a top-k cache's rest mass rounds to 0 there.
	spike int64
	// labels(row); nil: row % classes.
	labels func(int64) int64
	// positions > 0 writes a per-token cache, samples > 0 a sampled one.
	positions, samples int
	// scores, if set, gives the full scores of a row instead of ensScores.
	scores func(int64) []float32
}

// ensScores returns the teacher's full scores of a row: a pure function
// of the teacher and the row, so every cache of a teacher agrees.
func ensScores(teacher string, row int64, C int, spike int64) []float32 {
	h := fnv.New64a()
	h.Write([]byte(teacher))
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(row)))
	z := make([]float32, C)
	for c := range z {
		z[c] = float32(2 * rng.NormFloat64())
	}
	if row == spike {
		z[0] += 60
	}
	return z
}

// ensSHA is the teacher's (made-up) sha256: its FNV-64a hash, 4 times.
func ensSHA(teacher string) string {
	h := fnv.New64a()
	h.Write([]byte(teacher))
	return strings.Repeat(fmt.Sprintf("%016x", h.Sum64()), 4)
}

// writeEnsMember writes the member's cache into dir and opens it.
func writeEnsMember(t *testing.T, dir string, m ensMember) *formats.Cache {
	t.Helper()
	C := m.classes
	if C == 0 {
		C = ensClasses
	}
	if m.dataSHA == "" {
		m.dataSHA = ensDataSHA
	}
	if m.dataSHA == "-" {
		m.dataSHA = ""
	}
	if m.labels == nil {
		m.labels = func(r int64) int64 { return r % int64(C) }
	}
	cfg := formats.Config{Classes: C, TopK: m.topK, HasLabel: true, Positions: m.positions, Samples: m.samples}
	if m.primary {
		cfg.Inputs = []formats.TensorSpec{{Name: "x", Shape: []int64{2}}}
		cfg.Hidden = []formats.TensorSpec{{Name: "h", Shape: []int64{1}}}
	}
	man := formats.Manifest{Teacher: formats.Teacher{File: m.teacher, SHA256: ensSHA(m.teacher)},
		Dataset: formats.Dataset{Path: "data.npy", SHA256: m.dataSHA, Rows: 1000}}
	part := m.part
	if part == 0 {
		part = len(m.rows)
	}
	var parts []*formats.Batch
	for lo := 0; lo < len(m.rows); lo += part {
		b := &formats.Batch{Inputs: map[string][]float32{}, Hidden: map[string][]float32{}}
		for _, r := range m.rows[lo:min(lo+part, len(m.rows))] {
			b.Rows = append(b.Rows, r)
			P := max(m.positions, 1)
			for range P {
				b.Labels = append(b.Labels, m.labels(r))
				z := ensScores(m.teacher, r, C, m.spike)
				if m.scores != nil {
					z = m.scores(r)
				}
				if m.samples > 0 { // all draws on the best class, then a count-0 pad
					best := int32(slices.Index(z, slices.Max(z)))
					for j := range min(m.samples, C) {
						b.TopKIndex = append(b.TopKIndex, best)
						b.TopKLogit = append(b.TopKLogit, z[best])
						b.SampleCount = append(b.SampleCount, int32(m.samples*(1-min(j, 1))))
					}
					b.LogSumExp = append(b.LogSumExp, float32(logSumExp(f64(z))))
					continue
				}
				b.Logits = append(b.Logits, z...)
			}
			if m.primary {
				b.Inputs["x"] = append(b.Inputs["x"], float32(r), -float32(r))
				b.Hidden["h"] = append(b.Hidden["h"], float32(r)/2)
			}
		}
		parts = append(parts, b)
	}
	return writeCache(t, dir, man, cfg, &formats.WriterOptions{Format: formats.FormatArrow, RowsPerBatch: m.rpb}, parts...)
}

func reversed(r []int64) []int64 {
	slices.Reverse(r)
	return r
}

func rowRange(lo, hi int64) []int64 {
	var r []int64
	for i := lo; i < hi; i++ {
		r = append(r, i)
	}
	return r
}

// cachedRows reads every row of c: row id → its unit's batch and index.
func cachedRows(t *testing.T, c *formats.Cache) map[int64]memberRowRef {
	t.Helper()
	out := map[int64]memberRowRef{}
	for u := range c.NumBatches() {
		b := new(formats.Batch)
		if err := c.ReadBatch(u, b); err != nil {
			t.Fatal(err)
		}
		for r, id := range b.Rows {
			out[id] = memberRowRef{b, r}
		}
	}
	return out
}

type memberRowRef struct {
	b *formats.Batch
	r int
}

// refProbs is the teacher distribution at T the KD loss uses, written out
// from its doc comment (KD, "Top-k teachers") rather than from the
// Ensemble's code: softmax(z/T) for full scores; for top-k, p_j =
// exp(t_j/T − Z) for the cached classes and the rest bucket p_rest =
// exp(a − Z), a = log m + log(R/m)/T, R = exp(LSE)·(1 − Σ_j exp(t_j −
// LSE)), shared evenly by its m classes.
func refProbs(ref memberRowRef, k, C int, T float64) []float64 {
	b, r := ref.b, ref.r
	p := make([]float64, C)
	if k == 0 {
		var z float64
		mx := slices.Max(b.Logits[r*C : (r+1)*C])
		for c := range C {
			p[c] = math.Exp((float64(b.Logits[r*C+c]) - float64(mx)) / T)
			z += p[c]
		}
		for c := range p {
			p[c] /= z
		}
		return p
	}
	lse := float64(b.LogSumExp[r])
	idx, tl := b.TopKIndex[r*k:(r+1)*k], b.TopKLogit[r*k:(r+1)*k]
	rest := 1.0
	for _, v := range tl {
		rest -= math.Exp(float64(v) - lse)
	}
	m := float64(C - k)
	// Terms relative to exp(lse/T), so that nothing overflows.
	var terms []float64
	for _, v := range tl {
		terms = append(terms, math.Exp((float64(v)-lse)/T))
	}
	restTerm := 0.0
	if rest > 0 {
		restTerm = math.Exp(math.Log(m) + (math.Log(rest)-math.Log(m))/T) // exp(a − LSE/T)
	}
	Z := restTerm
	for _, v := range terms {
		Z += v
	}
	for c := range p {
		p[c] = restTerm / Z / m
	}
	for j, c := range idx {
		p[c] = terms[j] / Z
	}
	return p
}

// refLogits is a teacher's scores for the logits mode: full scores as
// cached; for top-k, the cached scores and log(R/m) for the others (−∞
// when R = 0), R = exp(LSE) − Σ_j exp(t_j).
func refLogits(ref memberRowRef, k, C int) []float64 {
	b, r := ref.b, ref.r
	if k == 0 {
		return f64(b.Logits[r*C : (r+1)*C])
	}
	lse := float64(b.LogSumExp[r])
	rest := 1.0
	for _, v := range b.TopKLogit[r*k : (r+1)*k] {
		rest -= math.Exp(float64(v) - lse)
	}
	z := make([]float64, C)
	for c := range z {
		z[c] = math.Inf(-1)
		if rest > 0 {
			z[c] = lse + math.Log(rest/float64(C-k))
		}
	}
	for j, c := range b.TopKIndex[r*k : (r+1)*k] {
		z[c] = float64(b.TopKLogit[r*k+j])
	}
	return z
}

// TestEnsembleTargets checks every row's target against a float64
// evaluation of the formulas (see Ensemble, "Targets") from the cached
// scores, for both modes, weights (one of them 0), full and top-k
// teachers, a top-k primary, and rows joined across caches of other
// units, other orders and more rows; and that the KD loss on the targets
// is α·T²·KL(p̄ ‖ q) against the ensemble's p̄.
func TestEnsembleTargets(t *testing.T) {
	tmp := t.TempDir()
	const n = 100
	shuffled := rowRange(0, 130) // a superset in another order
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	swapped := rowRange(0, n) // the primary's unit sizes, rows 0..15 and 16..31 swapped
	copy(swapped, append(rowRange(16, 32), rowRange(0, 16)...))
	write := func(name string, m ensMember) *formats.Cache { return writeEnsMember(t, filepath.Join(tmp, name), m) }
	full := write("full", ensMember{teacher: "a.onnx", rows: rowRange(0, n), rpb: 16, part: 48, primary: true, spike: -1})
	topk := write("topk", ensMember{teacher: "b.onnx", rows: shuffled, rpb: 7, part: 50, topK: 3, spike: 7})
	aligned := write("aligned", ensMember{teacher: "c.onnx", rows: rowRange(0, n), rpb: 16, part: 48, spike: -1})
	swap := write("swapped", ensMember{teacher: "d.onnx", rows: swapped, rpb: 16, topK: 2, spike: 40})
	topkPrimary := write("topk-primary", ensMember{teacher: "e.onnx", rows: reversed(rowRange(0, n)), rpb: 9, topK: 4, primary: true, spike: 3})

	for _, tc := range []struct {
		name    string
		caches  []*formats.Cache
		mode    EnsembleMode
		weights []float64
		T       float64
	}{
		{"probs-T4", []*formats.Cache{full, topk, aligned, swap}, EnsembleProbs, []float64{5, 2, 2, 1}, 4},
		{"probs-T1-equal", []*formats.Cache{full, topk, aligned, swap}, "", nil, 1},
		{"probs-weight0", []*formats.Cache{full, topk, aligned}, EnsembleProbs, []float64{1, 0, 3}, 2.5},
		{"probs-topk-primary", []*formats.Cache{topkPrimary, full, topk}, EnsembleProbs, []float64{1, 1, 2}, 0.5},
		{"logits", []*formats.Cache{full, topk, aligned, swap}, EnsembleLogits, []float64{1, 1, 1, 1}, 3},
		{"logits-topk-primary", []*formats.Cache{topkPrimary, aligned}, EnsembleLogits, []float64{0.25, 0.75}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEnsemble(nil, tc.caches, &EnsembleOptions{Mode: tc.mode, Weights: tc.weights, Temperature: tc.T})
			if err != nil {
				t.Fatal(err)
			}
			C := ensClasses
			if cfg := e.Config(); cfg.TopK != 0 || cfg.Classes != C || !cfg.HasLabel || len(cfg.Inputs) != 1 || len(cfg.Hidden) != 1 {
				t.Fatalf("config %+v: want full scores of %d classes, labels, the primary's input and hidden state", cfg, C)
			}
			w := tc.weights
			if w == nil {
				w = slices.Repeat([]float64{1}, len(tc.caches))
			}
			var wsum float64
			for _, v := range w {
				wsum += v
			}
			refs := make([]map[int64]memberRowRef, len(tc.caches))
			for i, c := range tc.caches {
				refs[i] = cachedRows(t, c)
			}
			var pb formats.Batch
			var got formats.Batch
			rows := 0
			kd := &KD{Temperature: tc.T, Alpha: 1}
			for u := range e.NumBatches() {
				if err := tc.caches[0].ReadBatch(u, &pb); err != nil {
					t.Fatal(err)
				}
				if err := e.ReadBatch(u, &got); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Rows, pb.Rows) || !slices.Equal(got.Labels, pb.Labels) || !slices.Equal(got.Inputs["x"], pb.Inputs["x"]) ||
					!slices.Equal(got.Hidden["h"], pb.Hidden["h"]) {
					t.Fatalf("unit %d: rows, labels, inputs or hidden states are not the primary's", u)
				}
				if len(got.Logits) != got.Len()*C || len(got.TopKIndex)+len(got.TopKLogit)+len(got.LogSumExp) != 0 {
					t.Fatalf("unit %d: %d logits and %d top-k values for %d rows", u, len(got.Logits), len(got.TopKIndex), got.Len())
				}
				for r, id := range got.Rows {
					rows++
					z := f64(got.Logits[r*C : (r+1)*C])
					for c, v := range z {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("row %d class %d: target %v", id, c, v)
						}
					}
					if tc.mode == EnsembleLogits {
						checkLogitsTarget(t, id, z, refs, tc.caches, w, wsum, tc.T)
					} else {
						pbar := make([]float64, C)
						for i, c := range tc.caches {
							if w[i] == 0 {
								continue
							}
							p := refProbs(refs[i][id], c.Config().TopK, C, tc.T)
							for j := range pbar {
								pbar[j] += w[i] / wsum * p[j]
							}
						}
						checkProbsTarget(t, id, z, pbar, tc.T)
						checkKDOnTarget(t, kd, id, got.Logits[r*C:(r+1)*C], pbar, tc.T)
					}
				}
			}
			if rows != n {
				t.Errorf("%d rows, want %d", rows, n)
			}
		})
	}
}

// checkProbsTarget checks softmax(z/T) = p̄ and z − max z = T·log(p̄/max p̄)
// where p̄ is above the floor.
func checkProbsTarget(t *testing.T, id int64, z, pbar []float64, T float64) {
	t.Helper()
	mx := slices.Max(z)
	var s float64
	q := make([]float64, len(z))
	for c, v := range z {
		q[c] = math.Exp((v - mx) / T)
		s += q[c]
	}
	pmax := slices.Max(pbar)
	for c := range q {
		q[c] /= s
		// float32 targets keep log p̄ to ~1e-7 relative of T·|log p̄|.
		if math.Abs(q[c]-pbar[c]) > 1e-6+1e-5*pbar[c] {
			t.Errorf("row %d class %d: softmax(z̄/T) %.9g, p̄ %.9g", id, c, q[c], pbar[c])
		}
		if lr := math.Log(pbar[c] / pmax); lr > -ensembleFloor {
			if want := T * lr; math.Abs(z[c]-mx-want) > 1e-5*max(1, math.Abs(want)) {
				t.Errorf("row %d class %d: z̄ − max %.7g, T·log(p̄/max p̄) %.7g", id, c, z[c]-mx, want)
			}
		} else if z[c]-mx != -ensembleFloor*T {
			t.Errorf("row %d class %d: p̄ %g is below the floor, target %g, want %g", id, c, pbar[c], z[c]-mx, -ensembleFloor*T)
		}
	}
}

// checkLogitsTarget checks z − max z = Σ w_i z_i − max (floored).
func checkLogitsTarget(t *testing.T, id int64, z []float64, refs []map[int64]memberRowRef, caches []*formats.Cache, w []float64, wsum, T float64) {
	t.Helper()
	C := len(z)
	want := make([]float64, C)
	for i, c := range caches {
		if w[i] == 0 {
			continue
		}
		zi := refLogits(refs[i][id], c.Config().TopK, C)
		for j := range want {
			want[j] += w[i] / wsum * zi[j]
		}
	}
	wm, gm := slices.Max(want), slices.Max(z)
	for c := range z {
		d := want[c] - wm
		if math.IsInf(d, -1) || d < -ensembleFloor*T {
			if z[c]-gm != -ensembleFloor*T {
				t.Errorf("row %d class %d: target %g, want the floor %g", id, c, z[c]-gm, -ensembleFloor*T)
			}
			continue
		}
		if math.Abs(z[c]-gm-d) > 2e-5*max(1, math.Abs(d)) {
			t.Errorf("row %d class %d: z̄ − max %.7g, Σ w·z − max %.7g", id, c, z[c]-gm, d)
		}
	}
}

// checkKDOnTarget checks that KD at temperature T on the target z (α 1)
// is T²·KL(p̄ ‖ q) of a student's logits s, q = softmax(s/T), evaluated
// here in float64.
func checkKDOnTarget(t *testing.T, kd *KD, id int64, z []float32, pbar []float64, T float64) {
	t.Helper()
	C := len(z)
	s := make([]float32, C)
	for c := range s {
		s[c] = float32(c%3) - 0.5*float32(c)
	}
	grad := Mat{Rows: 1, Cols: C, Data: make([]float32, C)}
	got, err := kd.Loss(grad, Mat{Rows: 1, Cols: C, Data: s}, &Targets{Logits: z}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float64, C)
	var zs float64
	for c, v := range s {
		q[c] = math.Exp(float64(v) / T)
		zs += q[c]
	}
	var kl float64
	for c := range q {
		q[c] /= zs
		if pbar[c] > 0 {
			kl += pbar[c] * math.Log(pbar[c]/q[c])
		}
	}
	if want := T * T * kl; math.Abs(got-want) > 1e-5*max(1, want) {
		t.Errorf("row %d: KD loss on the target %.8g, T²·KL(p̄ ‖ q) %.8g", id, got, want)
	}
}

// TestEnsembleErrors checks that each bad ensemble is refused with an
// error naming the problem.
func TestEnsembleErrors(t *testing.T) {
	tmp := t.TempDir()
	n := int64(40)
	write := func(name string, m ensMember) *formats.Cache {
		if m.rows == nil {
			m.rows = rowRange(0, n)
		}
		if m.rpb == 0 {
			m.rpb = 8
		}
		m.spike = -1
		return writeEnsMember(t, filepath.Join(tmp, name), m)
	}
	a := write("a", ensMember{teacher: "a.onnx", primary: true})
	b := write("b", ensMember{teacher: "b.onnx", rpb: 5})
	T := &EnsembleOptions{Temperature: 2}
	for _, tc := range []struct {
		name   string
		caches []*formats.Cache
		o      *EnsembleOptions
		want   []string
	}{
		{"one cache", []*formats.Cache{a}, T, []string{"two or more teachers, got 1"}},
		{"other dataset", []*formats.Cache{a, write("other-data", ensMember{teacher: "c.onnx", dataSHA: strings.Repeat("e2", 32)})}, T,
			[]string{"different datasets", ensDataSHA, strings.Repeat("e2", 32), "other-data"}},
		{"no dataset sha256", []*formats.Cache{a, write("no-sha", ensMember{teacher: "c.onnx", dataSHA: "-"})}, T, []string{"no-sha", "records no dataset sha256"}},
		{"classes", []*formats.Cache{a, write("classes", ensMember{teacher: "c.onnx", classes: 5})}, T, []string{"classes", "has 5 classes", "6"}},
		{"same teacher", []*formats.Cache{a, write("a-again", ensMember{teacher: "a.onnx", rpb: 3})}, T, []string{"same teacher", "a-again", "one cache"}},
		{"weight count", []*formats.Cache{a, b}, &EnsembleOptions{Temperature: 2, Weights: []float64{1, 2, 3}}, []string{"3 teacher weights for 2 teachers"}},
		{"negative weight", []*formats.Cache{a, b}, &EnsembleOptions{Temperature: 2, Weights: []float64{1, -0.5}}, []string{"teacher weight -0.5", "≥ 0"}},
		{"NaN weight", []*formats.Cache{a, b}, &EnsembleOptions{Temperature: 2, Weights: []float64{math.NaN(), 1}}, []string{"teacher weight NaN"}},
		{"weights 0", []*formats.Cache{a, b}, &EnsembleOptions{Temperature: 2, Weights: []float64{0, 0}}, []string{"sum to 0", "positive weight"}},
		{"mode", []*formats.Cache{a, b}, &EnsembleOptions{Temperature: 2, Mode: "median"}, []string{`"median"`, "probs or logits"}},
		{"temperature", []*formats.Cache{a, b}, &EnsembleOptions{}, []string{"temperature 0"}},
		{"per-token", []*formats.Cache{a, write("tokens", ensMember{teacher: "c.onnx", positions: 2})}, T, []string{"tokens", "per-token"}},
		{"sampled", []*formats.Cache{a, write("sampled", ensMember{teacher: "c.onnx", samples: 3})}, T, []string{"sampled", "--topk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEnsemble(nil, tc.caches, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// A source that is not over the first cache: other units, or the same
	// units of another cache.
	if _, err := NewEnsemble(b, []*formats.Cache{a, write("c", ensMember{teacher: "c.onnx"})}, T); err == nil || !strings.Contains(err.Error(), "40 rows in 8 units") {
		t.Errorf("input source of other units: %v", err)
	}
	if _, err := NewEnsemble(write("f", ensMember{teacher: "f.onnx"}), []*formats.Cache{a, b}, T); err == nil || !strings.Contains(err.Error(), "not over its first cache") {
		t.Errorf("input source of another cache: %v", err)
	}

	// Errors found when reading: a row the primary has and another cache
	// lacks (aligned units and joined ones), and labels that differ.
	for _, tc := range []struct {
		name string
		m    ensMember
		want []string
	}{
		{"missing row joined", ensMember{teacher: "c.onnx", rows: rowRange(0, n-1), rpb: 5}, []string{"row 39 of", "is not in", "missing-row-joined", "c.onnx"}},
		{"missing row aligned", ensMember{teacher: "c.onnx", rows: append(rowRange(0, n-1), 99)}, []string{"row 39 of", "is not in", "missing-row-aligned"}},
		{"labels", ensMember{teacher: "c.onnx", labels: func(r int64) int64 { return (r + int64(r/30)) % ensClasses }}, []string{"row 30 has label 0", "and 1 in", "not over the same dataset rows"}},
		{"twice", ensMember{teacher: "c.onnx", rows: append(rowRange(0, n), 3), rpb: 7}, []string{"row 3 is in", "twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := write(strings.ReplaceAll(tc.name, " ", "-"), tc.m)
			e, err := NewEnsemble(nil, []*formats.Cache{a, c}, T)
			if err != nil {
				t.Fatal(err)
			}
			var b formats.Batch
			for u := range e.NumBatches() {
				if err = e.ReadBatch(u, &b); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestEnsembleTrain trains a student on an ensemble and checks the
// checkpoint's provenance: both teachers, the mode, the weights, and a
// digest that changes with the weights so that resume notices.
func TestEnsembleTrain(t *testing.T) {
	tmp := t.TempDir()
	a := writeEnsMember(t, filepath.Join(tmp, "a"), ensMember{teacher: "a.onnx", rows: rowRange(0, 64), rpb: 16, primary: true, spike: -1})
	b := writeEnsMember(t, filepath.Join(tmp, "b"), ensMember{teacher: "b.onnx", rows: rowRange(0, 64), rpb: 10, topK: 2, spike: -1})
	e, err := NewEnsemble(nil, []*formats.Cache{a, b}, &EnsembleOptions{Weights: []float64{3, 1}, Temperature: 4})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "s.ckpt")
	res, err := Train(context.Background(), Config{Hidden: []int{4}}, e, &Options{Epochs: 1, BatchSize: 16, Temperature: 4, Alpha: 0.9, Threads: 1, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Info.Cache
	if p.Ensemble == nil || len(p.Ensemble.Teachers) != 2 || p.Ensemble.Mode != EnsembleProbs {
		t.Fatalf("provenance %+v: want an ensemble of 2 teachers", p)
	}
	for i, c := range []*formats.Cache{a, b} {
		got := p.Ensemble.Teachers[i]
		if got.TeacherSHA256 != c.Manifest().Teacher.SHA256 || got.Digest != c.Digest() || got.Path != c.Dir() || got.TopK != c.Config().TopK {
			t.Errorf("teacher %d: %+v, want the cache %s", i, got, c.Dir())
		}
	}
	if w := []float64{p.Ensemble.Teachers[0].Weight, p.Ensemble.Teachers[1].Weight}; !slices.Equal(w, []float64{0.75, 0.25}) {
		t.Errorf("weights %v, want 0.75, 0.25", w)
	}
	if want := a.Manifest().Teacher.SHA256 + "," + b.Manifest().Teacher.SHA256; p.TeacherSHA256 != want || p.Digest != e.Digest() {
		t.Errorf("teacher sha256 %q, digest %s; want %q, %s", p.TeacherSHA256, p.Digest, want, e.Digest())
	}
	ck, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Info.Cache.Ensemble == nil || len(ck.Info.Cache.Ensemble.Teachers) != 2 {
		t.Errorf("loaded checkpoint provenance %+v", ck.Info.Cache)
	}
	e2, err := NewEnsemble(nil, []*formats.Cache{a, b}, &EnsembleOptions{Weights: []float64{1, 1}, Temperature: 4})
	if err != nil {
		t.Fatal(err)
	}
	e3, err := NewEnsemble(nil, []*formats.Cache{a, b}, &EnsembleOptions{Weights: []float64{1, 1}, Mode: EnsembleLogits, Temperature: 4})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Digest() == e.Digest() || e3.Digest() == e2.Digest() {
		t.Error("the digest does not change with the weights or the mode")
	}
	_, err = Train(context.Background(), Config{Hidden: []int{4}}, e2, &Options{Epochs: 1, BatchSize: 16, Temperature: 4, Alpha: 0.9, Threads: 1, Out: out, Resume: true})
	if err == nil || !strings.Contains(err.Error(), "training cache digest") {
		t.Errorf("resume on other weights: %v", err)
	}
}

// TestEnsembleCalibration: teacher B's scores are teacher A's times 50 (a
// teacher whose logits are in the thousands), over labels that agree with
// A's top class 80% of the time. Calibration must find, for each, the
// temperature minimizing its NLL of the labels (checked against a fine grid
// of the NLL written out here in float64), so s_B = 50·s_A; the calibrated
// members are then the same distribution, and the probs target must be
// softmax(ℓ_A/(s_A·T)) exactly as a float64 evaluation gives it. Without
// calibration B's near one-hot probabilities pull the target away.
func TestEnsembleCalibration(t *testing.T) {
	tmp := t.TempDir()
	const C, n = ensClasses, 400
	scoreA := func(r int64) []float32 { return ensScores("A", r, C, -1) }
	label := func(r int64) int64 {
		z := scoreA(r)
		if r%5 == 0 {
			return (int64(slices.Index(z, slices.Max(z))) + 1) % C
		}
		return int64(slices.Index(z, slices.Max(z)))
	}
	scoreB := func(r int64) []float32 {
		z := scoreA(r)
		for c := range z {
			z[c] *= 50
		}
		return z
	}
	rows := rowRange(0, n)
	a := writeEnsMember(t, filepath.Join(tmp, "a"), ensMember{teacher: "A", rows: rows, rpb: 64, labels: label, scores: scoreA, spike: -1})
	b := writeEnsMember(t, filepath.Join(tmp, "b"), ensMember{teacher: "B", rows: rows, rpb: 100, labels: label, scores: scoreB, spike: -1})
	const T = 4.0
	e, err := NewEnsemble(nil, []*formats.Cache{a, b}, &EnsembleOptions{Temperature: T, Calibrate: true})
	if err != nil {
		t.Fatal(err)
	}
	// The NLL of scores z scaled by β, written out: −log softmax(β·z)_y.
	nll := func(score func(int64) []float32, beta float64) float64 {
		var sum float64
		for _, r := range rows {
			z := score(r)
			mx := math.Inf(-1)
			for _, v := range z {
				mx = math.Max(mx, beta*float64(v))
			}
			var s float64
			for _, v := range z {
				s += math.Exp(beta*float64(v) - mx)
			}
			sum += mx + math.Log(s) - beta*float64(z[label(r)])
		}
		return sum / n
	}
	scales := e.Scales()
	for i, score := range []func(int64) []float32{scoreA, scoreB} {
		best, bestNLL := 0.0, math.Inf(1)
		for lb := -6.0; lb <= 2; lb += 1e-3 {
			if v := nll(score, math.Exp(lb)); v < bestNLL {
				best, bestNLL = math.Exp(-lb), v
			}
		}
		if got := nll(score, 1/scales[i]); math.Abs(scales[i]/best-1) > 2e-3 || got > bestNLL+1e-9 {
			t.Errorf("teacher %d: scale %v (NLL %v), the grid's best %v (NLL %v)", i, scales[i], got, best, bestNLL)
		}
	}
	if r := scales[1] / scales[0]; math.Abs(r/50-1) > 1e-4 {
		t.Errorf("scales %v: B's should be 50 times A's, got %v times", scales, r)
	}
	if p := e.Provenance(); !p.Calibrated || p.Teachers[1].Scale != scales[1] {
		t.Errorf("provenance %+v", p)
	}
	plain, err := NewEnsemble(nil, []*formats.Cache{a, b}, &EnsembleOptions{Temperature: T})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Digest() == e.Digest() {
		t.Error("calibration does not change the digest")
	}
	var got, raw formats.Batch
	maxDiff, maxRaw := 0.0, 0.0
	for u := range e.NumBatches() {
		if err := e.ReadBatch(u, &got); err != nil {
			t.Fatal(err)
		}
		if err := plain.ReadBatch(u, &raw); err != nil {
			t.Fatal(err)
		}
		for r, id := range got.Rows {
			z := scoreA(id)
			want := make([]float64, C)
			for c, v := range z {
				want[c] = float64(v) / (scales[0] * T)
			}
			l := logSumExp(want)
			// softmax(z̄/T) against softmax(z_A/(s_A·T)), as probabilities.
			zb := f64(got.Logits[r*C : (r+1)*C])
			zr := f64(raw.Logits[r*C : (r+1)*C])
			for c := range zb {
				zb[c] /= T
				zr[c] /= T
			}
			lb, lr := logSumExp(zb), logSumExp(zr)
			for c := range want {
				p := math.Exp(want[c] - l)
				maxDiff = math.Max(maxDiff, math.Abs(math.Exp(zb[c]-lb)-p))
				maxRaw = math.Max(maxRaw, math.Abs(math.Exp(zr[c]-lr)-p))
			}
		}
	}
	if maxDiff > 1e-6 {
		t.Errorf("calibrated target differs from softmax(ℓ_A/(s_A·T)) by up to %.3g", maxDiff)
	}
	if maxRaw < 0.05 {
		t.Errorf("the uncalibrated target is within %.3g of the calibrated one: the test cannot tell calibration from none", maxRaw)
	}
	t.Logf("scales %v; calibrated target within %.2g, uncalibrated off by up to %.2g", scales, maxDiff, maxRaw)
}

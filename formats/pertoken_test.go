package formats

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestPerTokenDerivedTopK writes a per-token top-k cache from dense logits
// (the writer derives the top-k of every position) and checks every
// position against TopK of its own scores, with the next-token labels and
// the manifest's Positions, in both formats.
func TestPerTokenDerivedTopK(t *testing.T) {
	const T, C, k, n = 6, 11, 3, 9
	cfg := Config{Classes: C, TopK: k, Positions: T, HasLabel: true, Inputs: []TensorSpec{{Name: "input_ids", Shape: []int64{T}}}}
	dense := makeBatch(Config{Classes: C, Positions: T, HasLabel: true, Inputs: cfg.Inputs}, 100, n, 7)
	for _, format := range []Format{FormatParquet, FormatArrow} {
		c := openParts(t, Manifest{Teacher: Teacher{File: "lm.onnx"}}, cfg, &WriterOptions{Format: format, RowsPerBatch: 4}, dense)
		got := readAll(t, c)
		if m := c.Manifest(); m.Settings.Positions != T || c.Config().Positions != T {
			t.Errorf("%s: positions %d / %d, want %d", format, m.Settings.Positions, c.Config().Positions, T)
		}
		if got.Len() != n || !slices.Equal(got.Labels, dense.Labels) || len(got.Labels) != n*T || !slices.Equal(got.Inputs["input_ids"], dense.Inputs["input_ids"]) {
			t.Fatalf("%s: %d rows, %d labels", format, got.Len(), len(got.Labels))
		}
		idx, val := make([]int32, k), make([]float32, k)
		for p := range n * T {
			lse := TopK(idx, val, dense.Logits[p*C:(p+1)*C])
			if !slices.Equal(got.TopKIndex[p*k:(p+1)*k], idx) || !slices.Equal(got.TopKLogit[p*k:(p+1)*k], val) ||
				math.Float32bits(got.LogSumExp[p]) != math.Float32bits(lse) {
				t.Fatalf("%s: position %d (row %d, t %d): %v %v %v, want %v %v %v", format, p, p/T, p%T,
					got.TopKIndex[p*k:(p+1)*k], got.TopKLogit[p*k:(p+1)*k], got.LogSumExp[p], idx, val, lse)
			}
		}
	}
	// A batch with a label per row instead of per position is refused.
	bad := makeBatch(cfg, 0, 2, 1)
	bad.Labels = bad.Labels[:2]
	cw, err := CreateCache(t.TempDir(), Manifest{}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.WritePart(bad); err == nil {
		t.Error("2 labels for 2 rows of 6 positions accepted")
	}
	cw.Close()
	if _, err := Schema(Config{Classes: 1 << 20, Positions: 1 << 9}); err == nil {
		t.Error("a row of 2^29 scores accepted")
	}
}

// TestTopKLogProbs stores float16 top-k scores of language-model-sized
// logits (up to ~24) raw and as log-probabilities and compares the cached
// top-k mass Σ exp(t_j − lse) with the true one: log-probabilities keep it
// within 1e-3 (raw float16 logits do not), the reader gives logits back in
// both cases, and the schema records the choice.
func TestTopKLogProbs(t *testing.T) {
	const T, C, k, n = 16, 512, 32, 8
	rng := rand.New(rand.NewPCG(3, 3))
	logits := make([]float32, n*T*C)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64()*3 + 4)
	}
	for q := range n * T { // a peaked distribution, as a language model's
		logits[q*C+rng.IntN(C)] += 18
	}
	b := &Batch{Logits: logits}
	for i := range n {
		b.Rows = append(b.Rows, int64(i))
	}
	worst := map[bool]float64{}
	for _, lp := range []bool{false, true} {
		cfg := Config{Classes: C, TopK: k, Positions: T, ScoreDtype: Float16, TopKLogProbs: lp}
		s, err := Schema(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ConfigFromSchema(s)
		if err != nil || back.TopKLogProbs != lp {
			t.Fatalf("schema round trip: %+v, %v", back, err)
		}
		got := readAll(t, openParts(t, Manifest{}, cfg, nil, b))
		idx, val := make([]int32, k), make([]float32, k)
		for q := range n * T {
			s := logits[q*C : (q+1)*C]
			lse := TopK(idx, val, s)
			var cached, truth float64
			for j := range k {
				cached += math.Exp(float64(got.TopKLogit[q*k+j]) - float64(got.LogSumExp[q]))
				truth += math.Exp(float64(val[j]) - float64(lse))
				if d := math.Abs(float64(got.TopKLogit[q*k+j] - val[j])); d > 0.02 {
					t.Fatalf("lp %v position %d: logit %v read back as %v", lp, q, val[j], got.TopKLogit[q*k+j])
				}
			}
			worst[lp] = max(worst[lp], math.Abs(cached-truth))
		}
	}
	if worst[true] > 1e-3 || worst[true] > worst[false]/4 {
		t.Errorf("worst top-%d mass error: raw float16 %.2e, log-probabilities %.2e", k, worst[false], worst[true])
	}
	t.Logf("worst top-%d mass error: raw float16 logits %.2e, float16 log-probabilities %.2e", k, worst[false], worst[true])
	if _, err := Schema(Config{Classes: 4, TopKLogProbs: true}); err == nil {
		t.Error("log-probabilities without top-k accepted")
	}
}

// TestSampledTargets writes a sampled per-token cache from dense logits
// and checks: S draws per position over distinct ids sorted by score with
// count-0 padding; the same rows give the same draws whatever the part
// and batch boundaries (the draws are a function of row and position);
// and the draw frequencies estimate the proposal softmax(t/τ) without
// bias.
func TestSampledTargets(t *testing.T) {
	const T, C, S, n = 4, 9, 8, 300
	base := []float32{2, 1.5, 1, 0.5, 0, -0.5, -1, 3, 0.25}
	b := &Batch{}
	for i := range n {
		b.Rows = append(b.Rows, int64(i))
		for range T {
			b.Logits = append(b.Logits, base...)
		}
	}
	cfg := Config{Classes: C, Positions: T, Samples: S, SampleTemperature: 2, SampleSeed: 42}
	write := func(parts ...int) *Batch {
		var split []*Batch
		lo := 0
		for _, m := range parts {
			split = append(split, &Batch{Rows: b.Rows[lo : lo+m], Logits: b.Logits[lo*T*C : (lo+m)*T*C]})
			lo += m
		}
		c := openParts(t, Manifest{}, cfg, &WriterOptions{RowsPerBatch: 7}, split...)
		if got := c.Config(); got.Samples != S || got.TopK != S || got.SampleTemperature != 2 || got.SampleSeed != 42 {
			t.Fatalf("config %+v", got)
		}
		return readAll(t, c)
	}
	one, split := write(n), write(100, 13, 187)
	if !slices.Equal(one.TopKIndex, split.TopKIndex) || !slices.Equal(one.SampleCount, split.SampleCount) {
		t.Fatal("the draws depend on part boundaries")
	}
	// Proposal q = softmax(base/2).
	q := make([]float64, C)
	var z float64
	for c, v := range base {
		q[c] = math.Exp(float64(v) / 2)
		z += q[c]
	}
	freq := make([]float64, C)
	distinct := 0
	for p := range n * T {
		ids, cnt := one.TopKIndex[p*S:(p+1)*S], one.SampleCount[p*S:(p+1)*S]
		var sum int32
		seen := map[int32]bool{}
		for j := range S {
			sum += cnt[j]
			if cnt[j] > 0 {
				if seen[ids[j]] || (j > 0 && cnt[j-1] == 0) {
					t.Fatalf("position %d: ids %v counts %v", p, ids, cnt)
				}
				seen[ids[j]] = true
				freq[ids[j]] += float64(cnt[j])
				if one.TopKLogit[p*S+j] != base[ids[j]] {
					t.Fatalf("position %d: logit of %d is %v", p, ids[j], one.TopKLogit[p*S+j])
				}
			} else if ids[j] != ids[j-1] {
				t.Fatalf("position %d: padding %v", p, ids)
			}
		}
		if sum != S {
			t.Fatalf("position %d: %d draws", p, sum)
		}
		distinct += len(seen)
	}
	total := float64(n * T * S)
	for c := range C {
		// 9,600 draws: the standard error of a frequency is < 0.005.
		if d := math.Abs(freq[c]/total - q[c]/z); d > 0.02 {
			t.Errorf("class %d drawn %.4f of the time, proposal %.4f", c, freq[c]/total, q[c]/z)
		}
	}
	t.Logf("%.1f distinct ids per position from %d draws", float64(distinct)/float64(n*T), S)
	if _, err := Schema(Config{Classes: 4, Samples: 8, TopK: 3}); err == nil {
		t.Error("samples with another top-k accepted")
	}
}

// TestDenseScores orders the scores of rows written out of order by row
// id, per-token rows included, and refuses top-k caches and row ids that
// are not one whole dataset.
func TestDenseScores(t *testing.T) {
	cfg := Config{Classes: 3, Positions: 2}
	b := &Batch{Rows: []int64{2, 0, 1}, Logits: []float32{20, 21, 22, 23, 24, 25, 0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}}
	c := openParts(t, Manifest{}, cfg, nil, b)
	got, err := c.DenseScores()
	want := []float32{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("DenseScores = %v, %v", got, err)
	}
	c2 := openParts(t, Manifest{}, Config{Classes: 3}, nil, &Batch{Rows: []int64{5}, Logits: []float32{1, 2, 3}})
	if _, err := c2.DenseScores(); err == nil {
		t.Error("row id 5 of 1 accepted")
	}
}

// TestSampledStorage checks the ragged layout of a sampled cache: the part
// file holds only the drawn ids (the list columns have exactly the slots
// with a count, ids ascending within a position, sample_distinct of them
// per position), the reader gives back Batch slots by descending score
// with count-0 padding, writing that Batch again gives the same bytes, and
// the writer refuses an id drawn in two slots.
func TestSampledStorage(t *testing.T) {
	cfg := must(testConfigs["seq-sampled"].normalize())
	P, k := cfg.Positions, cfg.TopK
	in := makeBatch(cfg, 0, 40, 3)
	for _, f := range []Format{FormatParquet, FormatArrow} {
		o := &WriterOptions{Format: f, RowsPerBatch: 16}
		part := writePart(t, cfg, o, &Batch{Rows: in.Rows, TopKIndex: in.TopKIndex, TopKLogit: in.TopKLogit, LogSumExp: in.LogSumExp, SampleCount: in.SampleCount})
		got, _ := readPart(t, part, nil)
		equalBatch(t, in, got)
		if again := writePart(t, cfg, o, got); !bytes.Equal(again, part) {
			t.Errorf("%s: a read sampled batch written again gives other bytes", f)
		}
		// The stored lists, read with arrow-go alone.
		tbl := rawTable(t, f, part)
		ids := tbl.Column(tbl.Schema().FieldIndices(ColTopKIndex)[0]).Data().Chunks()
		dist := tbl.Column(tbl.Schema().FieldIndices(ColSampleDistinct)[0]).Data().Chunks()
		var stored []uint8
		var distinct []uint8
		for i := range ids {
			stored = append(stored, ids[i].(*array.List).ListValues().(*array.Uint8).Uint8Values()...)
			distinct = append(distinct, dist[i].(*array.FixedSizeList).ListValues().(*array.Uint8).Uint8Values()...)
		}
		var drawn []uint8
		for q := range in.Len() * P {
			var pos []uint8
			for j := range k {
				if in.SampleCount[q*k+j] > 0 {
					pos = append(pos, uint8(in.TopKIndex[q*k+j]))
				}
			}
			slices.Sort(pos)
			if int(distinct[q]) != len(pos) {
				t.Fatalf("%s: position %d: sample_distinct %d, %d ids drawn", f, q, distinct[q], len(pos))
			}
			drawn = append(drawn, pos...)
		}
		if !slices.Equal(stored, drawn) {
			t.Errorf("%s: topk_index holds %d values, want the %d drawn ids ascending per position", f, len(stored), len(drawn))
		}
		if len(drawn) >= in.Len()*P*k {
			t.Fatalf("no padding in the test batch: %d drawn of %d slots", len(drawn), in.Len()*P*k)
		}
	}
	// An id drawn in two slots of a position.
	bad := in.Clone()
	q := 0
	for bad.SampleCount[q*k+1] == 0 {
		q++
	}
	bad.TopKIndex[q*k+1], bad.TopKLogit[q*k+1] = bad.TopKIndex[q*k], bad.TopKLogit[q*k]
	w, err := NewWriter(io.Discard, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(bad); err == nil || !strings.Contains(err.Error(), "drawn in two slots") {
		t.Errorf("duplicate drawn id: %v", err)
	}
}

// TestSampledPartsChecks feeds the reader's ragged-column check entries
// that no writer makes: each is refused, naming what is wrong.
func TestSampledPartsChecks(t *testing.T) {
	cfg := must(Config{Classes: 8, Samples: 4, Positions: 2}.normalize())
	good := func() *sampledParts {
		return &sampledParts{idx: []int32{1, 5, 2}, cnt: []int32{3, 1, 4}, val: []float32{0, 1, 2}, distinct: []int32{2, 1}, rowLen: []int32{3}}
	}
	var b Batch
	if err := good().expand(cfg, 1, &b); err != nil {
		t.Fatal(err)
	}
	// Position 0: ids 1 (count 3, score 0) and 5 (count 1, score 1), by descending score; padding repeats id 1.
	if want := []int32{5, 1, 1, 1, 2, 2, 2, 2}; !slices.Equal(b.TopKIndex, want) {
		t.Errorf("ids %v, want %v", b.TopKIndex, want)
	}
	if want := []int32{1, 3, 0, 0, 4, 0, 0, 0}; !slices.Equal(b.SampleCount, want) {
		t.Errorf("counts %v, want %v", b.SampleCount, want)
	}
	for _, tc := range []struct {
		name string
		edit func(p *sampledParts)
		want string
	}{
		{"no ids at a position", func(p *sampledParts) { p.idx, p.cnt, p.distinct = []int32{1, 2, 5}, []int32{1, 1, 2}, []int32{3, 0} }, "0 distinct ids"},
		{"more than k", func(p *sampledParts) { p.distinct = []int32{5, 1} }, "distinct ids"},
		{"ids not ascending", func(p *sampledParts) { p.idx[1] = 1 }, "ascending"},
		{"id out of range", func(p *sampledParts) { p.idx[2] = 8 }, "ascending in [0, 8)"},
		{"counts not S", func(p *sampledParts) { p.cnt[1] = 2 }, "sum to 5"},
		{"zero count", func(p *sampledParts) { p.cnt[0], p.cnt[1] = 0, 4 }, "count 0"},
		{"row length", func(p *sampledParts) { p.rowLen = []int32{2} }, "does not account"},
		{"distinct per position", func(p *sampledParts) { p.distinct = []int32{2} }, "values for 1 rows"},
		{"lengths differ", func(p *sampledParts) { p.val = p.val[:2] }, "3 ids, 3 counts and 2 scores"},
	} {
		p := good()
		tc.edit(p)
		if err := p.expand(cfg, 1, &b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// rawTable reads a whole in-memory part with arrow-go's own readers.
func rawTable(t *testing.T, f Format, part []byte) arrow.Table {
	t.Helper()
	if f == FormatParquet {
		tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(part), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tbl.Release)
		return tbl
	}
	r, err := ipc.NewFileReader(bytes.NewReader(part))
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	tbl := array.NewTableFromRecords(r.Schema(), recs)
	t.Cleanup(tbl.Release)
	return tbl
}

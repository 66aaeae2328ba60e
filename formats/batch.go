package formats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Batch is a set of cache rows in column-major Go slices, the unit both
// Writer and the readers exchange. All per-row tensors are row-major:
// Logits holds Len()*C values with row i at Logits[i*C:(i+1)*C]. In a
// per-token cache (Config.Positions T > 0) each row has T positions, so
// Labels, LogSumExp and every score vector count T times per row:
// Logits holds Len()*T*C values, position t of row i at
// Logits[(i*T+t)*C:(i*T+t+1)*C].
//
// Readers fill a Batch, reusing its slices' capacity; writers read one.
// Fields for columns the cache does not have are left empty (nil or length 0).
type Batch struct {
	Rows      []int64   // sample index in the source dataset, one per row
	Labels    []int64   // dataset labels, when Config.HasLabel
	Logits    []float32 // Len()*C raw scores, when Config.TopK == 0
	TopKIndex []int32   // Len()*k class ids, when Config.TopK > 0
	TopKLogit []float32 // Len()*k scores matching TopKIndex, descending per row
	LogSumExp []float32 // Len() values of log Σ_c exp(score_c), when Config.TopK > 0
	// SampleCount holds the draws of each TopKIndex id, when
	// Config.Samples > 0 (0 for the padding after the distinct ids).
	SampleCount []int32
	Hidden      map[string][]float32 // TensorSpec.Name → Len()*Size() values
	Inputs      map[string][]float32 // TensorSpec.Name → Len()*Size() values
}

// Len returns the number of rows, len(b.Rows).
func (b *Batch) Len() int { return len(b.Rows) }

// Reset truncates every slice to length 0, keeping capacity.
func (b *Batch) Reset() {
	b.Rows = b.Rows[:0]
	b.Labels = b.Labels[:0]
	b.Logits = b.Logits[:0]
	b.TopKIndex = b.TopKIndex[:0]
	b.TopKLogit = b.TopKLogit[:0]
	b.LogSumExp = b.LogSumExp[:0]
	b.SampleCount = b.SampleCount[:0]
	for k, v := range b.Hidden {
		b.Hidden[k] = v[:0]
	}
	for k, v := range b.Inputs {
		b.Inputs[k] = v[:0]
	}
}

// check validates b against a normalized config for writing and reports
// whether top-k columns must be derived from full logits.
func (b *Batch) check(cfg Config) (deriveTopK bool, err error) {
	n := b.Len()
	want := func(name string, got, per int) error {
		if got != n*per {
			return fmt.Errorf("formats: batch column %s has %d values, want %d rows × %d", name, got, n, per)
		}
		return nil
	}
	// P score vectors (positions) per row: 1 for a per-sample cache.
	P := cfg.positions()
	if cfg.HasLabel {
		if err := want(ColLabel, len(b.Labels), P); err != nil {
			return false, err
		}
	}
	if cfg.TopK == 0 {
		if err := want(ColLogits, len(b.Logits), P*cfg.Classes); err != nil {
			return false, err
		}
	} else if len(b.TopKIndex) == 0 && len(b.TopKLogit) == 0 && len(b.LogSumExp) == 0 && len(b.SampleCount) == 0 && n > 0 {
		if err := want(ColLogits, len(b.Logits), P*cfg.Classes); err != nil {
			return false, fmt.Errorf("%w (top-k columns are derived from full logits when absent)", err)
		}
		deriveTopK = true
	} else {
		k := cfg.TopK
		if err := want(ColTopKIndex, len(b.TopKIndex), P*k); err != nil {
			return false, err
		}
		if err := want(ColTopKLogit, len(b.TopKLogit), P*k); err != nil {
			return false, err
		}
		if err := want(ColLogSumExp, len(b.LogSumExp), P); err != nil {
			return false, err
		}
		for i, c := range b.TopKIndex {
			if c < 0 || int(c) >= cfg.Classes {
				return false, fmt.Errorf("formats: batch row %d: topk_index %d out of range [0, %d)", i/(P*k), c, cfg.Classes)
			}
		}
		for r := 0; r < n*P; r++ {
			row := b.TopKLogit[r*k : (r+1)*k]
			for j := 1; j < k; j++ {
				if row[j] > row[j-1] {
					return false, fmt.Errorf("formats: batch row %d: topk_logit not sorted descending", r/P)
				}
			}
		}
		if cfg.Samples > 0 {
			if err := want(ColSampleCount, len(b.SampleCount), P*k); err != nil {
				return false, err
			}
			var drawn []int32
			for r := 0; r < n*P; r++ {
				var sum int32
				drawn = drawn[:0]
				for j, c := range b.SampleCount[r*k : (r+1)*k] {
					if c < 0 {
						return false, fmt.Errorf("formats: batch row %d: negative sample count", r/P)
					}
					if c > 0 {
						drawn = append(drawn, b.TopKIndex[r*k+j])
					}
					sum += c
				}
				if int(sum) != cfg.Samples {
					return false, fmt.Errorf("formats: batch row %d: sample counts sum to %d, want %d draws", r/P, sum, cfg.Samples)
				}
				slices.Sort(drawn)
				for j := 1; j < len(drawn); j++ {
					if drawn[j] == drawn[j-1] {
						return false, fmt.Errorf("formats: batch row %d: id %d drawn in two slots; each distinct id takes one slot with its count", r/P, drawn[j])
					}
				}
			}
		}
	}
	for _, h := range cfg.Hidden {
		if err := want(HiddenPrefix+h.Name, len(b.Hidden[h.Name]), h.Size()); err != nil {
			return false, err
		}
	}
	for _, in := range cfg.Inputs {
		if err := want(InputPrefix+in.Name, len(b.Inputs[in.Name]), in.Size()); err != nil {
			return false, err
		}
	}
	return deriveTopK, nil
}

// LogSumExp returns log Σ exp(x_i), computed stably in float64 as
// m + log Σ exp(x_i − m), m = max_i x_i: −Inf for an empty x or all −Inf,
// +Inf with a +Inf value, NaN with a NaN.
func LogSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	if math.IsInf(mx, 0) {
		return mx
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// Sample draws `draws` class ids from the proposal softmax(logits/tau)
// with rng (Anshumann et al. 2025, "Sparse Logit Sampling": unlike top-k,
// the draws are an unbiased estimate of the teacher's distribution) and
// writes the distinct ids to idx in descending order of their logits
// (ties: the lower id), their logits to val and their draw counts to cnt;
// the slots after the distinct ids repeat the last one with count 0. It
// returns log Σ_c exp(logits_c) like TopK. The three slices have the same
// length k, at most len(logits) and at least min(draws, len(logits)), so
// every distinct id has a slot; it panics otherwise. With non-finite logits every draw goes to
// the first largest finite score (or class 0).
//
// Each draw inverts the CDF of q_c = exp((l_c − m)/τ) / Z, m = max l:
// u ~ U[0, Z), the first c with Σ_{c' ≤ c} q_c' > u.
func Sample(idx []int32, val []float32, cnt []int32, logits []float32, draws int, tau float64, rng *rand.Rand) (logSumExp float32) {
	k := len(idx)
	if len(val) != k || len(cnt) != k || k > len(logits) || k < min(draws, len(logits)) || k == 0 || draws < 1 {
		panic("formats: Sample: bad slice lengths")
	}
	m, best := math.Inf(-1), 0
	for c, x := range logits {
		if f := float64(x); f > m {
			m, best = f, c
		}
	}
	cdf := make([]float64, len(logits))
	var z float64
	for c, x := range logits {
		z += math.Exp((float64(x) - m) / tau)
		cdf[c] = z
	}
	counts := map[int32]int32{}
	if math.IsNaN(z) || math.IsInf(z, 0) || !(z > 0) {
		counts[int32(best)] = int32(draws)
	} else {
		for range draws {
			u := rng.Float64() * z
			c, _ := slices.BinarySearchFunc(cdf, u, func(e, t float64) int {
				if e > t {
					return 1
				}
				return -1
			})
			counts[int32(min(c, len(logits)-1))]++
		}
	}
	ids := make([]int32, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int32) int {
		switch x, y := logits[a], logits[b]; {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return int(a - b)
	})
	for j := range k {
		id := ids[min(j, len(ids)-1)]
		idx[j], val[j], cnt[j] = id, logits[id], 0
		if j < len(ids) {
			cnt[j] = counts[id]
		}
	}
	return logSumExp32(logits)
}

// Clone returns a deep copy of b, for callers of the streaming iterators
// that need to keep a batch past the next iteration.
func (b *Batch) Clone() *Batch {
	c := &Batch{
		Rows: slices.Clone(b.Rows), Labels: slices.Clone(b.Labels), Logits: slices.Clone(b.Logits),
		TopKIndex: slices.Clone(b.TopKIndex), TopKLogit: slices.Clone(b.TopKLogit), LogSumExp: slices.Clone(b.LogSumExp),
		SampleCount: slices.Clone(b.SampleCount),
	}
	if b.Hidden != nil {
		c.Hidden = make(map[string][]float32, len(b.Hidden))
		for k, v := range b.Hidden {
			c.Hidden[k] = slices.Clone(v)
		}
	}
	if b.Inputs != nil {
		c.Inputs = make(map[string][]float32, len(b.Inputs))
		for k, v := range b.Inputs {
			c.Inputs[k] = slices.Clone(v)
		}
	}
	return c
}

package lm

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling says how the next token is drawn from a row of logits z,
// following Hugging Face's generate (temperature, then top-k, then top-p):
//
//   - Temperature 0: greedy, the argmax (the lowest id among equal
//     maxima); TopK and TopP are then ignored.
//   - Temperature τ > 0: p_i ∝ exp(z_i/τ).
//   - TopK k > 0: only the k largest logits keep their mass (ties at the
//     k-th broken by the lower id), as TopKLogitsWarper.
//   - TopP 0 < p < 1 (nucleus sampling, Holtzman et al. 2020, "The
//     Curious Case of Neural Text Degeneration"): of those, only the
//     smallest set of the most probable tokens whose probabilities sum to
//     at least p (at least one token), as TopPLogitsWarper.
//
// The kept tokens' probabilities are renormalized and one is drawn by
// inverse transform from a uniform u ∈ [0, 1) of the sample's generator.
// The arithmetic is float64 from the float32 logits.
type Sampling struct {
	Temperature float64 `json:"temperature"`
	TopK        int     `json:"top_k,omitempty"`
	TopP        float64 `json:"top_p,omitempty"`
}

// Check returns an error naming a bad setting.
func (s Sampling) Check() error {
	switch {
	case !(s.Temperature >= 0) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("lm: temperature %v: want 0 (greedy) or a finite positive value", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("lm: top-k %d: want 0 (all tokens) or a positive count", s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1):
		return fmt.Errorf("lm: top-p %v: want a probability in (0, 1], or 0 for all tokens", s.TopP)
	}
	return nil
}

// Greedy reports whether s takes the argmax.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// Sampler draws tokens as its Sampling says, reusing its scratch space
// (one per goroutine).
type Sampler struct {
	Sampling
	idx []int
	p   []float64
}

// Distribution returns the ids that can be drawn from logits and their
// probabilities (summing to 1): when top-k or top-p cuts, most probable
// first (lower id first among equals), else every id in order, without a
// sort. Greedy gives the argmax with probability 1. The slices are reused
// by the next call.
func (s *Sampler) Distribution(logits []float32) (ids []int, probs []float64) {
	V := len(logits)
	if s.Greedy() {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		s.idx, s.p = append(s.idx[:0], best), append(s.p[:0], 1)
		return s.idx, s.p
	}
	s.idx = s.idx[:0]
	for i := range V {
		s.idx = append(s.idx, i)
	}
	k := V
	if s.TopK > 0 && s.TopK < V || s.TopP > 0 && s.TopP < 1 {
		// Most probable first: logits descending, ids ascending among equals.
		slices.SortFunc(s.idx, func(a, b int) int {
			if c := cmp.Compare(logits[b], logits[a]); c != 0 {
				return c
			}
			return a - b
		})
		if s.TopK > 0 {
			k = min(k, s.TopK)
		}
	}
	s.idx = s.idx[:k]
	m := math.Inf(-1)
	for _, i := range s.idx {
		m = max(m, float64(logits[i]))
	}
	s.p = s.p[:0]
	var sum float64
	for _, i := range s.idx {
		e := math.Exp((float64(logits[i]) - m) / s.Temperature)
		s.p = append(s.p, e)
		sum += e
	}
	for j := range s.p {
		s.p[j] /= sum
	}
	if s.TopP > 0 && s.TopP < 1 {
		var c float64
		n := len(s.p)
		for j, p := range s.p {
			c += p
			if c >= s.TopP {
				n = j + 1
				break
			}
		}
		s.idx, s.p = s.idx[:n], s.p[:n]
		sum = 0
		for _, p := range s.p {
			sum += p
		}
		for j := range s.p {
			s.p[j] /= sum
		}
	}
	return s.idx, s.p
}

// Sample draws the next token from logits with rng (not used when greedy).
func (s *Sampler) Sample(logits []float32, rng *rand.Rand) int {
	ids, probs := s.Distribution(logits)
	if len(ids) == 1 {
		return ids[0]
	}
	u := rng.Float64()
	var c float64
	for j, p := range probs {
		c += p
		if u < c {
			return ids[j]
		}
	}
	return ids[len(ids)-1] // u within rounding of 1
}

// SampleRNG returns the generator of the sample drawn with seed: PCG
// seeded with (seed, a fixed stream constant), so a sample's draws depend
// on its seed alone.
func SampleRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

package lm

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// refDistribution is the sampling rule computed the long way in float64:
// softmax(z/τ) over every id, zero outside the k largest logits (ties by
// lower id) and renormalized, then sorted by probability and cut after the
// first prefix reaching p, renormalized. It returns a probability per id.
func refDistribution(z []float32, s Sampling) []float64 {
	V := len(z)
	p := make([]float64, V)
	if s.Temperature == 0 {
		best := 0
		for i := range z {
			if z[i] > z[best] {
				best = i
			}
		}
		p[best] = 1
		return p
	}
	var sum float64
	for i, v := range z {
		p[i] = math.Exp(float64(v) / s.Temperature)
		sum += p[i]
	}
	order := make([]int, V)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return z[order[a]] > z[order[b]] })
	if s.TopK > 0 && s.TopK < V {
		for _, i := range order[s.TopK:] {
			sum -= p[i]
			p[i] = 0
		}
	}
	for i := range p {
		p[i] /= sum
	}
	if s.TopP > 0 && s.TopP < 1 {
		var c float64
		cut := false
		sum = 0
		for _, i := range order {
			if cut {
				p[i] = 0
				continue
			}
			c += p[i]
			sum += p[i]
			cut = c >= s.TopP
		}
		for i := range p {
			p[i] /= sum
		}
	}
	return p
}

// testLogits returns 40 logits with a tie at the top (ids 7 and 20) and
// one in the middle (ids 3 and 30).
func testLogits() []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, 40)
	for i := range z {
		z[i] = float32(2 * rng.NormFloat64())
	}
	z[7], z[20] = 5, 5
	z[30] = z[3]
	return z
}

// TestSamplingDistribution compares the set Distribution keeps and its
// probabilities with refDistribution for greedy, temperatures, top-k
// (cuts through the tie at the top, k = 1 and k ≥ V) and top-p (tiny,
// middling, combined with top-k, and 1).
func TestSamplingDistribution(t *testing.T) {
	z := testLogits()
	var sm Sampler
	for _, s := range []Sampling{
		{Temperature: 0}, {Temperature: 0, TopK: 3, TopP: 0.5},
		{Temperature: 1}, {Temperature: 0.5}, {Temperature: 2.5},
		{Temperature: 1, TopK: 1}, {Temperature: 0.7, TopK: 2}, {Temperature: 1, TopK: 5}, {Temperature: 1, TopK: 40}, {Temperature: 1, TopK: 100},
		{Temperature: 1, TopP: 0.01}, {Temperature: 1, TopP: 0.6}, {Temperature: 0.8, TopP: 0.9}, {Temperature: 1, TopP: 1},
		{Temperature: 1.3, TopK: 10, TopP: 0.7}, {Temperature: 1, TopK: 8, TopP: 0.999},
	} {
		want := refDistribution(z, s)
		sm.Sampling = s
		ids, probs := sm.Distribution(z)
		got := make([]float64, len(z))
		for j, i := range ids {
			if got[i] != 0 {
				t.Fatalf("%+v: id %d twice", s, i)
			}
			got[i] = probs[j]
		}
		for i := range z {
			if (got[i] > 0) != (want[i] > 0) || math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("%+v: id %d: p %.15f, want %.15f", s, i, got[i], want[i])
			}
		}
		cuts := s.TopK > 0 && s.TopK < len(z) || s.TopP > 0 && s.TopP < 1
		if cuts && !sort.SliceIsSorted(ids, func(a, b int) bool { return probs[a] > probs[b] || probs[a] == probs[b] && ids[a] < ids[b] }) {
			t.Errorf("%+v: not most probable first: %v", s, ids)
		}
		n := 0
		for _, p := range want {
			if p > 0 {
				n++
			}
		}
		switch {
		case s.Temperature == 0 && (n != 1 || want[7] != 1): // the lower of the tied maxima
			t.Errorf("%+v: greedy keeps %d ids, p(7) = %v", s, n, want[7])
		case s.Temperature > 0 && s.TopK > 0 && s.TopK < 40 && s.TopP == 0 && n != s.TopK:
			t.Errorf("%+v: %d ids kept", s, n)
		}
	}
	// Top-k through the tie at the top keeps the lower id.
	sm.Sampling = Sampling{Temperature: 1, TopK: 1}
	if ids, _ := sm.Distribution(z); !slices.Equal(ids, []int{7}) {
		t.Errorf("top-1 of a tie keeps %v, want [7]", ids)
	}
}

// TestSampleFrequencies draws 200,000 tokens at temperature 0.8, top-k 10,
// top-p 0.95: every draw is in the kept set and each id's frequency is
// within 5 standard deviations of its probability; the same seed draws
// the same sequence, another seed another.
func TestSampleFrequencies(t *testing.T) {
	z := testLogits()
	s := Sampling{Temperature: 0.8, TopK: 10, TopP: 0.95}
	want := refDistribution(z, s)
	sm := Sampler{Sampling: s}
	const N = 200000
	count := make([]int, len(z))
	rng := SampleRNG(42)
	for range N {
		count[sm.Sample(z, rng)]++
	}
	for i, c := range count {
		p := want[i]
		if p == 0 && c > 0 {
			t.Errorf("id %d drawn %d times outside the kept set", i, c)
			continue
		}
		if sd := math.Sqrt(N * p * (1 - p)); math.Abs(float64(c)-N*p) > 5*sd+1 {
			t.Errorf("id %d: %d draws, expected %.0f ± %.0f", i, c, N*p, sd)
		}
	}
	draw := func(seed uint64) []int {
		r := SampleRNG(seed)
		var out []int
		for range 50 {
			out = append(out, sm.Sample(z, r))
		}
		return out
	}
	if a, b := draw(7), draw(7); !slices.Equal(a, b) {
		t.Errorf("seed 7 drew %v then %v", a, b)
	}
	if a, b := draw(7), draw(8); slices.Equal(a, b) {
		t.Errorf("seeds 7 and 8 drew the same %v", a)
	}
}

func TestSamplingCheck(t *testing.T) {
	for _, s := range []Sampling{{Temperature: -1}, {Temperature: math.NaN()}, {Temperature: math.Inf(1)}, {Temperature: 1, TopK: -1}, {Temperature: 1, TopP: 1.5}, {Temperature: 1, TopP: -0.1}} {
		if s.Check() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	if err := (Sampling{Temperature: 1, TopK: 5, TopP: 0.9}).Check(); err != nil {
		t.Error(err)
	}
}

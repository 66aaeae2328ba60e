package formats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTopKFast compares TopK (the histogram path for finite scores) with
// the insertion selection and a float64 logsumexp on random rows: heavy
// ties, a few distinct values, wide and narrow ranges, k from 1 to C/4
// and beyond, and rows with NaN and ±Inf (which take the insertion path).
// The ids and values must be identical, the logsumexp within 2 float32
// ulp of max(|lse|, 1) of the float64 one.
func TestTopKFast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gens := []func(c int) float32{
		func(int) float32 { return float32(rng.NormFloat64() * 3) },
		func(int) float32 { return float32(rng.IntN(4)) },              // heavy ties
		func(int) float32 { return float32(rng.NormFloat64() * 1e-3) }, // narrow
		func(int) float32 { return float32(rng.NormFloat64() * 40) },   // wide: exp32 underflows
		func(c int) float32 { return float32(c % 7) },                  // periodic ties
		func(int) float32 { return 5 },                                 // all equal
	}
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	for it := range 3000 {
		C := []int{1, 2, 10, 64, 512, 1000}[it%6]
		gen := gens[it/6%len(gens)]
		logits := make([]float32, C)
		for c := range logits {
			logits[c] = gen(c)
		}
		if it%17 == 0 {
			logits[rng.IntN(C)] = specials[rng.IntN(len(specials))]
		}
		for _, k := range []int{1, min(C, 5), max(1, C/4), max(1, C/4-1), C} {
			idx, val := make([]int32, k), make([]float32, k)
			lse := TopK(idx, val, logits)
			wantIdx, wantVal := make([]int32, k), make([]float32, k)
			topKInsert(wantIdx, wantVal, logits)
			if !slices.Equal(idx, wantIdx) || !slices.EqualFunc(val, wantVal, func(a, b float32) bool { return a == b || a != a && b != b }) {
				t.Fatalf("C %d k %d: TopK %v %v, insertion %v %v\nlogits %v", C, k, idx, val, wantIdx, wantVal, logits)
			}
			want := float32(LogSumExp(logits))
			switch {
			case want != want:
				if lse == lse {
					t.Fatalf("logsumexp %v, want NaN", lse)
				}
			case math.IsInf(float64(want), 0):
				if lse != want {
					t.Fatalf("logsumexp %v, want %v", lse, want)
				}
			default:
				// Probabilities exp(t − lse) keep float32's relative
				// precision: 2 ulp of max(|lse|, 1).
				a := float32(max(math.Abs(float64(want)), 1))
				ulp := math.Nextafter32(a, float32(math.Inf(1))) - a
				if d := math.Abs(float64(lse - want)); d > 2*float64(ulp) {
					t.Fatalf("C %d: logsumexp %v, float64 %v (%.1f ulp)\nlogits %v", C, lse, want, d/float64(ulp), logits)
				}
			}
		}
	}
}

// BenchmarkTopK times TopK over stories260K-sized rows (512 scores, k = 32):
// the histogram path against the insertion selection and float64
// logsumexp it replaced.
func BenchmarkTopK(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const V, k, P = 512, 32, 64
	logits := make([]float32, V*P)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	idx, val := make([]int32, k), make([]float32, k)
	b.Run("histogram", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			TopK(idx, val, logits[i%P*V:(i%P+1)*V])
		}
	})
	b.Run("insertion+float64", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			row := logits[i%P*V : (i%P+1)*V]
			topKInsert(idx, val, row)
			LogSumExp(row)
		}
	})
}

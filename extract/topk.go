package extract

import "math"

// LogSumExp returns log Σ exp(x_i), computed stably in float64.
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

// NonFinite returns the indices of the rows (n rows of width w) holding a
// NaN or ±Inf.
func NonFinite(v []float32, n, w int) []int {
	var bad []int
	for r := 0; r < n; r++ {
		for _, x := range v[r*w : (r+1)*w] {
			if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
				bad = append(bad, r)
				break
			}
		}
	}
	return bad
}

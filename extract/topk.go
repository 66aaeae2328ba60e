package extract

import "math"

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

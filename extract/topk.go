package extract

import (
	"math"
	"sort"
)

// TopK fills idx and val (each n·k long) with the k largest scores of each
// of the n rows of scores (n·c values), largest first, ties broken by the
// lower class index, and lse (n long) with each row's log Σ exp over all c
// scores, so the probability mass outside the top k stays exactly known:
// p_rest = 1 − Σ_top exp(val − lse).
func TopK(scores []float32, n, c, k int, idx []int32, val []float32, lse []float32) {
	order := make([]int32, c)
	for r := 0; r < n; r++ {
		row := scores[r*c : (r+1)*c]
		for i := range order {
			order[i] = int32(i)
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		for j := 0; j < k; j++ {
			idx[r*k+j] = order[j]
			val[r*k+j] = row[order[j]]
		}
		lse[r] = float32(LogSumExp(row))
	}
}

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

package sharedtest

import "sort"

// Median returns the middle value of v (of an even count, the upper of
// the two middle ones), 0 for none; v is not changed. Benchmarks that
// interleave runs on a shared machine report the medians of their rates
// and ratios.
func Median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

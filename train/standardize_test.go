package train

import (
	"math"
	"testing"
)

// TestMomentsModes checks each standardization mode against a direct
// computation on two channels of three features.
func TestMomentsModes(t *testing.T) {
	// 4 rows × [2 channels × 3 values]; channel 1 is constant.
	x := []float32{
		0, 1, 2, 5, 5, 5,
		2, 3, 4, 5, 5, 5,
		4, 5, 6, 5, 5, 5,
		6, 7, 8, 5, 5, 5,
	}
	m := NewMoments(6)
	m.Add(x[:12], 2)
	m.Add(x[12:], 2)
	check := func(mode string, shape []int, wantMean, wantStd []float64) {
		t.Helper()
		mean, std := m.ResultMode(mode, shape)
		for j := range wantMean {
			if math.Abs(float64(mean[j])-wantMean[j]) > 1e-6 || math.Abs(float64(std[j])-wantStd[j]) > 1e-6 {
				t.Fatalf("%s %v: feature %d mean %v std %v, want %v %v", mode, shape, j, mean[j], std[j], wantMean[j], wantStd[j])
			}
		}
	}
	s5 := math.Sqrt(5) // population std of {0,2,4,6} (and of {1,3,5,7}, ...)
	check(StandardizeFeature, []int{2, 3}, []float64{3, 4, 5, 5, 5, 5}, []float64{s5, s5, s5, 1, 1, 1})
	// Channel 0 holds 0..8 with mean 4: variance = mean of per-feature
	// variance (5) plus the spread of feature means {3,4,5} about 4 (2/3).
	sc := math.Sqrt(5 + 2.0/3)
	check(StandardizeChannel, []int{2, 3}, []float64{4, 4, 4, 5, 5, 5}, []float64{sc, sc, sc, 1, 1, 1})
	check(StandardizeAuto, []int{2, 3}, []float64{4, 4, 4, 5, 5, 5}, []float64{sc, sc, sc, 1, 1, 1})
	check(StandardizeAuto, []int{6}, []float64{3, 4, 5, 5, 5, 5}, []float64{s5, s5, s5, 1, 1, 1})
	check(StandardizeNone, []int{2, 3}, []float64{0, 0, 0, 0, 0, 0}, []float64{1, 1, 1, 1, 1, 1})
	if _, err := ParseStandardize("global"); err == nil {
		t.Error("ParseStandardize accepted an unknown mode")
	}
}

package extract

import (
	"math"
	"testing"
)

func TestLogSumExp(t *testing.T) {
	if got := LogSumExp([]float32{0, 0}); math.Abs(got-math.Ln2) > 1e-12 {
		t.Errorf("LogSumExp(0,0) = %v", got)
	}
	// Stable with huge logits (the mnist8-zoo teacher gives |x| ~ 1e4).
	if got := LogSumExp([]float32{1e4, 1e4}); math.Abs(got-(1e4+math.Ln2)) > 1e-9 {
		t.Errorf("LogSumExp overflowed: %v", got)
	}
}

func TestNonFinite(t *testing.T) {
	v := []float32{1, 2, float32(math.NaN()), 4, 5, 6, float32(math.Inf(-1)), 0}
	got := NonFinite(v, 4, 2)
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("NonFinite = %v, want [1 3]", got)
	}
}

package formats

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

package extract

import (
	"math"
	"testing"
)

func TestTopK(t *testing.T) {
	scores := []float32{1, 5, 3, 5, -2, 0, 0, 0, 0, 9}
	idx := make([]int32, 4)
	val := make([]float32, 4)
	lse := make([]float32, 2)
	TopK(scores, 2, 5, 2, idx, val, lse)
	wantIdx := []int32{1, 3, 4, 0}
	wantVal := []float32{5, 5, 9, 0}
	for i := range wantIdx {
		if idx[i] != wantIdx[i] || val[i] != wantVal[i] {
			t.Fatalf("TopK = %v %v, want %v %v", idx, val, wantIdx, wantVal)
		}
	}
	for r := 0; r < 2; r++ {
		var s float64
		for _, v := range scores[r*5 : r*5+5] {
			s += math.Exp(float64(v))
		}
		if got, want := float64(lse[r]), math.Log(s); math.Abs(got-want) > 1e-5 {
			t.Errorf("lse[%d] = %v, want %v", r, got, want)
		}
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

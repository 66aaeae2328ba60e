package extract

import (
	"math"
	"testing"
)

func TestNonFinite(t *testing.T) {
	v := []float32{1, 2, float32(math.NaN()), 4, 5, 6, float32(math.Inf(-1)), 0}
	got := NonFinite(v, 4, 2)
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("NonFinite = %v, want [1 3]", got)
	}
}

package fastmath

import (
	"math"
	"testing"
)

// TestExp32 checks Exp32 against float64 math.Exp on a dense grid of
// [−87.3, 0] and every float32 of [−1, 0] spaced 2^−20 apart: within 2 ulp
// of the correctly rounded float32, and 0 below the normal range.
func TestExp32(t *testing.T) {
	worst := 0.0
	check := func(x float32) {
		want := math.Exp(float64(x))
		got := float64(Exp32(x))
		ulp := math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want)
		if e := math.Abs(got-want) / float64(ulp); e > worst {
			worst = e
			if e > 2 {
				t.Fatalf("Exp32(%v) = %v, math.Exp %v: %.1f ulp", x, got, want, e)
			}
		}
	}
	for i := 0; i <= 1<<22; i++ {
		check(-87.33654 * float32(i) / (1 << 22))
	}
	for i := 0; i <= 1<<20; i++ {
		check(-float32(i) / (1 << 20))
	}
	for _, x := range []float32{-87.4, -100, -1e30, float32(math.Inf(-1))} {
		if got := Exp32(x); got != 0 {
			t.Errorf("Exp32(%v) = %v, want 0", x, got)
		}
	}
	t.Logf("worst error %.2f ulp", worst)
}

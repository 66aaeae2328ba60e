// Package fastmath holds the float32 kernels that the cache writer and
// the trainer share: Exp32 (scalar), and ExpSum, Max, Scale, Dot and
// SoftmaxBack over slices (AVX2 and FMA assembly for eight values at a
// time on amd64, the same steps in Go elsewhere).
package fastmath

import "math"

// Exp32 returns e^x for −87.3 ≤ x ≤ 0 in float32 arithmetic, within 2
// ulp of the correctly rounded value, and 0 below −87.3 (where e^x is
// under 2^−126). The classic table reduction (Tang 1989, "Table-driven
// implementation of the exponential function in IEEE floating-point
// arithmetic", ACM TOMS 15(2)): n = round(x·32/ln 2), x = n·ln2/32 + r with
// |r| ≤ ln2/64 (ln 2/32 in two parts, so r is exact to float32), and
// e^x = 2^⌊n/32⌋ · 2^((n mod 32)/32) · e^r, the middle factor from a
// 32-entry table and e^r ≈ 1 + r + r²/2 + r³/6, whose truncation error
// r⁴/24 < 6e-10 is below float32's 6e-8. About 4× faster than float64
// math.Exp here (formats.TopK's logsumexp; ExpSum does eight at a time).
func Exp32(x float32) float32 {
	if !(x >= -87.33654) {
		return 0
	}
	n := int32(x*46.166241308446828 - 0.5)   // x·32/ln 2, rounded (x ≤ 0)
	r := x - float32(n)*0.021659851074218750 // ln2/32, high part (exact product)
	r -= float32(n) * 9.983182795e-07        // ln2/32 − high part
	p := r*(r*(r*(1.0/6)+0.5)+1) + 1
	return p * exp2Table[n&31] * math.Float32frombits(uint32(n>>5+127)<<23)
}

// exp2Table holds 2^(j/32), j = 0..31, rounded to float32.
var exp2Table = func() (t [32]float32) {
	for j := range t {
		t[j] = float32(math.Exp2(float64(j) / 32))
	}
	return t
}()

//go:build amd64 && !purego

package fastmath

import "golang.org/x/sys/cpu"

// Kernels in vexp_amd64.s; n is a positive multiple of 8.

//go:noescape
func expSumAVX2(dst, src *float32, n int, scale, bias float32) float32

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, a float32)

//go:noescape
func dotAVX2(x, y *float32, n int) float32

//go:noescape
func mulSubAVX2(d, p *float32, n int, s float32)

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// expSumVec runs expSumAVX2 over the largest multiple of 8 of src and
// returns how many values it did and their sum.
func expSumVec(dst, src []float32, scale, bias float32) (int, float32) {
	n := len(src) &^ 7
	if !useAVX2 || n == 0 {
		return 0, 0
	}
	_ = dst[n-1]
	return n, expSumAVX2(&dst[0], &src[0], n, scale, bias)
}

func maxVec(x []float32) (int, float32) {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0, 0
	}
	return n, maxAVX2(&x[0], n)
}

func scaleVec(x []float32, a float32) int {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	scaleAVX2(&x[0], n, a)
	return n
}

func dotVec(x, y []float32) (int, float32) {
	n := len(x) &^ 7
	if !useAVX2 || n == 0 {
		return 0, 0
	}
	_ = y[n-1]
	return n, dotAVX2(&x[0], &y[0], n)
}

func mulSubVec(d, p []float32, s float32) int {
	n := len(p) &^ 7
	if !useAVX2 || n == 0 {
		return 0
	}
	_ = d[n-1]
	mulSubAVX2(&d[0], &p[0], n, s)
	return n
}

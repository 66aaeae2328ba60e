package fastmath

import "math"

// The constants of ExpSum's exponential (Cephes' expf, S. L. Moshier,
// https://www.netlib.org/cephes/): e^x = 2^n · e^r with n = round(x·log₂e)
// and r = x − n·ln 2 (ln 2 = c1 + c2, c1 exact in 9 bits so n·c1 is exact),
// |r| ≤ ln2/2, and e^r ≈ 1 + r + r²·P(r) with P of degree 5 (relative
// error about 1 ulp over the range). The argument is clamped to [lo, hi]
// first, so that 2^n stays a normal float32: below lo (e^lo = 2^−126) the
// result is about 1.2e−38 instead of smaller, above hi (88) about 1.7e38
// instead of larger or +Inf; NaN stays NaN.
const (
	expLo    = -87.33654
	expHi    = 88.0
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375
	expC2    = -2.12194440e-4
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

// expGo is ExpSum's exponential of one value in Go (the assembly does the
// same steps eight lanes at a time, rounding once in each fused
// multiply-add, so the two may differ in the last bit).
func expGo(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expLo), expHi)
	n := float32(math.RoundToEven(float64(x * expLog2e)))
	r := x - n*expC1
	r -= n * expC2
	p := ((((expP0*r+expP1)*r+expP2)*r+expP3)*r+expP4)*r + expP5
	y := p*(r*r) + r + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// ExpSum sets dst[i] = e^(src[i]·scale + bias) for every i of src (dst at
// least as long) and returns their sum, accumulated in float32 in eight
// partial sums. The exponential is within about 2 ulp of the correctly
// rounded value on [−87.3, 88], clamped outside it (see expLo, expHi)
// and NaN for NaN. On amd64 with AVX2 and FMA, eight values go at a time
// (about 20× math.Exp's speed); softmaxes and sigmoids of the trainer
// run on it. dst may be src.
func ExpSum(dst, src []float32, scale, bias float32) float32 {
	dst = dst[:len(src)]
	n, s := expSumVec(dst, src, scale, bias)
	for i := n; i < len(src); i++ {
		e := expGo(src[i]*scale + bias)
		dst[i] = e
		s += e
	}
	return s
}

// Max returns the largest value of x (at least one); NaN if the first
// value is NaN, any value otherwise when some are NaN.
func Max(x []float32) float32 {
	n, m := maxVec(x)
	if n == 0 {
		m = x[0]
	}
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}

// Scale sets x[i] *= a.
func Scale(x []float32, a float32) {
	n := scaleVec(x, a)
	for i := n; i < len(x); i++ {
		x[i] *= a
	}
}

// Dot returns Σ x[i]·y[i] over x (y at least as long), accumulated in
// float32 in eight partial sums.
func Dot(x, y []float32) float32 {
	y = y[:len(x)]
	n, s := dotVec(x, y)
	for i := n; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

// SoftmaxBack sets d[i] = p[i]·(d[i] − Σ_j p[j]·d[j]) over p (d at least
// as long): the gradient of a softmax's input from the gradient d of its
// output p (the Jacobian diag(p) − p·pᵀ), in place.
func SoftmaxBack(d, p []float32) {
	d = d[:len(p)]
	s := Dot(p, d)
	n := mulSubVec(d, p, s)
	for i := n; i < len(p); i++ {
		d[i] = p[i] * (d[i] - s)
	}
}

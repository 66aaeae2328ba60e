package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// TestConvKernels checks every kernel of convkern.go (the assembly for the
// multiple-of-8 bulk, Go for the rest) against a float64 evaluation of its
// definition, for lengths around the 8- and 32-value blocks of the
// assembly. Inputs are O(1), sums of up to 100 terms: float32 rounding
// keeps them within 1e-5 relative or absolute.
func TestConvKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	near := func(got float32, want float64) bool {
		return scalar.EqualWithinAbsOrRel(float64(got), want, 1e-5, 1e-5)
	}
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 32, 33, 40, 63, 64, 65, 100} {
		x, y := vec(n), vec(n)
		var d, s, sq, sdy, sdyx float64
		m := float32(0.3)
		for i := range n {
			d += float64(x[i]) * float64(y[i])
			s += float64(x[i])
			sq += (float64(x[i]) - float64(m)) * (float64(x[i]) - float64(m))
			sdy += float64(y[i])
			sdyx += float64(y[i]) * (float64(x[i]) - float64(m))
		}
		if got := dot(x, y); !near(got, d) {
			t.Errorf("n %d: dot %v, want %v", n, got, d)
		}
		if got := sum(x); !near(got, s) {
			t.Errorf("n %d: sum %v, want %v", n, got, s)
		}
		if got := sqDev(x, m); !near(got, sq) {
			t.Errorf("n %d: sqDev %v, want %v", n, got, sq)
		}
		if a, b := dotDev(y, x, m); !near(a, sdy) || !near(b, sdyx) {
			t.Errorf("n %d: dotDev %v %v, want %v %v", n, a, b, sdy, sdyx)
		}
		// affine with a clamp to [−0.5, 0.7], then without one.
		out := make([]float32, n)
		for _, c := range [][2]float32{{-0.5, 0.7}, {float32(math.Inf(-1)), float32(math.Inf(1))}} {
			affine(out, x, m, 1.5, -0.25, c[0], c[1])
			for i := range n {
				want := math.Min(math.Max(1.5*(float64(x[i])-float64(m))-0.25, float64(c[0])), float64(c[1]))
				if !near(out[i], want) {
					t.Fatalf("n %d: affine[%d] = %v, want %v", n, i, out[i], want)
				}
			}
		}
		axpbyc(out, x, y, 0.5, -2, m, 0.125)
		for i := range n {
			if want := 0.5*float64(x[i]) - 2*(float64(y[i])-float64(m)) + 0.125; !near(out[i], want) {
				t.Fatalf("n %d: axpbyc[%d] = %v, want %v", n, i, out[i], want)
			}
		}
		clampMask(out, x, y, -0.5, 0.7)
		for i := range n {
			want := x[i]
			if !(y[i] > -0.5 && y[i] < 0.7) {
				want = 0
			}
			if out[i] != want {
				t.Fatalf("n %d: clampMask[%d] = %v, want %v", n, i, out[i], want)
			}
		}
		// dotDevMask: clampMask, then dotDev, in one pass.
		dm := append([]float32(nil), y...)
		want := make([]float32, n)
		clampMask(want, y, x, -0.5, 0.7)
		ws, wsx := dotDev(want, out, m)
		if a, b := dotDevMask(dm, x, out, m, -0.5, 0.7); !near(a, float64(ws)) || !near(b, float64(wsx)) {
			t.Errorf("n %d: dotDevMask %v %v, want %v %v", n, a, b, ws, wsx)
		}
		for i := range n {
			if dm[i] != want[i] {
				t.Fatalf("n %d: dotDevMask left dy[%d] = %v, want %v", n, i, dm[i], want[i])
			}
		}
		// dotTaps: 6 taps (a block of 4 in assembly, then 2), added to out.
		{
			offs := []int32{0, 5, 2, 9, 1, 13}
			src := vec(n + 13)
			acc := vec(len(offs))
			want := make([]float64, len(offs))
			for k, o := range offs {
				want[k] = float64(acc[k])
				for i := range n {
					want[k] += float64(x[i]) * float64(src[i+int(o)])
				}
			}
			dotTaps(acc, x, src, offs)
			for k := range offs {
				if !near(acc[k], want[k]) {
					t.Errorf("n %d: dotTaps[%d] = %v, want %v", n, k, acc[k], want[k])
				}
			}
		}
		// taps: 5 taps at offsets up to 13, overwriting and accumulating.
		offs := []int32{0, 3, 13, 1, 7}
		w := vec(len(offs))
		src := vec(n + 13)
		for _, acc := range []bool{false, true} {
			dst := vec(n)
			for i := range n {
				want := 0.0
				if acc {
					want = float64(dst[i])
				}
				for k, o := range offs {
					want += float64(w[k]) * float64(src[i+int(o)])
				}
				out[i] = float32(want)
			}
			taps(dst, src, offs, w, acc)
			for i := range n {
				if !near(dst[i], float64(out[i])) {
					t.Fatalf("n %d acc %v: taps[%d] = %v, want %v", n, acc, i, dst[i], out[i])
				}
			}
		}
	}
	// ReLU through affine (activation.go) is Go's max(v, 0) bit for bit:
	// −0 becomes +0, NaN stays NaN, on the assembly lanes and the Go tail.
	special := []float32{float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(-1)), float32(math.Inf(1)), -1.5, 2.5, 0, 1e-40, -1e-40}
	sp := append(append([]float32(nil), special...), special...)
	got := make([]float32, len(sp))
	affine(got, sp, 0, 1, 0, 0, posInf)
	for i, v := range sp {
		want := max(v, 0)
		if math.Float32bits(got[i]) != math.Float32bits(want) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want))) {
			t.Errorf("ReLU(%v) = %v (bits %#x), max gives %v (%#x)", v, got[i], math.Float32bits(got[i]), want, math.Float32bits(want))
		}
	}
	// NaN goes through the clamp.
	x := []float32{float32(math.NaN()), 1, 2, 3, 4, 5, 6, 7, float32(math.NaN())}
	out := make([]float32, len(x))
	affine(out, x, 0, 1, 0, 0, 6)
	if !math.IsNaN(float64(out[0])) || !math.IsNaN(float64(out[8])) {
		t.Errorf("affine turned NaN into %v, %v", out[0], out[8])
	}
}

// TestMaxPool2Map: the AVX2 2×2 max pooling (full and masked blocks of 8
// outputs) gives the values and indices of the Go version bit for bit,
// on maps of odd and even sizes with ties, −0 and NaN among the inputs.
func TestMaxPool2Map(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, sz := range [][2]int{{2, 2}, {3, 3}, {4, 5}, {7, 7}, {14, 14}, {28, 28}, {5, 33}, {9, 20}, {2, 34}} {
		h, w := sz[0], sz[1]
		ho, wo := h/2, w/2
		x := make([]float32, h*w+3) // slack after the map, which must not be read into outputs
		for i := range x {
			switch rng.IntN(8) {
			case 0:
				x[i] = 0.5 // ties
			case 1:
				x[i] = float32(math.Copysign(0, -1))
			case 2:
				x[i] = 0
			default:
				x[i] = float32(rng.NormFloat64())
			}
		}
		x[rng.IntN(h*w)] = float32(math.NaN())
		y, idx := make([]float32, ho*wo), make([]int32, ho*wo)
		yg, ig := make([]float32, ho*wo), make([]int32, ho*wo)
		maxPool2Map(y, idx, x, w, ho, wo, 100)
		maxPool2MapGo(yg, ig, x, w, ho, wo, 100)
		for i := range y {
			if math.Float32bits(y[i]) != math.Float32bits(yg[i]) || idx[i] != ig[i] {
				t.Fatalf("%dx%d: output %d = %v at %d, Go gives %v at %d", h, w, i, y[i], idx[i], yg[i], ig[i])
			}
			if math.Float32bits(x[idx[i]-100]) != math.Float32bits(y[i]) {
				t.Fatalf("%dx%d: output %d = %v is not x[%d] = %v", h, w, i, y[i], idx[i]-100, x[idx[i]-100])
			}
		}
	}
}

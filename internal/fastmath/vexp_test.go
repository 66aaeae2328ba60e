package fastmath

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// ulps returns |got − want| in units of the last place of float32(want).
func ulps(got float32, want float64) float64 {
	w := float32(want)
	ulp := math.Nextafter32(w, float32(math.Inf(1))) - w
	return math.Abs(float64(got)-want) / float64(ulp)
}

// TestExpSum checks ExpSum (the assembly for whole groups of 8, expGo for
// the rest) against float64 math.Exp on a dense grid of [−87.3, 88] and
// every float32 of [−1, 1] spaced 2^−20 apart: within 2 ulp; the clamps
// below and above the range; NaN; and the returned sum against a float64
// sum.
func TestExpSum(t *testing.T) {
	var xs []float32
	for i := 0; i <= 1<<22; i++ {
		xs = append(xs, expLo+(expHi-expLo)*float32(i)/(1<<22))
	}
	for i := -1 << 20; i <= 1<<20; i++ {
		xs = append(xs, float32(i)/(1<<20))
	}
	xs = append(xs, 1) // an odd length: expGo takes the tail
	dst := make([]float32, len(xs))
	ExpSum(dst, xs, 1, 0)
	worst := 0.0
	for i, x := range xs {
		want := math.Exp(float64(x))
		if e := ulps(dst[i], want); e > worst {
			worst = e
			if e > 2 {
				t.Fatalf("ExpSum: exp(%v) = %v, math.Exp %v: %.1f ulp", x, dst[i], want, e)
			}
		}
		if e := ulps(expGo(x), want); e > 2 {
			t.Fatalf("expGo(%v) = %v, math.Exp %v: %.1f ulp", x, expGo(x), want, e)
		}
	}
	t.Logf("worst error %.2f ulp", worst)

	// Clamps and NaN, in a vector lane and in the tail.
	special := []float32{-88, -1e30, float32(math.Inf(-1)), 89, 1e30, float32(math.Inf(1)), float32(math.NaN()), 0, 3}
	in := append(append([]float32{}, special[:8]...), special...)
	out := make([]float32, len(in))
	ExpSum(out, in, 1, 0)
	lo, hi := float32(math.Exp(expLo)), float32(math.Exp(expHi))
	for i, x := range in {
		got := out[i]
		switch {
		case x != x:
			if got == got {
				t.Errorf("exp(NaN) = %v", got)
			}
		case x < expLo:
			if ulps(got, float64(lo)) > 2 {
				t.Errorf("exp(%v) = %v, want the clamp %v", x, got, lo)
			}
		case x > expHi:
			if ulps(got, float64(hi)) > 2 || math.IsInf(float64(got), 0) {
				t.Errorf("exp(%v) = %v, want the clamp %v", x, got, hi)
			}
		}
	}

	// scale, bias, the sum, every tail length, dst = src.
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 40; n++ {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64() * 3)
		}
		const scale, bias = -0.5, 1.25
		got := make([]float32, n)
		s := ExpSum(got, src, scale, bias)
		var want float64
		for i, x := range src {
			e := math.Exp(float64(x*scale + bias))
			want += e
			if ulps(got[i], e) > 2 {
				t.Fatalf("n %d: exp(%v·%v + %v) = %v, want %v", n, x, scale, bias, got[i], e)
			}
		}
		if math.Abs(float64(s)-want) > 1e-6*want {
			t.Fatalf("n %d: sum %v, want %v", n, s, want)
		}
		ExpSum(src, src, scale, bias)
		for i := range src {
			if src[i] != got[i] {
				t.Fatalf("n %d: in place %v, into another slice %v", n, src[i], got[i])
			}
		}
	}
}

// TestMaxScale checks Max and Scale for every length up to 40, with the
// maximum at every position.
func TestMaxScale(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 40; n++ {
		for at := range n {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.Float64()*10 - 20)
			}
			x[at] = 5
			if m := Max(x); m != 5 {
				t.Fatalf("n %d, max at %d: Max = %v", n, at, m)
			}
		}
		x := make([]float32, n)
		want := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			want[i] = x[i] * 0.3
		}
		Scale(x, 0.3)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("n %d: Scale %v, want %v", n, x[i], want[i])
			}
		}
	}
}

func BenchmarkExpSum(b *testing.B) {
	x := make([]float32, 512)
	for i := range x {
		x[i] = -float32(i) / 64
	}
	dst := make([]float32, len(x))
	b.Run("ExpSum", func(b *testing.B) {
		for b.Loop() {
			ExpSum(dst, x, 1, 0)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
	})
	b.Run("Exp32", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				dst[i] = Exp32(v)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
	})
	b.Run("math.Exp", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				dst[i] = float32(math.Exp(float64(v)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
	})
}

// TestDotSoftmaxBack checks Dot and SoftmaxBack against float64 sums for
// every length up to 40.
func TestDotSoftmaxBack(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 1; n <= 40; n++ {
		x, y := make([]float32, n), make([]float32, n)
		var dot, mag float64
		for i := range x {
			x[i], y[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			dot += float64(x[i]) * float64(y[i])
			mag += math.Abs(float64(x[i]) * float64(y[i]))
		}
		if got := Dot(x, y); math.Abs(float64(got)-dot) > 1e-6*mag {
			t.Fatalf("n %d: Dot %v, want %v", n, got, dot)
		}
		p, d := make([]float32, n), slices.Clone(y)
		for i := range p {
			p[i] = float32(rng.Float64())
		}
		var s float64
		for i := range p {
			s += float64(p[i]) * float64(y[i])
		}
		SoftmaxBack(d, p)
		for i := range p {
			if want := float64(p[i]) * (float64(y[i]) - s); math.Abs(float64(d[i])-want) > 1e-5 {
				t.Fatalf("n %d: SoftmaxBack[%d] = %v, want %v", n, i, d[i], want)
			}
		}
	}
}

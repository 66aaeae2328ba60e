package gemm

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products of one training step at batch 128, named
// pass/m×k×n. train.Linear keeps W as [out, in] (PyTorch's layout), so
// forward is Y = X·Wᵀ (NoTrans, Trans), backward dX = dY·W (NoTrans,
// NoTrans) and dW = dYᵀ·X (Trans, NoTrans).
var benchShapes = []struct {
	name    string
	tA, tB  blas.Transpose
	m, n, k int
}{
	// 784-800-800-10.
	{"fwd/128x784x800", blas.NoTrans, blas.Trans, 128, 800, 784},
	{"fwd/128x800x800", blas.NoTrans, blas.Trans, 128, 800, 800},
	{"fwd/128x800x10", blas.NoTrans, blas.Trans, 128, 10, 800},
	{"dX/128x10x800", blas.NoTrans, blas.NoTrans, 128, 800, 10},
	{"dX/128x800x800", blas.NoTrans, blas.NoTrans, 128, 800, 800},
	{"dW/800x128x784", blas.Trans, blas.NoTrans, 800, 784, 128},
	{"dW/800x128x800", blas.Trans, blas.NoTrans, 800, 800, 128},
	{"dW/10x128x800", blas.Trans, blas.NoTrans, 10, 800, 128},
	// 784-128-10.
	{"fwd/128x784x128", blas.NoTrans, blas.Trans, 128, 128, 784},
	{"fwd/128x128x10", blas.NoTrans, blas.Trans, 128, 10, 128},
	{"dX/128x10x128", blas.NoTrans, blas.NoTrans, 128, 128, 10},
	{"dW/128x128x784", blas.Trans, blas.NoTrans, 128, 784, 128},
	{"dW/10x128x128", blas.Trans, blas.NoTrans, 10, 128, 128},
	// W stored [in, out] would make the forward product NoTrans, NoTrans.
	{"fwdNN/128x784x800", blas.NoTrans, blas.NoTrans, 128, 800, 784},
}

// BenchmarkSgemm runs every shape with each available kernel on 1 and 2
// goroutines and with gonum's native Sgemm, reporting GFLOP/s (2·m·n·k
// flops per call). Compare with benchstat; the headline is ours vs gonum.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		ar, ac := s.m, s.k
		if s.tA != blas.NoTrans {
			ar, ac = s.k, s.m
		}
		br, bc := s.k, s.n
		if s.tB != blas.NoTrans {
			br, bc = s.n, s.k
		}
		rng := rand.New(rand.NewPCG(1, 2))
		x := randSlice(rng, ar*ac)
		w := randSlice(rng, br*bc)
		c := make([]float32, s.m*s.n)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		// report adds GFLOP/s of wall time and, more stable on a shared
		// machine, GFLOP per CPU-second (the two agree for one thread on an
		// idle core; with t threads the second is t times lower at best).
		report := func(b *testing.B, cpu0 float64) {
			work := flops * float64(b.N) / 1e9
			b.ReportMetric(work/b.Elapsed().Seconds(), "GFLOP/s")
			if cpu := cpuSeconds() - cpu0; cpu0 > 0 && cpu > 0 {
				b.ReportMetric(work/cpu, "GFLOP/cpu-s")
			}
		}
		for _, k := range available {
			for _, th := range []int{1, 2} {
				cf := config{k, th}
				b.Run(s.name+"/"+cf.String(), func(b *testing.B) {
					b.ReportAllocs()
					var cpu0 float64
					cf.with(func() {
						for b.Loop() {
							if cpu0 == 0 {
								cpu0 = cpuSeconds()
							}
							Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, x, ac, w, bc, 0, c, s.n)
						}
					})
					report(b, cpu0)
				})
			}
		}
		b.Run(s.name+"/gonum", func(b *testing.B) {
			b.ReportAllocs()
			var cpu0 float64
			for b.Loop() {
				if cpu0 == 0 {
					cpu0 = cpuSeconds()
				}
				gonum.Implementation{}.Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, x, ac, w, bc, 0, c, s.n)
			}
			report(b, cpu0)
		})
	}
}

// BenchmarkKernel measures each micro-kernel alone on L1-resident panels
// (kc = 256), the ceiling for BenchmarkSgemm.
func BenchmarkKernel(b *testing.B) {
	for _, k := range available {
		b.Run(k.name, func(b *testing.B) {
			const kc = 256
			a := make([]float32, kc*k.mr)
			bp := make([]float32, kc*k.nr)
			c := make([]float32, k.mr*k.nr)
			for b.Loop() {
				k.fn(kc, &a[0], &bp[0], &c[0], k.nr, 1, 1)
			}
			b.ReportMetric(2*float64(kc*k.mr*k.nr)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

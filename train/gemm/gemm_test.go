package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// call is one Sgemm call: shapes, transposes, scalars and the padding of
// each leading dimension beyond its minimum.
type call struct {
	tA, tB           blas.Transpose
	m, n, k          int
	alpha, beta      float32
	padA, padB, padC int
	nanC             bool // fill C with NaN (only meaningful with beta == 0)
}

func (c call) String() string {
	return fmt.Sprintf("%c%c/%dx%dx%d/a%g/b%g/pad%d,%d,%d",
		c.tA, c.tB, c.m, c.n, c.k, c.alpha, c.beta, c.padA, c.padB, c.padC)
}

// operands holds the inputs of a call laid out with their leading
// dimensions; the padding past each row is NaN, so reading it shows.
type operands struct {
	a, b, c       []float32
	lda, ldb, ldc int
}

func newOperands(cl call, rng *rand.Rand) operands {
	ar, ac := cl.m, cl.k // rows and columns of A as stored
	if cl.tA != blas.NoTrans {
		ar, ac = cl.k, cl.m
	}
	br, bc := cl.k, cl.n
	if cl.tB != blas.NoTrans {
		br, bc = cl.n, cl.k
	}
	o := operands{lda: max(1, ac) + cl.padA, ldb: max(1, bc) + cl.padB, ldc: max(1, cl.n) + cl.padC}
	fill := func(rows, cols, ld int, nan bool) []float32 {
		s := make([]float32, rows*ld)
		for i := range s {
			if nan || i%ld >= cols {
				s[i] = float32(math.NaN())
				continue
			}
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	o.a = fill(ar, ac, o.lda, false)
	o.b = fill(br, bc, o.ldb, false)
	o.c = fill(cl.m, cl.n, o.ldc, cl.nanC)
	return o
}

// reference returns alpha*op(A)*op(B) + beta*C computed in float64 and, per
// element, the scale of that sum, |alpha|*sum|a||b| + |beta*c|, for the
// error bound.
func reference(cl call, o operands) (want, mag []float64) {
	at := func(i, p int) float64 {
		if cl.tA != blas.NoTrans {
			return float64(o.a[p*o.lda+i])
		}
		return float64(o.a[i*o.lda+p])
	}
	bt := func(p, j int) float64 {
		if cl.tB != blas.NoTrans {
			return float64(o.b[j*o.ldb+p])
		}
		return float64(o.b[p*o.ldb+j])
	}
	want = make([]float64, cl.m*cl.n)
	mag = make([]float64, cl.m*cl.n)
	for i := range cl.m {
		for j := range cl.n {
			var s, abs float64
			for p := range cl.k {
				x := at(i, p) * bt(p, j)
				s += x
				abs += math.Abs(x)
			}
			s *= float64(cl.alpha)
			abs *= math.Abs(float64(cl.alpha))
			if cl.beta != 0 {
				cv := float64(cl.beta) * float64(o.c[i*o.ldc+j])
				s += cv
				abs += math.Abs(cv)
			}
			want[i*cl.n+j], mag[i*cl.n+j] = s, abs
		}
	}
	return want, mag
}

// config is a kernel and a thread count to run Sgemm with.
type config struct {
	k       *kernel
	threads int
}

func (cf config) String() string { return fmt.Sprintf("%s/t%d", cf.k.name, cf.threads) }

// allConfigs returns every kernel this machine supports with each of the
// thread counts.
func allConfigs(counts ...int) []config {
	var cs []config
	for _, k := range available {
		for _, n := range counts {
			cs = append(cs, config{k, n})
		}
	}
	return cs
}

// with runs f with Sgemm forced to cf's kernel and thread count. Tests using
// it must not run in parallel.
func (cf config) with(f func()) {
	oldK, oldT := active.Load(), threads.Load()
	defer func() { active.Store(oldK); threads.Store(oldT) }()
	active.Store(cf.k)
	SetThreads(cf.threads)
	f()
}

// check runs cl with Sgemm under each configuration and compares the result
// with the float64 reference: float32 summation of k products has error
// below about k·ε·sum|a||b| (ε = 2⁻²⁴), and the final alpha/beta step adds
// a few ε more; the bound below allows 2(k+4)ε of the magnitude. The
// padding of C must stay NaN.
func check(t *testing.T, cl call, rng *rand.Rand, cfgs []config) {
	t.Helper()
	o := newOperands(cl, rng)
	want, mag := reference(cl, o)
	const eps = 1.0 / (1 << 24)
	bound := 2 * float64(cl.k+4) * eps
	for _, cf := range cfgs {
		c := append([]float32(nil), o.c...)
		cf.with(func() {
			Sgemm(cl.tA, cl.tB, cl.m, cl.n, cl.k, cl.alpha, o.a, o.lda, o.b, o.ldb, cl.beta, c, o.ldc)
		})
		bad := 0
		for i := range cl.m {
			for j := range o.ldc {
				got := c[i*o.ldc+j]
				if j >= cl.n {
					if !math.IsNaN(float64(got)) {
						t.Fatalf("%v %v: padding C[%d][%d] written: %v", cf, cl, i, j, got)
					}
					continue
				}
				w, tol := want[i*cl.n+j], bound*mag[i*cl.n+j]+1e-30
				if d := math.Abs(float64(got) - w); !(d <= tol) {
					if bad++; bad <= 5 {
						t.Errorf("%v %v: C[%d][%d] = %v, want %v (diff %.3g > tol %.3g)", cf, cl, i, j, got, w, d, tol)
					}
				}
			}
		}
		if bad > 5 {
			t.Errorf("%v %v: %d elements wrong", cf, cl, bad)
		}
	}
}

var transposes = []blas.Transpose{blas.NoTrans, blas.Trans}

// TestSgemmShapes covers tile edges (sizes around 12×32 and 6×16, primes),
// vectors and the trainer's layer shapes, in all four transpose cases.
func TestSgemmShapes(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {7, 13, 5}, {1, 1, 100}, {1, 33, 1}, {33, 1, 7},
		{12, 32, 16}, {13, 33, 17}, {6, 16, 4}, {24, 64, 9}, {11, 31, 257},
		{31, 37, 41}, {97, 101, 103}, {128, 10, 800}, {128, 128, 784},
		{127, 129, 300}, {300, 20, 600},
		{40, 48, 700}, {8192 / 64, 48, 96}, // half B panels (48 = 32 + 16 columns), several k blocks
	}
	if !testing.Short() {
		shapes = append(shapes, []struct{ m, n, k int }{
			{128, 800, 784}, {784, 800, 128}, {263, 4099, 13}, {37, 41, 1031},
		}...)
	}
	cfgs := allConfigs(1, 2)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range shapes {
		for _, tA := range transposes {
			for _, tB := range transposes {
				check(t, call{tA: tA, tB: tB, m: s.m, n: s.n, k: s.k, alpha: 1, beta: 0, nanC: true}, rng, cfgs)
			}
		}
	}
}

func TestSgemmScalars(t *testing.T) {
	scalars := []struct{ alpha, beta float32 }{
		{1, 0}, {1, 1}, {0, 0}, {0, 1}, {0, -2}, {-1, 1}, {0.5, -0.25}, {3, 2}, {1, float32(math.Copysign(0, -1))},
	}
	cfgs := allConfigs(1)
	rng := rand.New(rand.NewPCG(2, 2))
	for _, s := range scalars {
		for _, tA := range transposes {
			for _, tB := range transposes {
				// 200×9 takes the transposed-C path (n < nr).
				for _, sz := range []struct{ m, n, k int }{{5, 7, 3}, {37, 70, 300}, {200, 9, 50}} {
					check(t, call{tA: tA, tB: tB, m: sz.m, n: sz.n, k: sz.k,
						alpha: s.alpha, beta: s.beta, nanC: s.beta == 0}, rng, cfgs)
				}
			}
		}
	}
}

func TestSgemmStrides(t *testing.T) {
	cfgs := allConfigs(1, 2)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, pad := range [][3]int{{1, 0, 0}, {0, 3, 0}, {0, 0, 5}, {17, 9, 33}} {
		for _, tA := range transposes {
			for _, tB := range transposes {
				for _, cl := range []call{
					{m: 29, n: 67, k: 45, alpha: 1.5, beta: 0.5},
					{m: 130, n: 90, k: 260, alpha: 1, beta: 0, nanC: true},
					{m: 150, n: 7, k: 99, alpha: 1, beta: 1},
				} {
					cl.tA, cl.tB = tA, tB
					cl.padA, cl.padB, cl.padC = pad[0], pad[1], pad[2]
					check(t, cl, rng, cfgs)
				}
			}
		}
	}
}

// TestSgemmRandom draws random calls: shapes up to 64 (160 without -short),
// transposes, scalars and paddings.
func TestSgemmRandom(t *testing.T) {
	n, size := 200, 160
	if testing.Short() {
		n, size = 100, 64
	}
	cfgs := allConfigs(1, 3)
	rng := rand.New(rand.NewPCG(4, 4))
	scalars := []float32{0, 1, -1, 0.5, 2}
	for range n {
		cl := call{
			tA: transposes[rng.IntN(2)], tB: transposes[rng.IntN(2)],
			m: 1 + rng.IntN(size), n: 1 + rng.IntN(size), k: 1 + rng.IntN(size),
			alpha: scalars[rng.IntN(len(scalars))], beta: scalars[rng.IntN(len(scalars))],
			padA: rng.IntN(3), padB: rng.IntN(3), padC: rng.IntN(3),
		}
		cl.nanC = cl.beta == 0
		check(t, cl, rng, cfgs)
	}
}

// FuzzSgemm checks arbitrary calls up to 255 in each dimension against the
// float64 reference on every kernel.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), uint8(0), int8(2), int8(0), uint64(1))
	f.Add(uint8(13), uint8(33), uint8(17), uint8(3), uint8(7), int8(-2), int8(1), uint64(2))
	f.Add(uint8(100), uint8(65), uint8(200), uint8(1), uint8(0), int8(1), int8(-4), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, trans, pad uint8, alpha, beta int8, seed uint64) {
		cl := call{
			tA: transposes[trans&1], tB: transposes[trans>>1&1],
			m: int(m), n: int(n), k: int(k),
			alpha: float32(alpha) / 2, beta: float32(beta) / 2,
			padA: int(pad & 3), padB: int(pad >> 2 & 3), padC: int(pad >> 4 & 3),
		}
		cl.nanC = cl.beta == 0
		check(t, cl, rand.New(rand.NewPCG(seed, 5)), allConfigs(1, 2))
	})
}

func TestSgemmZeroSizes(t *testing.T) {
	c := []float32{1, 2, 3, 4}
	Sgemm(blas.NoTrans, blas.NoTrans, 0, 2, 3, 1, nil, 3, nil, 2, 0, c, 2)
	Sgemm(blas.NoTrans, blas.NoTrans, 2, 0, 3, 1, nil, 3, nil, 1, 0, c, 2)
	if c[0] != 1 || c[3] != 4 {
		t.Fatalf("C changed for an empty product: %v", c)
	}
	Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 0, 1, make([]float32, 1), 1, nil, 2, 2, c, 2)
	if want := []float32{2, 4, 6, 8}; fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("k == 0, beta = 2: C = %v, want %v", c, want)
	}
	nan := float32(math.NaN())
	c = []float32{nan, nan, nan, nan}
	Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 0, 1, make([]float32, 1), 1, nil, 2, 0, c, 2)
	if fmt.Sprint(c) != fmt.Sprint([]float32{0, 0, 0, 0}) {
		t.Fatalf("k == 0, beta = 0: C = %v, want zeros", c)
	}
}

// TestSgemmPanics checks that bad arguments panic with gonum's message.
func TestSgemmPanics(t *testing.T) {
	type args struct {
		tA, tB  blas.Transpose
		m, n, k int
		a       []float32
		lda     int
		b       []float32
		ldb     int
		c       []float32
		ldc     int
	}
	buf := func(n int) []float32 { return make([]float32, n) }
	ok := args{blas.NoTrans, blas.NoTrans, 2, 3, 4, buf(8), 4, buf(12), 3, buf(6), 3}
	cases := map[string]func(a *args){
		"tA":         func(a *args) { a.tA = 'x' },
		"tB":         func(a *args) { a.tB = 0 },
		"m<0":        func(a *args) { a.m = -1 },
		"n<0":        func(a *args) { a.n = -1 },
		"k<0":        func(a *args) { a.k = -1 },
		"lda":        func(a *args) { a.lda = 3 },
		"ldaTrans":   func(a *args) { a.tA, a.lda = blas.Trans, 1 },
		"ldb":        func(a *args) { a.ldb = 2 },
		"ldbTrans":   func(a *args) { a.tB, a.ldb = blas.Trans, 3 },
		"ldc":        func(a *args) { a.ldc = 2 },
		"shortA":     func(a *args) { a.a = buf(7) },
		"shortB":     func(a *args) { a.b = buf(11) },
		"shortC":     func(a *args) { a.c = buf(5) },
		"shortATr":   func(a *args) { a.tA, a.lda, a.a = blas.Trans, 2, buf(7) },
		"shortBTr":   func(a *args) { a.tB, a.ldb, a.b = blas.Trans, 4, buf(11) },
		"ldcZeroDim": func(a *args) { a.n, a.ldc = 0, 0 },
	}
	catch := func(f func()) (msg any) {
		defer func() { msg = recover() }()
		f()
		return nil
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			x := ok
			mod(&x)
			got := catch(func() {
				Sgemm(x.tA, x.tB, x.m, x.n, x.k, 1, x.a, x.lda, x.b, x.ldb, 0, x.c, x.ldc)
			})
			want := catch(func() {
				gonum.Implementation{}.Sgemm(x.tA, x.tB, x.m, x.n, x.k, 1, x.a, x.lda, x.b, x.ldb, 0, x.c, x.ldc)
			})
			if got != want {
				t.Errorf("panic %v, gonum panics %v", got, want)
			}
			if got == nil {
				t.Errorf("no panic")
			}
		})
	}
}

// TestDeterministic checks that repeated calls with a fixed thread count
// give bit-identical results.
func TestDeterministic(t *testing.T) {
	cl := call{tA: blas.NoTrans, tB: blas.Trans, m: 130, n: 300, k: 500, alpha: 1, beta: 0}
	o := newOperands(cl, rand.New(rand.NewPCG(6, 6)))
	for _, cf := range allConfigs(2, 4) {
		first := make([]float32, len(o.c))
		for i := range 3 {
			cf.with(func() {
				Sgemm(cl.tA, cl.tB, cl.m, cl.n, cl.k, 1, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
			})
			if i == 0 {
				copy(first, o.c)
				continue
			}
			for j := range o.c {
				if math.Float32bits(o.c[j]) != math.Float32bits(first[j]) {
					t.Fatalf("%v call %d: C[%d] = %v, first call gave %v", cf, i, j, o.c[j], first[j])
				}
			}
		}
	}
}

// TestImplementation checks that Implementation routes Sgemm here and the
// rest of level 1-3 to gonum.
func TestImplementation(t *testing.T) {
	impl := Implementation()
	if _, ok := impl.(gonum.Implementation); ok {
		t.Fatal("Implementation is plain gonum")
	}
	a := []float32{1, 2, 3, 4}
	if got := impl.Sdot(4, a, 1, a, 1); got != 30 {
		t.Errorf("Sdot = %v, want 30", got)
	}
	old := blas32.Implementation()
	blas32.Use(impl)
	defer blas32.Use(old)
	c := blas32.General{Rows: 2, Cols: 2, Stride: 2, Data: make([]float32, 4)}
	g := blas32.General{Rows: 2, Cols: 2, Stride: 2, Data: a}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, g, g, 0, c)
	if want := []float32{7, 10, 15, 22}; fmt.Sprint(c.Data) != fmt.Sprint(want) {
		t.Errorf("Gemm = %v, want %v", c.Data, want)
	}
}

func TestKernelName(t *testing.T) {
	switch name := Kernel(); name {
	case "avx512", "avx2", "generic":
	default:
		if lookup(name) == nil {
			t.Errorf("Kernel() = %q, not a known kernel", name)
		}
	}
	if lookup("generic") == nil {
		t.Error("generic kernel missing")
	}
	if lookup("no-such-kernel") != nil || lookup("") != nil {
		t.Error("lookup of an unknown name succeeded")
	}
}

// TestSetKernel checks that SetKernel picks an available kernel, that an
// unknown name is an error naming the available kernels and leaves the
// kernel unchanged, and that "" restores the best one.
func TestSetKernel(t *testing.T) {
	defer active.Store(active.Load())
	if names := Kernels(); len(names) != len(available) || names[0] != available[0].name || names[len(names)-1] != "generic" {
		t.Errorf("Kernels() = %v, want the available kernels best first, generic last", names)
	}
	if err := SetKernel("generic"); err != nil {
		t.Fatal(err)
	}
	if k := active.Load(); k != generic || Kernel() != "generic" {
		t.Errorf("SetKernel(generic) chose %q", k.name)
	}
	err := SetKernel("no-such-kernel")
	if err == nil || !strings.Contains(err.Error(), "generic") {
		t.Errorf("SetKernel(no-such-kernel) = %v, want an error listing the available kernels", err)
	}
	if k := active.Load(); k != generic {
		t.Errorf("SetKernel(no-such-kernel) changed the kernel to %q", k.name)
	}
	if err := SetKernel(""); err != nil {
		t.Fatal(err)
	}
	if k := active.Load(); k != available[0] {
		t.Errorf("SetKernel(\"\") chose %q, want %q", k.name, available[0].name)
	}
}

func TestThreads(t *testing.T) {
	defer SetThreads(0)
	SetThreads(3)
	if Threads() != 3 {
		t.Errorf("Threads() = %d after SetThreads(3)", Threads())
	}
	SetThreads(-1)
	if Threads() < 1 {
		t.Errorf("Threads() = %d by default", Threads())
	}
}

// TestThreadCountsAgree checks that the result does not depend on the
// thread count: blocks of C are cut at multiples of the register tile and
// the k blocking depends on k only, so every element sees the same sums.
func TestThreadCountsAgree(t *testing.T) {
	for _, k := range available {
		t.Run(k.name, func(t *testing.T) {
			for _, cl := range []call{
				{tA: blas.NoTrans, tB: blas.NoTrans, m: 128, n: 800, k: 300, alpha: 1, beta: 0},
				{tA: blas.Trans, tB: blas.NoTrans, m: 300, n: 100, k: 128, alpha: 0.5, beta: 1},
				{tA: blas.NoTrans, tB: blas.Trans, m: 333, n: 10, k: 800, alpha: 1, beta: 0},
			} {
				o := newOperands(cl, rand.New(rand.NewPCG(7, 7)))
				c0 := append([]float32(nil), o.c...)
				var first []float32
				for _, th := range []int{1, 2, 3, 8} {
					c := append([]float32(nil), c0...)
					config{k, th}.with(func() {
						Sgemm(cl.tA, cl.tB, cl.m, cl.n, cl.k, cl.alpha, o.a, o.lda, o.b, o.ldb, cl.beta, c, o.ldc)
					})
					if first == nil {
						first = c
						continue
					}
					for j := range c {
						if math.Float32bits(c[j]) != math.Float32bits(first[j]) {
							t.Fatalf("%v: %d threads: C[%d] = %v, 1 thread gave %v", cl, th, j, c[j], first[j])
						}
					}
				}
				// A Scratch ignores the 8 threads set and gives the same bits,
				// and a second call in its buffers allocates nothing.
				c := append([]float32(nil), c0...)
				var s Scratch
				config{k, 8}.with(func() {
					s.Sgemm(cl.tA, cl.tB, cl.m, cl.n, cl.k, cl.alpha, o.a, o.lda, o.b, o.ldb, cl.beta, c, o.ldc)
					if a := testing.AllocsPerRun(2, func() {
						s.Sgemm(cl.tA, cl.tB, cl.m, cl.n, cl.k, cl.alpha, o.a, o.lda, o.b, o.ldb, 0, o.c, o.ldc)
					}); a != 0 {
						t.Errorf("%v: Scratch.Sgemm allocates %v times", cl, a)
					}
				})
				for j := range c {
					if math.Float32bits(c[j]) != math.Float32bits(first[j]) {
						t.Fatalf("%v: Scratch.Sgemm: C[%d] = %v, Sgemm gave %v", cl, j, c[j], first[j])
					}
				}
			}
		})
	}
}

// TestTranspose checks the packing transpose, whose assembly handles 8- and
// 4-row groups and multiples of 8 columns, against the definition.
func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for rows := 1; rows <= 21; rows++ {
		for _, n := range []int{1, 7, 8, 9, 16, 31, 64} {
			lds, ldd := n+rng.IntN(3), rows+rng.IntN(3)
			src := randSlice(rng, (rows-1)*lds+n)
			dst := make([]float32, (n-1)*ldd+rows)
			for i := range dst {
				dst[i] = -1
			}
			transpose(dst, ldd, src, lds, rows, n)
			for q := range n {
				for i := range ldd {
					k := q*ldd + i
					if k >= len(dst) {
						break
					}
					want := float32(-1) // padding untouched
					if i < rows {
						want = src[i*lds+q]
					}
					if dst[k] != want {
						t.Fatalf("rows %d n %d: dst[%d*%d+%d] = %v, want %v", rows, n, q, ldd, i, dst[k], want)
					}
				}
			}
		}
	}
}

package gemm

import (
	"runtime"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Panic messages; the same strings as gonum.org/v1/gonum/blas/gonum.
const (
	badTranspose = "blas: illegal transpose"
	mLT0         = "blas: m < 0"
	nLT0         = "blas: n < 0"
	kLT0         = "blas: k < 0"
	badLdA       = "blas: bad leading dimension of A"
	badLdB       = "blas: bad leading dimension of B"
	badLdC       = "blas: bad leading dimension of C"
	shortA       = "blas: insufficient length of a"
	shortB       = "blas: insufficient length of b"
	shortC       = "blas: insufficient length of c"
)

// threads is the goroutine budget of one Sgemm call; 0 means
// runtime.GOMAXPROCS(0) at the time of the call.
var threads atomic.Int64

// SetThreads sets how many goroutines one Sgemm call may use. n < 1 restores
// the default, runtime.GOMAXPROCS(0) read at each call.
// It is safe to call concurrently with Sgemm; calls already running keep the
// value they started with.
func SetThreads(n int) {
	if n < 1 {
		n = 0
	}
	threads.Store(int64(n))
}

// Threads returns how many goroutines one Sgemm call may use.
func Threads() int {
	if n := threads.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// Kernel returns the name of the micro-kernel in use: "avx512", "avx2" or
// "generic" (see SetKernel, Kernels).
func Kernel() string { return active.Load().name }

// Implementation returns gonum's native BLAS with Sgemm replaced by this
// package's, for blas32.Use(gemm.Implementation()).
func Implementation() blas.Float32 { return impl{} }

// impl is gonum's native implementation with Sgemm overridden.
type impl struct{ gonum.Implementation }

// Sgemm calls the package-level Sgemm.
func (impl) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemm performs one of the matrix-matrix operations
//
//	C = alpha * A * B + beta * C
//	C = alpha * Aᵀ * B + beta * C
//	C = alpha * A * Bᵀ + beta * C
//	C = alpha * Aᵀ * Bᵀ + beta * C
//
// where A is an m×k or k×m row-major matrix with leading dimension lda, B is
// a k×n or n×k matrix with leading dimension ldb, C is an m×n matrix with
// leading dimension ldc, and alpha and beta are scalars; tA and tB say
// whether A and B are transposed (blas.ConjTrans is the same as blas.Trans).
// When beta is zero C is overwritten and its old values, NaN included, are
// not read. The semantics, argument checks and panic messages are those of
// gonum.org/v1/gonum/blas/gonum's Sgemm.
//
// Sgemm panics if a transpose flag is illegal, m, n or k is negative, a
// leading dimension is smaller than its matrix's row length (or 1), or a
// slice is too short for its matrix.
func Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(Threads(), nil, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Scratch is the packing space of products computed on one goroutine,
// for callers that run many small products in parallel themselves (a
// convolution splitting a batch over its threads): its Sgemm runs on the
// calling goroutine alone, whatever Threads says, in buffers that stay
// with the Scratch, so once they have grown to the largest product a call
// allocates nothing (Sgemm's pooled buffers can move between goroutines).
// The zero value is ready to use; a Scratch must not be used by two
// goroutines at once.
type Scratch struct{ buf buffers }

// Sgemm is the package-level Sgemm computed on the calling goroutine in
// s's buffers. Its results are bit-identical to Sgemm's (see "Threads").
func (s *Scratch) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(1, &s.buf, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm checks the arguments of Sgemm and computes on at most threads
// goroutines, in buf if it is not nil (then threads must be 1).
func sgemm(threads int, buf *buffers, tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	switch tA {
	default:
		panic(badTranspose)
	case blas.NoTrans, blas.Trans, blas.ConjTrans:
	}
	switch tB {
	default:
		panic(badTranspose)
	case blas.NoTrans, blas.Trans, blas.ConjTrans:
	}
	if m < 0 {
		panic(mLT0)
	}
	if n < 0 {
		panic(nLT0)
	}
	if k < 0 {
		panic(kLT0)
	}
	aTrans := tA != blas.NoTrans
	bTrans := tB != blas.NoTrans
	if aTrans {
		if lda < max(1, m) {
			panic(badLdA)
		}
	} else if lda < max(1, k) {
		panic(badLdA)
	}
	if bTrans {
		if ldb < max(1, k) {
			panic(badLdB)
		}
	} else if ldb < max(1, n) {
		panic(badLdB)
	}
	if ldc < max(1, n) {
		panic(badLdC)
	}
	if m == 0 || n == 0 {
		return
	}

	if aTrans {
		if len(a) < (k-1)*lda+m {
			panic(shortA)
		}
	} else if len(a) < (m-1)*lda+k {
		panic(shortA)
	}
	if bTrans {
		if len(b) < (n-1)*ldb+k {
			panic(shortB)
		}
	} else if len(b) < (k-1)*ldb+n {
		panic(shortB)
	}
	if len(c) < (m-1)*ldc+n {
		panic(shortC)
	}

	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	p := problem{
		aTrans: aTrans, bTrans: bTrans,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
	}
	run(active.Load(), &p, threads, buf)
}

// scale sets C = beta*C for the m×n matrix C; beta == 0 overwrites C with
// zeros without reading it.
func scale(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

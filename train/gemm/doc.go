// Package gemm is the single seam through which every matrix product of the
// trainer passes: a float32 general matrix multiply with exactly the
// semantics of gonum's blas32 Sgemm (row-major, gonum.org/v1/gonum/blas),
// made fast with cache blocking and assembly micro-kernels.
//
//	C = alpha * op(A) * op(B) + beta * C     op(X) = X or Xᵀ
//
// Call Sgemm directly, or install it under gonum's mat and blas32 packages:
//
//	blas32.Use(gemm.Implementation()) // gonum's native BLAS, our Sgemm
//
//	// forward pass of a layer with W stored [out, in] = [800, 784]:
//	// Y(128×800) = X(128×784)·Wᵀ
//	gemm.Sgemm(blas.NoTrans, blas.Trans, 128, 800, 784, 1, x, 784, w, 784, 0, y, 800)
//
// # Sections
//
//   - Products: Sgemm, Implementation; Scratch (products on one goroutine in buffers of its own).
//   - Tuning and reporting: SetThreads, Threads, SetKernel, Kernels, Kernel.
//
// # Algorithm
//
// The driver (driver.go) is GotoBLAS/BLIS blocking: for each nc-column block
// of op(B) and kc-deep slice of the inner dimension it packs B into kc×nr
// micro-panels (pack.go), for each mc-row block of op(A) it packs A into
// mr×kc micro-panels, and a register-tiled micro-kernel computes each mr×nr
// tile of C from one A and one B micro-panel: a B micro-panel stays in L1
// while the A block streams from L2. Packing absorbs the transposes, so all
// four tA/tB cases run the same kernel; transposing packs use AVX 8×8 and
// 4×8 shuffles (transpose_amd64.s). Packing buffers are reused through a
// sync.Pool, so a single-threaded call does not allocate (a parallel one
// allocates a few small objects for its goroutines).
//
// Edge tiles (m or n not a multiple of the tile) are computed into a
// scratch tile and merged. A product with fewer than nr columns, such as a
// 10-class output layer, is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ when that fills
// the tiles better.
//
// # Kernels
//
// The micro-kernels are generated Plan 9 assembly (asm_gen.go writes
// kernel_amd64.s); each keeps the C tile in registers, loads a row of the B
// micro-panel, broadcasts the A values one by one and issues VFMADD231PS:
//
//	"avx512"  12×32 tile, 24 zmm accumulators; mr, nr, mc, kc, nc = 12, 32, 144, 320, 4096.
//	          Used when the CPU has AVX-512F (golang.org/x/sys/cpu).
//	"avx2"    6×16 tile, 12 ymm accumulators; 6, 16, 144, 256, 4096.
//	          Used with AVX2 and FMA but no AVX-512.
//	"generic" 4×4 tile in Go; 4, 4, 128, 256, 2048. Used elsewhere (arm64
//	          and every non-amd64 GOARCH, or the purego build tag).
//
// SetKernel forces one of the kernels this CPU supports (an unknown or
// unsupported name is an error and changes nothing; "" restores the best);
// Kernels lists the supported ones, best first, and Kernel reports the one
// in use. The package reads no environment: the distill command reads
// DISTILL_GEMM=avx512|avx2|generic and calls SetKernel with it.
//
// # Threads
//
// A call uses up to Threads() goroutines (default runtime.GOMAXPROCS(0)),
// one per block of a grid over C whose block edges are multiples of the
// register tile, and only when each goroutine gets at least 16 Mflop. Each
// element of C is computed by one goroutine with the same k order whatever
// the thread count, so results are bit-for-bit reproducible; tests check
// 1, 2, 3 and 8 threads agree.
//
// # Performance
//
// Measured on the 2-core AMD EPYC (Zen 5, AVX-512) of the development
// machines with go test -bench 'Sgemm|Kernel' -benchtime 0.2s -count 6.
// That machine is shared: the second core was busy with other work nearly
// all the time, so wall-clock numbers are noisy and two threads rarely beat
// one. The benchmark therefore also reports GFLOP per CPU-second, which
// does not count time spent descheduled. Medians, 2·m·n·k flops per call,
// trainer shapes at batch 128 (pass/m×k×n, train.Linear's W [out, in]):
//
//	GFLOP per CPU-second  avx512 t1   t2   avx2 t1   t2   generic t1   gonum   avx512 t1 / gonum
//	fwd /128×784×800          202    195       104    102        4.3    16.8    12×
//	fwd /128×800×800          203    199       106    104        4.2    15.9    13×
//	fwd /128×800×10            82     84        35     33        3.5    28.6    2.9×
//	dX  /128×10×800           159    159        98     98        4.0     9.3    17×
//	dX  /128×800×800          194    202       106     99        4.2    15.1    13×
//	dW  /800×128×784          211    202       108    104        4.2    14.6    14×
//	dW  /800×128×800          204    198       104    101        4.2    14.5    14×
//	dW  /10×128×800            97     96        67     67        3.0    13.3    7.3×
//	fwd /128×784×128          194    148       100     87        4.4    17.1    11×
//	fwd /128×128×10            72     72        36     33        3.6    22.1    3.2×
//	dX  /128×10×128           132    131        83     83        3.9    10.3    13×
//	dW  /128×128×784          192    151       107     95        4.3    15.5    12×
//	dW  /10×128×128            89     91        61     61        3.1    20.0    4.5×
//
// Wall-clock medians of the same run for the large shapes: avx512 131–219
// GFLOP/s on one thread and 195–203 on two, gonum's native Sgemm (which
// uses both cores) 7–15. One training step of 784-800-800-10 (819 Mflop of
// products) takes about 4.1 ms of one core in Sgemm, ≈31k samples/s before
// the rest of the step; 784-128-10 (52 Mflop) about 0.28 ms.
//
// The kernel alone (BenchmarkKernel, L1-resident panels) runs at ≈240
// GFLOP/s with AVX-512 and ≈125 with AVX2 on an idle core of this CPU; the
// gap to a whole Sgemm is packing (≈10%), tile edges and C traffic. The
// generic kernel is portable Go for arm64 (where its 16 accumulators fit
// the registers and compile to FMADDS) and other GOARCH, not a fast path on
// amd64.
package gemm

//go:generate go run asm_gen.go

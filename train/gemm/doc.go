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
//	// forward pass of a layer, W stored in×out: Y(128×800) = X(128×784)·W(784×800)
//	gemm.Sgemm(blas.NoTrans, blas.NoTrans, 128, 800, 784, 1, x, 784, w, 800, 0, y, 800)
//
// # Sections
//
//   - Products: Sgemm, Implementation.
//   - Tuning and reporting: SetThreads, Threads, Kernel.
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
// sync.Pool, so a call does not allocate.
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
// The environment variable DISTILL_GEMM=avx512|avx2|generic forces one of
// the kernels this CPU supports (an unsupported or unknown name is
// ignored); Kernel reports the one in use.
//
// # Threads
//
// A call uses up to Threads() goroutines (default runtime.GOMAXPROCS(0)),
// one per block of a grid over C whose block edges are multiples of the
// register tile, and only when each goroutine gets at least 4 Mflop. Each
// element of C is computed by one goroutine with the same k order whatever
// the thread count, so results are bit-for-bit reproducible; tests check
// 1, 2, 3 and 8 threads agree.
//
// # Performance
//
// The kernel alone (BenchmarkKernel, L1-resident panels) runs at ≈240
// GFLOP/s with AVX-512 and ≈125 with AVX2 on this CPU.
package gemm

//go:generate go run asm_gen.go

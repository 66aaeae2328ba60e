package train

import (
	"github.com/distill-ml/distill/train/gemm"
	"gonum.org/v1/gonum/blas"
)

// sgemm is the one seam through which every matrix product of this package
// goes:
//
//	C = alpha · op(A) · op(B) + beta · C,  op(X) = X or Xᵀ
//
// with row-major A, B, C of leading dimensions lda, ldb, ldc, the contract
// of gonum's blas32 Sgemm. It calls gemm.Sgemm (AVX-512/AVX2 kernels,
// threads set by SetThreads). Layers keep weights [out, in] as PyTorch does
// and use
//
//	Y  = X · Wᵀ     sgemm(NoTrans, Trans, ...)
//	dX = dY · W     sgemm(NoTrans, NoTrans, ...)
//	dW = dYᵀ · X    sgemm(Trans, NoTrans, ...)
func sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

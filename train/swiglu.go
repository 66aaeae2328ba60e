package train

import (
	"fmt"

	"github.com/distill-ml/distill/internal/fastmath"
)

// SwiGLU is the gated unit of Llama's MLP (Shazeer 2020, "GLU Variants
// Improve Transformer"; Hugging Face's LlamaMLP between its projections):
// an input row is [g: Size | u: Size], the outputs of a fused
// gate_proj/up_proj, and the output row is
//
//	y = silu(g)·u,  silu(g) = g·σ(g),  σ(g) = 1/(1 + e^−g)
//
// Backward, with silu'(g) = σ(g)·(1 + g·(1 − σ(g))):
//
//	dg = dy·u·silu'(g),  du = dy·silu(g)
type SwiGLU struct {
	Size int
	x    Mat
	sig  []float32 // σ(g) of the last Forward, [rows, Size]
	dx   Mat       // Backward's
	dy   Mat
	fwd  func(lo, hi int)
	bwd  func(lo, hi int)
	out  Mat
}

// NewSwiGLU returns the gated unit of an MLP of size hidden values.
func NewSwiGLU(size int) *SwiGLU {
	if size < 1 {
		panic(fmt.Sprintf("train: SwiGLU: size %d", size))
	}
	l := &SwiGLU{Size: size}
	l.fwd, l.bwd = l.forwardRows, l.backwardRows
	return l
}

func (l *SwiGLU) InSize() int      { return 2 * l.Size }
func (l *SwiGLU) OutSize() int     { return l.Size }
func (l *SwiGLU) Params() []*Param { return nil }

// swigluGrain is the number of rows below which SwiGLU does not split
// its rows over threads.
const swigluGrain = 64

// Forward computes dst = silu(g)·u; dst must not be x. σ(g) is
// 1/(1 + e^−g) with e^−g from fastmath.ExpSum (within 2 ulp), kept for
// Backward; rows are split over threads.
func (l *SwiGLU) Forward(dst, x Mat) {
	checkShapes("SwiGLU", dst, x, 2*l.Size, l.Size)
	l.x, l.out = x, dst
	l.sig = grow(l.sig, x.Rows*l.Size)
	par().run(x.Rows, swigluGrain, l.fwd)
}

func (l *SwiGLU) forwardRows(lo, hi int) {
	d, x := l.Size, l.x
	for r := lo; r < hi; r++ {
		g, u, y := x.Data[r*2*d:r*2*d+d], x.Data[r*2*d+d:(r+1)*2*d], l.out.Data[r*d:(r+1)*d]
		sig := l.sig[r*d : (r+1)*d]
		fastmath.ExpSum(sig, g, -1, 0) // e^−g
		for j, gv := range g {
			s := 1 / (1 + sig[j])
			sig[j] = s
			y[j] = gv * s * u[j]
		}
	}
}

// Backward computes dx from dy (SwiGLU has no parameters; with dx.Data
// nil it does nothing).
func (l *SwiGLU) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	checkShapes("SwiGLU", dy, l.x, 2*l.Size, l.Size)
	l.dx, l.dy = dx, dy
	par().run(l.x.Rows, swigluGrain, l.bwd)
}

func (l *SwiGLU) backwardRows(lo, hi int) {
	d, x, dx, dy := l.Size, l.x, l.dx, l.dy
	for r := lo; r < hi; r++ {
		g, u := x.Data[r*2*d:r*2*d+d], x.Data[r*2*d+d:(r+1)*2*d]
		dg, du, dyr := dx.Data[r*2*d:r*2*d+d], dx.Data[r*2*d+d:(r+1)*2*d], dy.Data[r*d:(r+1)*d]
		sig := l.sig[r*d : (r+1)*d]
		for j, gv := range g {
			s := sig[j]
			dg[j] = dyr[j] * u[j] * s * (1 + gv*(1-s))
			du[j] = dyr[j] * gv * s
		}
	}
}

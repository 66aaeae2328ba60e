package train

import (
	"fmt"
	"math"
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
}

// NewSwiGLU returns the gated unit of an MLP of size hidden values.
func NewSwiGLU(size int) *SwiGLU {
	if size < 1 {
		panic(fmt.Sprintf("train: SwiGLU: size %d", size))
	}
	return &SwiGLU{Size: size}
}

func (l *SwiGLU) InSize() int      { return 2 * l.Size }
func (l *SwiGLU) OutSize() int     { return l.Size }
func (l *SwiGLU) Params() []*Param { return nil }

// Forward computes dst = silu(g)·u; dst must not be x.
func (l *SwiGLU) Forward(dst, x Mat) {
	checkShapes("SwiGLU", dst, x, 2*l.Size, l.Size)
	l.x = x
	d := l.Size
	for r := range x.Rows {
		g, u, y := x.Data[r*2*d:r*2*d+d], x.Data[r*2*d+d:(r+1)*2*d], dst.Data[r*d:(r+1)*d]
		for j, gv := range g {
			y[j] = gv * sigmoid32(gv) * u[j]
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
	d := l.Size
	for r := range l.x.Rows {
		g, u := l.x.Data[r*2*d:r*2*d+d], l.x.Data[r*2*d+d:(r+1)*2*d]
		dg, du, dyr := dx.Data[r*2*d:r*2*d+d], dx.Data[r*2*d+d:(r+1)*2*d], dy.Data[r*d:(r+1)*d]
		for j, gv := range g {
			s := sigmoid32(gv)
			dg[j] = dyr[j] * u[j] * s * (1 + gv*(1-s))
			du[j] = dyr[j] * gv * s
		}
	}
}

// sigmoid32 returns 1/(1 + e^−x) in float64 arithmetic.
func sigmoid32(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

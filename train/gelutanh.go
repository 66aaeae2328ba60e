package train

import (
	"fmt"

	"github.com/distill-ml/distill/internal/fastmath"
)

// GELUTanh is the tanh approximation of GELU that GPT-2 uses (Hendrycks &
// Gimpel 2016, "Gaussian Error Linear Units", §2; GPT-2's model.py gelu;
// torch.nn.GELU(approximate='tanh'); Hugging Face's "gelu_pytorch_tanh",
// equal to its "gelu_new"), elementwise over rows of Size values:
//
//	y = ½·x·(1 + tanh u),  u = √(2/π)·(x + 0.044715·x³)
//
// Backward, with u' = √(2/π)·(1 + 3·0.044715·x²):
//
//	dx = dy·(½·(1 + tanh u) + ½·x·(1 − tanh² u)·u')
//
// tanh u is computed as sign(u)·(1 − e)/(1 + e), e = exp(−2|u|) in
// float32 (fastmath.Exp32, within 2 ulp): within 1.5e-7 of tanh u
// (TestGELUTanhForward). It differs from the erf form (GELU, the MLP
// students' activation) by at most 4.7e-4, near x = ±2.7.
type GELUTanh struct {
	Size int
	x    Mat
}

// NewGELUTanh returns the activation of an MLP of size hidden values.
func NewGELUTanh(size int) *GELUTanh {
	if size < 1 {
		panic(fmt.Sprintf("train: GELUTanh: size %d", size))
	}
	return &GELUTanh{Size: size}
}

func (l *GELUTanh) InSize() int      { return l.Size }
func (l *GELUTanh) OutSize() int     { return l.Size }
func (l *GELUTanh) Params() []*Param { return nil }

const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// tanh32 returns tanh(u) from fastmath.Exp32.
func tanh32(u float32) float32 {
	a := u
	if a < 0 {
		a = -a
	}
	e := fastmath.Exp32(-2 * a)
	th := (1 - e) / (1 + e)
	if u < 0 {
		return -th
	}
	return th
}

// Forward computes dst = gelu(x); dst must not be x (Backward reads x).
func (l *GELUTanh) Forward(dst, x Mat) {
	checkShapes("GELUTanh", dst, x, l.Size, l.Size)
	l.x = x
	n := x.Rows * l.Size
	y := dst.Data[:n]
	for i, v := range x.Data[:n] {
		y[i] = 0.5 * v * (1 + tanh32(geluC*(v+geluA*v*v*v)))
	}
}

// Backward computes dx from dy (GELUTanh has no parameters; with dx.Data
// nil it does nothing). dx may be dy.
func (l *GELUTanh) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	checkShapes("GELUTanh", dy, l.x, l.Size, l.Size)
	n := l.x.Rows * l.Size
	d := dx.Data[:n]
	for i, v := range l.x.Data[:n] {
		th := tanh32(geluC * (v + geluA*v*v*v))
		d[i] = dy.Data[i] * (0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*geluA*v*v))
	}
}

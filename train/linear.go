package train

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// Linear is a fully connected layer with an optional fused activation, as
// torch.nn.Linear followed by the activation:
//
//	z = x·Wᵀ + b      x [n, In], W [Out, In], b [Out], z [n, Out]
//	y = act(z)
//
// Backward, with g = dy·act'(z):
//
//	dW = gᵀ·x   [Out, In]
//	db = Σ_rows g   [Out]
//	dx = g·W    [n, In]
//
// The bias add and the activation run in one pass over z; the activation
// derivative and the bias gradient in one pass over dy.
type Linear struct {
	In, Out int
	Act     Activation
	W, B    *Param // "NAME.weight" [Out, In], "NAME.bias" [Out]

	x, y Mat       // input and output of the last Forward
	dy   Mat       // gradient being propagated by Backward
	z    []float32 // pre-activation, kept only when Act needs it (GELU)

	fwd, bwd func(lo, hi int) // bound once, so parallel passes allocate nothing
}

// NewLinear returns a Linear layer whose parameters are named name+".weight"
// and name+".bias"; their storage comes from NewParams.
func NewLinear(name string, in, out int, act Activation) *Linear {
	l := &Linear{In: in, Out: out, Act: act.norm(),
		W: &Param{Name: name + ".weight", Shape: []int{out, in}},
		B: &Param{Name: name + ".bias", Shape: []int{out}},
	}
	l.fwd, l.bwd = l.forwardRows, l.backwardCols
	return l
}

func (l *Linear) InSize() int      { return l.In }
func (l *Linear) OutSize() int     { return l.Out }
func (l *Linear) Params() []*Param { return []*Param{l.W, l.B} }

// Init sets W and b uniformly in ±1/√In, torch.nn.Linear's default
// (kaiming_uniform_ with a = √5 for W; the same bound for b).
func (l *Linear) Init(rng *rand.Rand) {
	bound := 1 / math.Sqrt(float64(l.In))
	for i := range l.W.Data {
		l.W.Data[i] = float32((2*rng.Float64() - 1) * bound)
	}
	for i := range l.B.Data {
		l.B.Data[i] = float32((2*rng.Float64() - 1) * bound)
	}
}

// Forward computes dst = act(x·Wᵀ + b). It panics on a shape mismatch.
func (l *Linear) Forward(dst, x Mat) {
	checkShapes("Linear", dst, x, l.In, l.Out)
	n := x.Rows
	l.x, l.y = x, dst
	if n == 0 {
		return
	}
	out := dst.Data
	if l.Act.needsInput() {
		l.z = grow(l.z, n*l.Out)
		out = l.z
	}
	sgemm(blas.NoTrans, blas.Trans, n, l.Out, l.In, 1, x.Data, l.In, l.W.Data, l.In, 0, out, l.Out)
	par().run(n, max(1, 16384/l.Out), l.fwd)
}

// forwardRows adds the bias and applies the activation to rows [lo, hi).
func (l *Linear) forwardRows(lo, hi int) {
	b := l.B.Data
	for r := lo; r < hi; r++ {
		y := l.y.Data[r*l.Out : (r+1)*l.Out]
		switch l.Act {
		case Identity:
			biasAdd(y, b)
		case ReLU:
			biasReLU(y, b)
		default:
			z := y
			if l.Act.needsInput() {
				z = l.z[r*l.Out : (r+1)*l.Out]
			}
			for j := range z {
				z[j] += b[j]
			}
			l.Act.apply(y, z)
		}
	}
}

// Backward computes dx, dW and db from dy (overwritten with dy·act'(z)).
func (l *Linear) Backward(dx, dy Mat) {
	n := dy.Rows
	if dy.Cols != l.Out || n != l.x.Rows || (dx.Data != nil && (dx.Cols != l.In || dx.Rows != n)) {
		panic("train: Linear: Backward shapes do not match Forward")
	}
	if n == 0 {
		clear(l.W.Grad)
		clear(l.B.Grad)
		return
	}
	l.dy = dy
	par().run(l.Out, max(1, 16384/n), l.bwd)
	sgemm(blas.Trans, blas.NoTrans, l.Out, l.In, n, 1, dy.Data, l.Out, l.x.Data, l.In, 0, l.W.Grad, l.In)
	if dx.Data != nil {
		sgemm(blas.NoTrans, blas.NoTrans, n, l.In, l.Out, 1, dy.Data, l.Out, l.W.Data, l.In, 0, dx.Data, l.In)
	}
}

// backwardCols multiplies dy by act' and sums the bias gradient for
// columns [lo, hi) of every row.
func (l *Linear) backwardCols(lo, hi int) {
	n, out := l.dy.Rows, l.Out
	db := l.B.Grad[lo:hi]
	clear(db)
	for r := range n {
		d := l.dy.Data[r*out+lo : r*out+hi]
		switch l.Act {
		case Identity:
			addTo(db, d)
		case ReLU:
			reluBackSum(d, l.y.Data[r*out+lo:r*out+hi], db)
		default:
			var z []float32
			if l.z != nil {
				z = l.z[r*out+lo : r*out+hi]
			}
			l.Act.backward(d, l.y.Data[r*out+lo:r*out+hi], z)
			addTo(db, d)
		}
	}
}

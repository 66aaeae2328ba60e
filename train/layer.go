package train

import (
	"fmt"
	"math/rand/v2"
)

// Mat is a batch of per-sample vectors: Rows samples of Cols float32 values,
// row-major, sample i at Data[i*Cols:(i+1)*Cols]. A layer whose samples are
// tensors (a convolution's [C, H, W]) sees them flattened in row-major order.
type Mat struct {
	Rows, Cols int
	Data       []float32 // len(Data) >= Rows*Cols
}

// Row returns sample i.
func (m Mat) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// Param is one named parameter tensor, a view into the flat slices of a
// Params set.
type Param struct {
	Name  string    // PyTorch state_dict key, e.g. "fc1.weight"
	Shape []int     // e.g. [out, in] for a Linear weight
	Data  []float32 // values, row-major; len = product of Shape
	Grad  []float32 // dLoss/dData of the last Backward

	set *Params // the storage NewParams assigned, and the offset in it
	off int
}

// Size returns the number of values, the product of Shape.
func (p *Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Params is a set of parameters stored in one flat slice with named views
// (llm.c's malloc_and_point_parameters): Data and Grad hold every value,
// List[i].Data and .Grad are subslices of them in order. The optimizer is
// one loop over Data and Grad.
type Params struct {
	Data, Grad []float32
	List       []*Param
}

// NewParams allocates zeroed storage for list and points every Param's Data
// and Grad into it, in list order.
func NewParams(list ...*Param) *Params {
	n := 0
	for _, p := range list {
		n += p.Size()
	}
	ps := &Params{Data: make([]float32, n), Grad: make([]float32, n), List: list}
	off := 0
	for _, p := range list {
		sz := p.Size()
		p.Data = ps.Data[off : off+sz : off+sz]
		p.Grad = ps.Grad[off : off+sz : off+sz]
		p.set, p.off = ps, off
		off += sz
	}
	return ps
}

// Lookup returns the parameter named name, or nil.
func (ps *Params) Lookup(name string) *Param {
	for _, p := range ps.List {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Layer is one differentiable step of a student. Forward and Backward work
// on batches of samples of InSize and OutSize values; new kinds of layer
// (convolution, pooling, attention) join by implementing it.
//
// Forward computes dst = f(x) for x.Rows samples and keeps references to x
// and dst (and internal buffers) for Backward: the caller must not modify
// them in between. Backward takes dy = dLoss/d(dst) of the last Forward,
// writes dx = dLoss/dx (skipped when dx.Data is nil) and overwrites (does
// not accumulate) the gradients of the layer's parameters. It may overwrite
// dy. Both panic if the shapes do not match (a programmer error).
type Layer interface {
	InSize() int
	OutSize() int
	// Params returns the layer's parameters; their storage is assigned
	// by NewParams before the first Forward.
	Params() []*Param
	Forward(dst, x Mat)
	Backward(dx, dy Mat)
}

// Stochastic is a layer that behaves differently while training, such as
// Dropout. SetTraining switches it; rng is its source of randomness while
// training.
type Stochastic interface {
	Layer
	SetTraining(training bool, rng *rand.Rand)
}

// checkShapes panics unless x is rows×in and dst rows×out with enough data.
func checkShapes(name string, dst, x Mat, in, out int) {
	if x.Cols != in || dst.Cols != out || dst.Rows != x.Rows || len(x.Data) < x.Rows*in || len(dst.Data) < dst.Rows*out {
		panic(fmt.Sprintf("train: %s: shapes %d×%d → %d×%d, want n×%d → n×%d", name, x.Rows, x.Cols, dst.Rows, dst.Cols, in, out))
	}
}

// grow returns buf resliced to n values, reallocated only if its capacity
// is too small, so buffers settle after the first batch.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

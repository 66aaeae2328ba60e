package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
)

// lmBuilder emits the inference forward of a train.Transformer (see
// buildLM for the graph).
type lmBuilder struct {
	*builder
	m     *train.Transformer
	cache bool
	ints  map[string]string // shared int64 constants by their text
	rot   string            // the rotate_half matrix R [hd, hd]
}

// int64s adds an INT64 initializer.
func (b *lmBuilder) int64s(name string, dims []int64, v []int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return b.init(name, onnxpb.TensorProto_INT64, dims, raw)
}

// axes returns a shared 1-D INT64 constant holding v, named after it
// (const/axes_1_2): the axes of Unsqueeze, ReduceSum and (opset ≥ 18)
// ReduceMean.
func (b *lmBuilder) axes(v ...int64) string {
	key := fmt.Sprint("axes", v)
	if n, ok := b.ints[key]; ok {
		return n
	}
	name := "const/axes"
	for _, a := range v {
		name += fmt.Sprintf("_%d", a)
	}
	n := b.int64s(name, []int64{int64(len(v))}, v)
	b.ints[key] = n
	return n
}

// scalarInt returns a shared rank-0 INT64 constant.
func (b *lmBuilder) scalarInt(v int64) string {
	key := fmt.Sprint("int", v)
	if n, ok := b.ints[key]; ok {
		return n
	}
	n := b.int64s(fmt.Sprintf("const/int%d", v), []int64{}, []int64{v})
	b.ints[key] = n
	return n
}

func (b *lmBuilder) unsqueeze(scope, x string, axes ...int64) string {
	return b.op(scope, "Unsqueeze", "", []string{x, b.axes(axes...)})
}

// reduceMean is ReduceMean over the last axis, keeping it: the axes are an
// attribute up to opset 17 and an input from 18.
func (b *lmBuilder) reduceMean(scope, x string) string {
	if b.opset >= 18 {
		return b.op(scope, "ReduceMean", "", []string{x, b.axes(-1)}, attrInt("keepdims", 1))
	}
	return b.op(scope, "ReduceMean", "", []string{x}, attrInts("axes", -1), attrInt("keepdims", 1))
}

// matrix is one weight matrix of the transformer for the graph: w holds
// Out×In values in PyTorch's [out, in] layout (a Linear's y = x·wᵀ),
// stored in the graph re-laid out by perm (stored[k] = w[perm[k]]) with
// dims; scale is the broadcast shape of the per-output-channel int8
// scales (Out values in output order).
type matrix struct {
	name    string
	w       []float32
	out, in int
	perm    []int
	dims    []int64
	scale   []int64
	float   bool // kept float32 under Quantize (a table, not a product)
}

// headsT returns the permutation that stores w [heads·c, in] as
// [heads][in][c]: each head's block of c output rows transposed, so that
// a MatMul of x [.., in] with it gives one [.., c] slice per head
// (heads = 1: the plain transpose [in, out]).
func headsT(out, in, heads int) []int {
	c := out / heads
	perm := make([]int, 0, out*in)
	for h := range heads {
		for i := range in {
			for j := range c {
				perm = append(perm, (h*c+j)*in+i)
			}
		}
	}
	return perm
}

// weight adds mt in the configured format and returns the name of a
// float32 tensor holding its stored layout:
//
//	f32:  the initializer itself
//	f16:  Cast(FLOAT16 initializer → float)
//	int8: Cast(INT8 initializer → float) · scale, q = round(w/scale) per
//	      output channel (QuantizeWeights' rule), scale FLOAT in mt.scale
//
// The Cast and Mul of initializers are constants a runtime folds when it
// loads the model (onnxruntime does), so a call runs float32 MatMuls.
func (b *lmBuilder) weight(mt matrix) (string, error) {
	stored := func(v []float32) []float32 {
		if mt.perm == nil {
			return v
		}
		s := make([]float32, len(mt.perm))
		for k, p := range mt.perm {
			s[k] = v[p]
		}
		return s
	}
	switch {
	case b.o.Quantize == Int8 && !mt.float:
		q, scale := QuantizeWeights(mt.w, mt.out, mt.in) // q [in, out] + zero point
		qo := make([]float32, len(mt.w))                 // back to [out, in], as integers
		for o := range mt.out {
			for i := range mt.in {
				qo[o*mt.in+i] = float32(int(q[i*mt.out+o]) - WeightZeroPoint)
			}
		}
		raw := make([]byte, len(qo))
		for k, v := range stored(qo) {
			raw[k] = byte(int8(v))
		}
		qn := b.init(mt.name+"_quantized", onnxpb.TensorProto_INT8, mt.dims, raw)
		sn := b.float32s(mt.name+"_scale", mt.scale, scale)
		w := b.op(mt.name, "Cast", "", []string{qn}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
		return b.op(mt.name, "Mul", "", []string{w, sn}), nil
	case b.o.Dtype == F16:
		for j, v := range mt.w {
			if math.Abs(float64(v)) > 65504 {
				return "", fmt.Errorf("%w: %s[%d] = %g is beyond float16's range (±65504); export as f32", ErrUnsupported, mt.name, j, v)
			}
		}
		w := b.float16s(mt.name, mt.dims, stored(mt.w))
		return b.op(mt.name, "Cast", "", []string{w}, attrInt("to", int64(onnxpb.TensorProto_FLOAT))), nil
	}
	return b.float32s(mt.name, mt.dims, stored(mt.w)), nil
}

// norm emits the normalization n of x [.., D] (RMSNorm or LayerNorm, gains
// and biases float32 in every format):
//
//	RMSNorm:   x / Sqrt(ReduceMean(Pow(x, 2)) + ε) · γ   the pattern onnxruntime fuses into one
//	                                                     SimplifiedLayerNormalization
//	LayerNorm: LayerNormalization(x, γ, β, axis −1, ε) (opset ≥ 17; below,
//	           builder.layerNorm's primitive form)
func (b *lmBuilder) norm(scope, x string, n train.Normalizer) (string, error) {
	switch n := n.(type) {
	case *train.RMSNorm:
		g := b.float32s(n.Gamma.Name, []int64{int64(n.Size)}, n.Gamma.Data)
		sq := b.op(scope, "Pow", "", []string{x, b.constant("two", 2)})
		ms := b.reduceMean(scope, sq)
		ms = b.op(scope, "Add", "", []string{ms, b.constant("rms_eps", train.RMSNormEps)})
		rms := b.op(scope, "Sqrt", "", []string{ms})
		y := b.op(scope, "Div", "", []string{x, rms})
		return b.op(scope, "Mul", "", []string{y, g}), nil
	case *train.LayerNorm:
		return b.layerNorm(scope, x, n), nil
	}
	return "", fmt.Errorf("%w: normalization %T", ErrUnsupported, n)
}

// geluTanh emits ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (train.GELUTanh):
// the Gelu op with approximate "tanh" from opset 20, else in primitive ops
// arranged as onnxruntime's FastGeluFusion matches them (its first
// formula), so that it runs as one FastGelu:
//
//	u = (√(2/π)·x)·(1 + (0.044715·x)·x),  y = (0.5·x)·(1 + tanh u)
func (b *lmBuilder) geluTanh(scope, x string) string {
	if b.opset >= 20 {
		return b.op(scope, "Gelu", "", []string{x}, attrString("approximate", "tanh"))
	}
	one := b.constant("one", 1)
	a := b.op(scope, "Mul", "", []string{x, b.constant("gelu_c", 0.044715)})
	a = b.op(scope, "Mul", "", []string{a, x})
	a = b.op(scope, "Add", "", []string{a, one})
	k := b.op(scope, "Mul", "", []string{x, b.constant("sqrt_2_over_pi", float32(math.Sqrt(2/math.Pi)))})
	t := b.op(scope, "Tanh", "", []string{b.op(scope, "Mul", "", []string{k, a})})
	t = b.op(scope, "Add", "", []string{t, one})
	h := b.op(scope, "Mul", "", []string{x, b.constant("half", 0.5)})
	return b.op(scope, "Mul", "", []string{h, t})
}

// ropeTables returns the Hugging Face RoPE tables [T, HeadDim] of the
// model, cos and sin of cat(freqs, freqs): entry (p, i) and (p, i + h)
// both hold the angle p·θ^(−2i/HeadDim), computed in float64 and rounded
// once, exactly as train.NewRoPE does.
func ropeTables(c train.TransformerConfig) (cos, sin []float32) {
	hd := c.HeadDim()
	h := hd / 2
	cos, sin = make([]float32, c.T*hd), make([]float32, c.T*hd)
	for p := range c.T {
		for i := range h {
			a := float64(p) * math.Pow(c.RoPETheta, -2*float64(i)/float64(hd))
			cv, sv := float32(math.Cos(a)), float32(math.Sin(a))
			cos[p*hd+i], cos[p*hd+h+i] = cv, cv
			sin[p*hd+i], sin[p*hd+h+i] = sv, sv
		}
	}
	return cos, sin
}

// rotateHalf returns R [hd, hd] with x·R = rotate_half(x) = cat(−x₂, x₁):
// R[i+h, i] = −1 and R[i, i+h] = 1 for i < h.
func rotateHalf(hd int) []float32 {
	h := hd / 2
	r := make([]float32, hd*hd)
	for i := range h {
		r[(i+h)*hd+i] = -1
		r[i*hd+i+h] = 1
	}
	return r
}

// rope emits x·C + (x·R)·S, the rotation of x [.., hd] by the positions
// whose cos and sin rows C and S broadcast against it.
func (b *lmBuilder) rope(scope, x, c, s string) string {
	xr := b.op(scope, "MatMul", "", []string{x, b.rot})
	xc := b.op(scope, "Mul", "", []string{x, c})
	xs := b.op(scope, "Mul", "", []string{xr, s})
	return b.op(scope, "Add", "", []string{xc, xs})
}

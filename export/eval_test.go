package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/distill-ml/distill/formats"

	"github.com/distill-ml/distill/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// tensor is a dense value of the reference evaluator: float values (also
// holding integers exactly, up to 2²⁴) with a shape.
type tensor struct {
	shape []int
	v     []float64
}

func (t tensor) size() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// evalModel runs the ONNX model in data on input x [rows, ...] with a
// straightforward float64 interpreter of exactly the ops export emits,
// following the ONNX operator definitions. It is the unit tests' reference
// for the graph's semantics, independent of onnxruntime (internal/e2e
// checks onnxruntime itself).
func evalModel(data []byte, x []float32, rows int) (map[string]tensor, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, err
	}
	g := m.GetGraph()
	env := map[string]tensor{}
	for _, t := range g.GetInitializer() {
		env[t.GetName()] = decodeInit(t)
	}
	in := g.GetInput()[0]
	shape := []int{rows}
	for _, d := range in.GetType().GetTensorType().GetShape().GetDim()[1:] {
		shape = append(shape, int(d.GetDimValue()))
	}
	xv := make([]float64, len(x))
	for i, v := range x {
		xv[i] = float64(v)
	}
	env[in.GetName()] = tensor{shape, xv}
	for _, n := range g.GetNode() {
		args := make([]tensor, len(n.GetInput()))
		for i, name := range n.GetInput() {
			t, ok := env[name]
			if !ok {
				return nil, fmt.Errorf("node %s: input %q undefined", n.GetName(), name)
			}
			args[i] = t
		}
		attr := map[string]*onnxpb.AttributeProto{}
		for _, a := range n.GetAttribute() {
			attr[a.GetName()] = a
		}
		outs, err := evalNode(n.GetOpType(), args, attr)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.GetName(), err)
		}
		for i, o := range n.GetOutput() {
			env[o] = outs[i]
		}
	}
	res := map[string]tensor{}
	for _, o := range g.GetOutput() {
		res[o.GetName()] = env[o.GetName()]
	}
	return res, nil
}

func decodeInit(t *onnxpb.TensorProto) tensor {
	shape := make([]int, len(t.GetDims()))
	for i, d := range t.GetDims() {
		shape[i] = int(d)
	}
	raw := t.GetRawData()
	var v []float64
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		for i := 0; i < len(raw); i += 4 {
			v = append(v, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))))
		}
	case onnxpb.TensorProto_FLOAT16:
		for i := 0; i < len(raw); i += 2 {
			v = append(v, float64(formats.Float16Value(binary.LittleEndian.Uint16(raw[i:]))))
		}
	case onnxpb.TensorProto_UINT8:
		for _, b := range raw {
			v = append(v, float64(b))
		}
	case onnxpb.TensorProto_INT8:
		for _, b := range raw {
			v = append(v, float64(int8(b)))
		}
	default:
		panic("decodeInit: type " + onnxpb.TensorProto_DataType(t.GetDataType()).String())
	}
	return tensor{shape, v}
}

// broadcast applies f elementwise with numpy broadcasting of b to a's
// shape (the only broadcasts export emits: b's shape a suffix of a's, with
// size-1 axes allowed).
func broadcast(a, b tensor, f func(x, y float64) float64) (tensor, error) {
	if b.size() > a.size() {
		a, b = b, a
		g := f
		f = func(x, y float64) float64 { return g(y, x) }
	}
	out := tensor{a.shape, make([]float64, len(a.v))}
	if len(b.shape) > len(a.shape) {
		return out, fmt.Errorf("broadcast %v with %v", a.shape, b.shape)
	}
	// Pad b's shape on the left, then index.
	bs := make([]int, len(a.shape))
	for i := range bs {
		bs[i] = 1
	}
	copy(bs[len(a.shape)-len(b.shape):], b.shape)
	for i, d := range bs {
		if d != 1 && d != a.shape[i] {
			return out, fmt.Errorf("broadcast %v with %v", a.shape, b.shape)
		}
	}
	idx := make([]int, len(a.shape))
	for k := range a.v {
		// b's flat index for a's multi-index idx.
		j := 0
		for i, d := range bs {
			if d != 1 {
				j = j*d + idx[i]
			}
		}
		out.v[k] = f(a.v[k], b.v[j])
		for i := len(idx) - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < a.shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out, nil
}

func unary(a tensor, f func(float64) float64) tensor {
	out := tensor{a.shape, make([]float64, len(a.v))}
	for i, v := range a.v {
		out.v[i] = f(v)
	}
	return out
}

// rows2 views t as [rows, cols] over its last axis.
func rows2(t tensor) (rows, cols int) {
	cols = t.shape[len(t.shape)-1]
	return t.size() / cols, cols
}

func evalNode(op string, a []tensor, attr map[string]*onnxpb.AttributeProto) ([]tensor, error) {
	one := func(t tensor, err error) ([]tensor, error) { return []tensor{t}, err }
	switch op {
	case "Flatten":
		return one(tensor{[]int{a[0].shape[0], a[0].size() / a[0].shape[0]}, a[0].v}, nil)
	case "Add":
		return one(broadcast(a[0], a[1], func(x, y float64) float64 { return x + y }))
	case "Sub":
		return one(broadcast(a[0], a[1], func(x, y float64) float64 { return x - y }))
	case "Mul":
		return one(broadcast(a[0], a[1], func(x, y float64) float64 { return x * y }))
	case "Div":
		return one(broadcast(a[0], a[1], func(x, y float64) float64 { return x / y }))
	case "Relu":
		return one(unary(a[0], func(x float64) float64 { return max(x, 0) }), nil)
	case "Tanh":
		return one(unary(a[0], math.Tanh), nil)
	case "Erf":
		return one(unary(a[0], math.Erf), nil)
	case "Sqrt":
		return one(unary(a[0], math.Sqrt), nil)
	case "Cast":
		return one(a[0], nil) // values are exact in float64 either way
	case "Gelu":
		return one(unary(a[0], func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }), nil)
	case "Gemm", "MatMulInteger":
		x, w := a[0], a[1]
		n, k := x.shape[0], x.shape[1]
		var m int
		transB := attr["transB"] != nil && attr["transB"].GetI() == 1
		if transB {
			m = w.shape[0]
		} else {
			m = w.shape[1]
		}
		var za, zb float64
		if op == "MatMulInteger" {
			za, zb = a[2].v[0], a[3].v[0]
		}
		out := tensor{[]int{n, m}, make([]float64, n*m)}
		for r := range n {
			for c := range m {
				var s float64
				for i := range k {
					wv := w.v[i*m+c]
					if transB {
						wv = w.v[c*k+i]
					}
					s += (x.v[r*k+i] - za) * (wv - zb)
				}
				if op == "Gemm" {
					s += a[2].v[c]
				}
				out.v[r*m+c] = s
			}
		}
		return one(out, nil)
	case "LayerNormalization", "ReduceMean", "Softmax":
		r, c := rows2(a[0])
		outShape := a[0].shape
		if op == "ReduceMean" {
			outShape = append(append([]int(nil), a[0].shape[:len(a[0].shape)-1]...), 1)
		}
		out := tensor{outShape, make([]float64, 0, len(a[0].v))}
		for i := range r {
			row := a[0].v[i*c : (i+1)*c]
			var mu float64
			for _, v := range row {
				mu += v
			}
			mu /= float64(c)
			switch op {
			case "ReduceMean":
				out.v = append(out.v, mu)
			case "LayerNormalization":
				var ss float64
				for _, v := range row {
					ss += (v - mu) * (v - mu)
				}
				rstd := 1 / math.Sqrt(ss/float64(c)+float64(attr["epsilon"].GetF()))
				for j, v := range row {
					out.v = append(out.v, (v-mu)*rstd*a[1].v[j]+a[2].v[j])
				}
			case "Softmax":
				mx := math.Inf(-1)
				for _, v := range row {
					mx = max(mx, v)
				}
				var z float64
				for _, v := range row {
					z += math.Exp(v - mx)
				}
				for _, v := range row {
					out.v = append(out.v, math.Exp(v-mx)/z)
				}
			}
		}
		return one(out, nil)
	case "DynamicQuantizeLinear":
		// ONNX: y_scale = (max(0, max x) − min(0, min x)) / 255,
		// y_zero_point = saturate(round(−min(0, min x)/y_scale)),
		// y = saturate(round(x/y_scale) + y_zero_point), round half to even,
		// scale and division in float32 as the reference implementation.
		lo, hi := 0.0, 0.0
		for _, v := range a[0].v {
			lo, hi = min(lo, v), max(hi, v)
		}
		scale := float64(float32(hi-lo) / 255)
		if scale == 0 {
			scale = 1 // all zeros: any scale; onnxruntime reports 0 scale here too, q is 0
		}
		zp := math.Min(255, math.Max(0, math.RoundToEven(float64(float32(-lo)/float32(scale)))))
		q := unary(a[0], func(v float64) float64 {
			return math.Min(255, math.Max(0, math.RoundToEven(float64(float32(v)/float32(scale)))+zp))
		})
		return []tensor{q, {nil, []float64{scale}}, {nil, []float64{zp}}}, nil
	}
	return nil, fmt.Errorf("evaluator does not know op %s", op)
}

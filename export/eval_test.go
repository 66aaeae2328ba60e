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
	case onnxpb.TensorProto_INT64:
		for i := 0; i < len(raw); i += 8 {
			v = append(v, float64(int64(binary.LittleEndian.Uint64(raw[i:]))))
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
	case "Reshape":
		// The shapes export writes: −1 (inferred) and positive sizes.
		shape := make([]int, len(a[1].v))
		known := 1
		for i, d := range a[1].v {
			shape[i] = int(d)
			if d > 0 {
				known *= int(d)
			}
		}
		for i, d := range shape {
			if d == -1 {
				shape[i] = a[0].size() / known
			}
		}
		return one(tensor{shape, a[0].v}, nil)
	case "Conv", "ConvInteger":
		return one(evalConv(op, a, attr))
	case "MaxPool", "AveragePool", "GlobalAveragePool":
		return one(evalPool(op, a[0], attr))
	case "BatchNormalization":
		// Inference: y = (x − mean)/√(var + ε)·scale + B over axis 1.
		x := a[0]
		eps := 1e-5
		if e := attr["epsilon"]; e != nil {
			eps = float64(e.GetF())
		}
		c := x.shape[1]
		inner := x.size() / x.shape[0] / c
		out := tensor{x.shape, make([]float64, len(x.v))}
		for i, v := range x.v {
			k := i / inner % c
			out.v[i] = (v-a[3].v[k])/math.Sqrt(a[4].v[k]+eps)*a[1].v[k] + a[2].v[k]
		}
		return one(out, nil)
	case "Clip":
		lo, hi := math.Inf(-1), math.Inf(1)
		if len(a) > 1 {
			lo, hi = a[1].v[0], a[2].v[0]
		} else {
			if m := attr["min"]; m != nil {
				lo = float64(m.GetF())
			}
			if m := attr["max"]; m != nil {
				hi = float64(m.GetF())
			}
		}
		return one(unary(a[0], func(x float64) float64 { return min(max(x, lo), hi) }), nil)
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

func attrIntsOr(attr map[string]*onnxpb.AttributeProto, name string, def ...int64) []int64 {
	if a := attr[name]; a != nil {
		return a.GetInts()
	}
	return def
}

// evalConv is ONNX Conv (a = X, W[, B]) and ConvInteger (a = X, W[,
// x_zero_point[, w_zero_point]]) with square kernels, strides, dilations
// and pads as export writes them:
//
//	Y[n, f, i, j] = B[f] + Σ_{c < C/G, u, v} (W[f, c, u, v] − zw) · (X[n, g·C/G + c, S·i − P + D·u, S·j − P + D·v] − zx)
//
// with g = f / (F/G) and X − zx taken as 0 outside the image (ConvInteger
// pads with the zero point).
func evalConv(op string, a []tensor, attr map[string]*onnxpb.AttributeProto) (tensor, error) {
	x, w := a[0], a[1]
	if len(x.shape) != 4 || len(w.shape) != 4 {
		return tensor{}, fmt.Errorf("%s of %v with %v", op, x.shape, w.shape)
	}
	n, c, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	f, cg, kh, kw := w.shape[0], w.shape[1], w.shape[2], w.shape[3]
	group := 1
	if g := attr["group"]; g != nil {
		group = int(g.GetI())
	}
	if cg*group != c || f%group != 0 {
		return tensor{}, fmt.Errorf("%s: %d channels, weights %v, group %d", op, c, w.shape, group)
	}
	st, pads, dil := attrIntsOr(attr, "strides", 1, 1), attrIntsOr(attr, "pads", 0, 0, 0, 0), attrIntsOr(attr, "dilations", 1, 1)
	if st[0] != st[1] || dil[0] != dil[1] || pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] {
		return tensor{}, fmt.Errorf("%s: only symmetric attributes: strides %v pads %v dilations %v", op, st, pads, dil)
	}
	s, p, d := int(st[0]), int(pads[0]), int(dil[0])
	ho, wo := (h+2*p-d*(kh-1)-1)/s+1, (wd+2*p-d*(kw-1)-1)/s+1
	var zx, zw float64
	var bias []float64
	if op == "ConvInteger" {
		if len(a) > 2 {
			zx = a[2].v[0]
		}
		if len(a) > 3 {
			zw = a[3].v[0]
		}
	} else if len(a) > 2 {
		bias = a[2].v
	}
	fg := f / group
	out := tensor{[]int{n, f, ho, wo}, make([]float64, n*f*ho*wo)}
	for r := range n {
		for o := range f {
			g := o / fg
			for i := range ho {
				for j := range wo {
					var sum float64
					if bias != nil {
						sum = bias[o]
					}
					for ci := range cg {
						for u := range kh {
							y := s*i - p + d*u
							if y < 0 || y >= h {
								continue
							}
							for v := range kw {
								xx := s*j - p + d*v
								if xx < 0 || xx >= wd {
									continue
								}
								xv := x.v[((r*c+g*cg+ci)*h+y)*wd+xx] - zx
								sum += (w.v[((o*cg+ci)*kh+u)*kw+v] - zw) * xv
							}
						}
					}
					out.v[((r*f+o)*ho+i)*wo+j] = sum
				}
			}
		}
	}
	return out, nil
}

// evalPool is ONNX MaxPool and AveragePool (kernel_shape K×K, strides,
// no padding, floor) and GlobalAveragePool ([N, C, H, W] → [N, C, 1, 1]).
func evalPool(op string, x tensor, attr map[string]*onnxpb.AttributeProto) (tensor, error) {
	if len(x.shape) != 4 {
		return tensor{}, fmt.Errorf("%s of %v", op, x.shape)
	}
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	k, s := h, 1
	if op != "GlobalAveragePool" {
		ks, st := attrIntsOr(attr, "kernel_shape"), attrIntsOr(attr, "strides", 1, 1)
		if len(ks) != 2 || ks[0] != ks[1] || st[0] != st[1] || attr["pads"] != nil {
			return tensor{}, fmt.Errorf("%s: kernel %v strides %v", op, ks, st)
		}
		k, s = int(ks[0]), int(st[0])
	}
	kh, kw := k, k
	if op == "GlobalAveragePool" {
		kh, kw = h, w
	}
	ho, wo := (h-kh)/s+1, (w-kw)/s+1
	out := tensor{[]int{n, c, ho, wo}, make([]float64, n*c*ho*wo)}
	for r := range n * c {
		img := x.v[r*h*w:]
		for i := range ho {
			for j := range wo {
				acc := math.Inf(-1)
				if op != "MaxPool" {
					acc = 0
				}
				for u := range kh {
					for v := range kw {
						xv := img[(s*i+u)*w+s*j+v]
						if op == "MaxPool" {
							acc = max(acc, xv)
						} else {
							acc += xv
						}
					}
				}
				if op != "MaxPool" {
					acc /= float64(kh * kw)
				}
				out.v[(r*ho+i)*wo+j] = acc
			}
		}
	}
	return out, nil
}

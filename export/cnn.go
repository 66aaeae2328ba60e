package export

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
)

// buildCNN translates a convolutional student (Config.Type "cnn", the
// layers of Config.Arch) into an ONNX model, walking Student.Layers in
// inference mode. Node and initializer names carry the layer's index in
// the spec (torch's nn.Sequential index, as in the checkpoint): "3/Conv",
// "3.weight"; a Conv with the BatchNorm after it folded in is "3+4".
//
//	input [N, C, H, W]                          (an [N, H, W] input: Reshape to [N, 1, H, W])
//	Sub input_mean, Div input_std               [C, 1, 1] when the standardization is per channel, else [C, H, W]
//	conv (+ bn):  Conv(x, W, b; kernel_shape, strides, pads, dilations, group)
//	bn alone:     BatchNormalization(x, γ, β, running_mean, running_var; ε)
//	maxpool2:     MaxPool(kernel K, stride S)          no padding, floor (ceil_mode 0), as torch
//	avgpool2:     AveragePool(kernel K, stride S)      no padding, so count_include_pad cannot matter
//	gap:          GlobalAveragePool, Flatten(axis 1) → [N, C]
//	relu:         Relu;   relu6: Clip(0, 6)
//	fc:           Flatten(axis 1) after [C, H, W] maps (torch's order), then Gemm(x, W, b, transB 1)
//	→ logits [N, classes] (→ Softmax → probs)
//
// BatchNorm directly after a Conv is folded into it (Ioffe & Szegedy
// 2015, §3.2: at inference it is a per-channel affine map). With
// s_f = γ_f / √(σ²_f + ε), running statistics μ, σ²:
//
//	w'[f, c, u, v] = w[f, c, u, v] · s_f
//	b'_f           = (b_f − μ_f) · s_f + β_f          (b = 0 for a Conv without bias)
//
// computed in float64 and rounded to float32 once, so the folded graph has
// no BatchNormalization node where a Conv precedes it. The standardization
// stays a Sub/Div: folding it into the first Conv is exact only without
// zero padding (a padded border would see the mean).
//
// With Options.Dtype F16 the Conv and Gemm weights and biases are FLOAT16
// initializers cast to float (folded first, then rounded); BatchNorm and
// the standardization stay float32. With Options.Quantize Int8 every Conv
// and Gemm but the first is dynamically quantized (see convInt8 and
// linearInt8); the first, and grouped (depthwise) convs, have int8 weights
// dequantized in the graph and a float input.
func buildCNN(c *train.Checkpoint, o Options) (*onnxpb.ModelProto, error) {
	s := c.Student
	cfg := s.Config
	input, err := graphInput(c)
	if err != nil {
		return nil, err
	}
	shape := cfg.InputShape
	var ch, h, w int
	switch {
	case len(shape) == 3:
		ch, h, w = shape[0], shape[1], shape[2]
	case len(shape) == 2:
		ch, h, w = 1, shape[0], shape[1]
	default:
		return nil, fmt.Errorf("export: a cnn student needs an image input shape [C,H,W] or [H,W]; the checkpoint has %v", shape)
	}
	if ch*h*w != cfg.Inputs {
		return nil, fmt.Errorf("export: input shape %v has %d values, the student takes %d", shape, ch*h*w, cfg.Inputs)
	}
	scopes := cnnScopes(cfg.Arch, len(s.Layers))
	b := &builder{graph: newGraph(o.Opset), o: o, consts: map[float32]string{}, first: true}
	b.used[input] = true
	b.used[LogitsName] = true
	b.used[ProbsName] = true

	x := input
	if len(shape) == 2 {
		to := b.int64s("input_shape", []int64{4}, []int64{-1, 1, int64(h), int64(w)})
		x = b.op("input", "Reshape", "", []string{x, to})
	}
	mean, std := s.Standardize.Mean.Data, s.Standardize.Std.Data
	dims := []int64{int64(ch), int64(h), int64(w)}
	if perChannel(mean, ch) && perChannel(std, ch) {
		// One value per channel: [C, 1, 1], the same numbers broadcast.
		dims = []int64{int64(ch), 1, 1}
		mean, std = everyNth(mean, h*w), everyNth(std, h*w)
	}
	x = b.op("standardize", "Sub", "", []string{x, b.float32s("input_mean", dims, mean)})
	x = b.op("standardize", "Div", "", []string{x, b.float32s("input_std", dims, std)})

	// cur is the per-sample shape of x: [C, H, W] maps or [n] features.
	cur := []int{ch, h, w}
	size := func() int {
		n := 1
		for _, d := range cur {
			n *= d
		}
		return n
	}
	for i := 0; i < len(s.Layers); i++ {
		l := s.Layers[i]
		if l.InSize() != size() {
			return nil, fmt.Errorf("export: layer %s (%T) takes %d values, the previous gives %d", scopes[i], l, l.InSize(), size())
		}
		switch l := l.(type) {
		case *train.Conv2d:
			if len(cur) != 3 || cur[0] != l.C || cur[1] != l.H || cur[2] != l.W {
				return nil, fmt.Errorf("export: conv %s takes [%d,%d,%d] maps, the previous layer gives %v", scopes[i], l.C, l.H, l.W, cur)
			}
			scope := scopes[i]
			var bn *train.BatchNorm2d
			if i+1 < len(s.Layers) {
				if n, ok := s.Layers[i+1].(*train.BatchNorm2d); ok && n.C == l.F && n.H == l.Ho && n.W == l.Wo {
					bn = n
					scope += "+" + scopes[i+1]
					i++
				}
			}
			wt, bias, err := foldConv(l, bn)
			if err != nil {
				return nil, fmt.Errorf("export: conv %s: %w", scope, err)
			}
			if x, err = b.conv(scope, x, l, wt, bias); err != nil {
				return nil, err
			}
			b.first = false
			cur = []int{l.F, l.Ho, l.Wo}
		case *train.BatchNorm2d:
			if len(cur) == 3 && (cur[0] != l.C || cur[1] != l.H || cur[2] != l.W) || len(cur) == 1 && (l.C != cur[0] || l.H != 1 || l.W != 1) {
				return nil, fmt.Errorf("export: batchnorm %s normalizes [%d,%d,%d], the previous layer gives %v", scopes[i], l.C, l.H, l.W, cur)
			}
			x = b.batchNorm(scopes[i], x, l)
		case *train.Pool2d:
			if len(cur) != 3 || cur[0] != l.C || cur[1] != l.H || cur[2] != l.W {
				return nil, fmt.Errorf("export: pool %s takes [%d,%d,%d] maps, the previous layer gives %v", scopes[i], l.C, l.H, l.W, cur)
			}
			x = b.pool(scopes[i], x, l)
			if l.K == 0 {
				cur = []int{l.C}
			} else {
				cur = []int{l.C, l.Ho, l.Wo}
			}
		case *train.ActivationLayer:
			if x, err = b.activation(scopes[i], x, l.Fn); err != nil {
				return nil, err
			}
		case *train.ReLU6:
			x = b.relu6(scopes[i], x)
		case *train.Linear:
			if len(cur) == 3 {
				// [C, H, W] maps are flat in torch's order already.
				x = b.op(scopes[i], "Flatten", "", []string{x}, attrInt("axis", 1))
				cur = []int{size()}
			}
			if x, err = b.linear(scopes[i], x, l); err != nil {
				return nil, err
			}
			b.first = false
			if x, err = b.activation(scopes[i], x, l.Act); err != nil {
				return nil, err
			}
			cur = []int{l.Out}
		case *train.Dropout:
			// The identity at inference.
		default:
			return nil, fmt.Errorf("%w: layer %s is a %T, which has no ONNX form yet", ErrUnsupported, scopes[i], l)
		}
	}
	if len(cur) != 1 || cur[0] != cfg.Classes {
		return nil, fmt.Errorf("export: the student ends in shape %v, not its %d classes", cur, cfg.Classes)
	}
	return b.finish(c, o, input, shape, x, describeCNN(cfg, o))
}

// cnnScopes names the n layers of a cnn student by their index in the
// spec arch (flatten makes no layer); "layerI" if they do not match.
func cnnScopes(arch string, n int) []string {
	var scopes []string
	for i, t := range strings.Split(arch, ",") {
		if strings.TrimSpace(t) != "flatten" {
			scopes = append(scopes, strconv.Itoa(i))
		}
	}
	if len(scopes) != n {
		scopes = scopes[:0]
		for i := range n {
			scopes = append(scopes, "layer"+strconv.Itoa(i))
		}
	}
	return scopes
}

// perChannel reports whether v, c equal blocks of values, is constant
// within each block.
func perChannel(v []float32, c int) bool {
	n := len(v) / c
	for k := range c {
		for _, x := range v[k*n : (k+1)*n] {
			if x != v[k*n] {
				return false
			}
		}
	}
	return true
}

// everyNth returns v[0], v[n], v[2n], ...
func everyNth(v []float32, n int) []float32 {
	out := make([]float32, 0, len(v)/n)
	for i := 0; i < len(v); i += n {
		out = append(out, v[i])
	}
	return out
}

// foldConv returns the weights [F, C/G, Kh, Kw] and bias [F] of l with bn
// (nil: none) folded in, as buildCNN's doc gives; bias is nil for a Conv
// without bias and without bn. It fails on a non-finite folded value (a
// negative running variance, an overflow).
func foldConv(l *train.Conv2d, bn *train.BatchNorm2d) (w, bias []float32, err error) {
	if bn == nil {
		w = l.Weight.Data
		if l.Bias != nil {
			bias = l.Bias.Data
		}
		return w, bias, nil
	}
	per := len(l.Weight.Data) / l.F
	w, bias = make([]float32, len(l.Weight.Data)), make([]float32, l.F)
	for f := range l.F {
		s := float64(bn.Gamma.Data[f]) / math.Sqrt(float64(bn.RunningVar[f])+bn.Eps)
		var b0 float64
		if l.Bias != nil {
			b0 = float64(l.Bias.Data[f])
		}
		bias[f] = float32((b0-float64(bn.RunningMean[f]))*s + float64(bn.Beta.Data[f]))
		for j, v := range l.Weight.Data[f*per : (f+1)*per] {
			w[f*per+j] = float32(float64(v) * s)
		}
		if !finite32(bias[f]) || !finite32(w[f*per:(f+1)*per]...) {
			return nil, nil, fmt.Errorf("folding batchnorm channel %d (running var %g, γ %g) gives a non-finite weight or bias", f, bn.RunningVar[f], bn.Gamma.Data[f])
		}
	}
	return w, bias, nil
}

func finite32(v ...float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// convAttrs are the attributes of l as an ONNX Conv (and ConvInteger).
func convAttrs(l *train.Conv2d) []*onnxpb.AttributeProto {
	p, s, d := int64(l.Pad), int64(l.Stride), int64(l.Dilation)
	return []*onnxpb.AttributeProto{
		attrInts("kernel_shape", int64(l.Kh), int64(l.Kw)),
		attrInts("strides", s, s),
		attrInts("pads", p, p, p, p),
		attrInts("dilations", d, d),
		attrInt("group", int64(l.Groups)),
	}
}

// conv emits the convolution l with weights w and bias (nil: none) in the
// configured weight format.
func (b *builder) conv(scope, x string, l *train.Conv2d, w, bias []float32) (string, error) {
	wDims := []int64{int64(l.F), int64(l.C / l.Groups), int64(l.Kh), int64(l.Kw)}
	if b.o.Quantize == Int8 {
		// Grouped (depthwise) convs keep a float input: onnxruntime's
		// ConvInteger runs one small integer GEMM per group, and with
		// dynamic quantization of their inputs the dws preset ran 4-6×
		// slower than in float (their weights are a few hundred values, so
		// the file barely changes).
		return b.convInt8(scope, x, l, w, bias, !b.first && l.Groups == 1), nil
	}
	wt, err := b.weights(scope, scope+".weight", wDims, w)
	if err != nil {
		return "", err
	}
	in := []string{x, wt}
	if bias != nil {
		bt, err := b.weights(scope, scope+".bias", []int64{int64(l.F)}, bias)
		if err != nil {
			return "", err
		}
		in = append(in, bt)
	}
	return b.op(scope, "Conv", "", in, convAttrs(l)...), nil
}

// weights adds v as a float32 initializer, or with Dtype F16 as a FLOAT16
// one cast to float in the graph; it fails on a value beyond float16's
// range.
func (b *builder) weights(scope, name string, dims []int64, v []float32) (string, error) {
	if b.o.Dtype != F16 {
		return b.float32s(name, dims, v), nil
	}
	for j, x := range v {
		if math.Abs(float64(x)) > 65504 {
			return "", fmt.Errorf("%w: %s[%d] = %g is beyond float16's range (±65504); export as f32", ErrUnsupported, name, j, x)
		}
	}
	t := b.float16s(name, dims, v)
	return b.op(scope, "Cast", "", []string{t}, attrInt("to", int64(onnxpb.TensorProto_FLOAT))), nil
}

// convInt8 emits the convolution l (weights w [F, C/G·Kh·Kw] after
// folding, bias or nil) with int8 weights, quantized symmetrically per
// output channel as QuantizeWeights does: q(w)[f, ·] = round(w[f, ·]/s_f) ∈
// [−127, 127], s_f = max |w[f, ·]| / 127. With dynamic, the input is
// quantized per tensor and the convolution is integer:
//
//	xq, sx, zx = DynamicQuantizeLinear(x)          xq uint8 [N, C, H, W]
//	acc = ConvInteger(xq, Wq, zx, 128)             Wq uint8 [F, C/G, Kh, Kw] = q(w) + 128; acc int32
//	y   = Cast(acc) · (sx · s [F,1,1]) + b [F,1,1]
//
// ConvInteger pads with the input's zero point zx (ONNX: a padded pixel
// is a real 0). Otherwise (the first layer, reading the standardized
// input, and grouped convs) only the weights are quantized, dequantized in
// the graph (a constant a runtime folds at load):
//
//	y = Conv(x, Cast(q(w) int8) · s [F,1,1,1], b)
func (b *builder) convInt8(scope, x string, l *train.Conv2d, w, bias []float32, dynamic bool) string {
	k := len(w) / l.F
	q, sw := quantizeRows(w, l.F, k)
	wDims := []int64{int64(l.F), int64(l.C / l.Groups), int64(l.Kh), int64(l.Kw)}
	to := attrInt("to", int64(onnxpb.TensorProto_FLOAT))
	if !dynamic {
		raw := make([]byte, len(q))
		for i, v := range q {
			raw[i] = byte(v)
		}
		qt := b.init(scope+".weight_quantized", onnxpb.TensorProto_INT8, wDims, raw)
		st := b.float32s(scope+".weight_scale", []int64{int64(l.F), 1, 1, 1}, sw)
		wf := b.op(scope, "Cast", "", []string{qt}, to)
		wf = b.op(scope, "Mul", "", []string{wf, st})
		in := []string{x, wf}
		if bias != nil {
			in = append(in, b.float32s(scope+".bias", []int64{int64(l.F)}, bias))
		}
		return b.op(scope, "Conv", "", in, convAttrs(l)...)
	}
	raw := make([]byte, len(q))
	for i, v := range q {
		raw[i] = byte(int(v) + WeightZeroPoint)
	}
	qt := b.init(scope+".weight_quantized", onnxpb.TensorProto_UINT8, wDims, raw)
	zp := b.init(scope+".weight_zero_point", onnxpb.TensorProto_UINT8, []int64{}, []byte{WeightZeroPoint})
	st := b.float32s(scope+".weight_scale", []int64{int64(l.F), 1, 1}, sw)
	xq := b.multi(scope, "DynamicQuantizeLinear", 3, []string{x})
	acc := b.op(scope, "ConvInteger", "", []string{xq[0], qt, xq[2], zp}, convAttrs(l)...)
	y := b.op(scope, "Cast", "", []string{acc}, to)
	sc := b.op(scope, "Mul", "", []string{xq[1], st})
	y = b.op(scope, "Mul", "", []string{y, sc})
	if bias == nil {
		return y
	}
	return b.op(scope, "Add", "", []string{y, b.float32s(scope+".bias", []int64{int64(l.F), 1, 1}, bias)})
}

// batchNorm emits l in inference mode (running statistics) as one
// BatchNormalization node over axis 1, on [N, C, H, W] maps or [N, C]
// features: y = (x − μ)/√(σ² + ε)·γ + β.
func (b *builder) batchNorm(scope, x string, l *train.BatchNorm2d) string {
	dims := []int64{int64(l.C)}
	g := b.float32s(l.Gamma.Name, dims, l.Gamma.Data)
	be := b.float32s(l.Beta.Name, dims, l.Beta.Data)
	m := b.float32s(scope+".running_mean", dims, l.RunningMean)
	v := b.float32s(scope+".running_var", dims, l.RunningVar)
	return b.op(scope, "BatchNormalization", "", []string{x, g, be, m, v}, attrFloat("epsilon", float32(l.Eps)))
}

// pool emits l: MaxPool or AveragePool with a K×K window and stride S and
// no padding, or for global average pooling GlobalAveragePool and Flatten
// to [N, C].
func (b *builder) pool(scope, x string, l *train.Pool2d) string {
	if l.K == 0 {
		x = b.op(scope, "GlobalAveragePool", "", []string{x})
		return b.op(scope, "Flatten", "", []string{x}, attrInt("axis", 1))
	}
	op := "AveragePool"
	if l.Max {
		op = "MaxPool"
	}
	k, s := int64(l.K), int64(l.Stride)
	return b.op(scope, op, "", []string{x}, attrInts("kernel_shape", k, k), attrInts("strides", s, s))
}

// relu6 emits min(max(x, 0), 6): Clip with min and max as inputs from
// opset 11, as attributes before.
func (b *builder) relu6(scope, x string) string {
	if b.opset >= 11 {
		return b.op(scope, "Clip", "", []string{x, b.constant("zero", 0), b.constant("six", 6)})
	}
	return b.op(scope, "Clip", "", []string{x}, attrFloat("min", 0), attrFloat("max", 6))
}

// describeCNN is the model's doc_string, e.g. "distill student: cnn
// conv3x3:8,bn,relu,...,fc:10 on [1,28,28]; weights f32".
func describeCNN(cfg train.Config, o Options) string {
	dims := make([]string, len(cfg.InputShape))
	for i, d := range cfg.InputShape {
		dims[i] = strconv.Itoa(d)
	}
	w := "weights " + o.Dtype
	if o.Quantize != "" {
		w = "weights " + o.Quantize + " (dynamic quantization)"
	}
	return "distill student: cnn " + cfg.Arch + " on [" + strings.Join(dims, ",") + "]; " + w
}

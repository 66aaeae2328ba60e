package export

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

// Names fixed by the exported graph.
const (
	LogitsName = "logits" // output: raw class scores [N, classes]
	ProbsName  = "probs"  // output with Options.Probs: Softmax(logits) [N, classes]
	BatchDim   = "N"      // dim_param of the batch axis of every input and output
	// DefaultInputName names the graph input when the checkpoint does not
	// record the teacher's (CheckpointInfo.Input).
	DefaultInputName = "input"
	producerName     = "distill"
)

// Metadata keys (ModelProto.metadata_props) recording the student's
// provenance. Values are strings; JSON where they are structures.
const (
	MetaToolVersion   = "distill.tool_version"
	MetaStudent       = "distill.student"        // train.Config as JSON
	MetaInput         = "distill.input"          // the teacher input (cache column input.NAME)
	MetaTeacherSHA256 = "distill.teacher_sha256" // sha256 of the teacher .onnx
	MetaCacheDigest   = "distill.cache_digest"   // manifest digest of the training cache
	MetaValDigest     = "distill.val_digest"     // manifest digest of the validation cache
	MetaTemperature   = "distill.temperature"
	MetaAlpha         = "distill.alpha"
	MetaEpochs        = "distill.epochs" // epochs completed
	MetaSteps         = "distill.steps"  // optimizer steps taken
	MetaMetrics       = "distill.metrics"
	MetaDtype         = "distill.dtype"    // Options.Dtype
	MetaQuantize      = "distill.quantize" // Options.Quantize, "none" if empty
)

// build translates the student of c into an ONNX model. It walks
// Student.Layers, so the graph is the forward pass in inference mode,
// op for op:
//
//	input [N, InputShape...] → Flatten (if the shape has more than one axis)
//	→ Sub input_mean → Div input_std
//	→ per Linear:    Gemm(x, W [out,in], b, transB=1)  (see Options for f16 and int8)
//	  per LayerNorm: LayerNormalization(axis −1, ε 1e-5), or its primitive form below opset 17
//	  per activation: Relu | Tanh | GELU (Gelu from opset 20, else 0.5·x·(1 + Erf(x/√2)))
//	  Dropout: nothing
//	→ logits [N, classes] (→ Softmax → probs)
func build(c *train.Checkpoint, o Options) (*onnxpb.ModelProto, error) {
	if c == nil || c.Student == nil {
		return nil, fmt.Errorf("export: no student in the checkpoint")
	}
	s := c.Student
	cfg := s.Config
	if cfg.Type == "cnn" {
		return buildCNN(c, o)
	}
	if cfg.Type != "" && cfg.Type != "mlp" {
		return nil, fmt.Errorf("%w: student type %q", ErrUnsupported, cfg.Type)
	}
	input, err := graphInput(c)
	if err != nil {
		return nil, err
	}
	shape := cfg.InputShape
	if len(shape) == 0 {
		shape = []int{cfg.Inputs}
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != cfg.Inputs {
		return nil, fmt.Errorf("export: input shape %v has %d values, the student takes %d", shape, n, cfg.Inputs)
	}
	b := &builder{graph: newGraph(o.Opset), o: o, consts: map[float32]string{}, first: true}
	b.used[input] = true
	b.used[LogitsName] = true
	b.used[ProbsName] = true

	x := input
	if len(shape) > 1 {
		x = b.op("input", "Flatten", "", []string{x}, attrInt("axis", 1))
	}
	dims := []int64{int64(cfg.Inputs)}
	mean := b.float32s("input_mean", dims, s.Standardize.Mean.Data)
	std := b.float32s("input_std", dims, s.Standardize.Std.Data)
	x = b.op("standardize", "Sub", "", []string{x, mean})
	x = b.op("standardize", "Div", "", []string{x, std})
	width := cfg.Inputs
	for i, l := range s.Layers {
		var err error
		switch l := l.(type) {
		case *train.Linear:
			if l.In != width {
				return nil, fmt.Errorf("export: layer %d (%s) takes %d values, the previous gives %d", i, l.W.Name, l.In, width)
			}
			scope := strings.TrimSuffix(l.W.Name, ".weight")
			if x, err = b.linear(scope, x, l); err != nil {
				return nil, err
			}
			b.first = false
			if x, err = b.activation(scope, x, l.Act); err != nil {
				return nil, err
			}
			width = l.Out
		case *train.LayerNorm:
			scope := strings.TrimSuffix(l.Gamma.Name, ".weight")
			x = b.layerNorm(scope, x, l)
			if x, err = b.activation(scope, x, l.Act); err != nil {
				return nil, err
			}
		case *train.ActivationLayer:
			if x, err = b.activation(fmt.Sprintf("act%d", i+1), x, l.Fn); err != nil {
				return nil, err
			}
		case *train.Dropout:
			// The identity at inference.
		default:
			return nil, fmt.Errorf("%w: layer %d is a %T, which has no ONNX form yet", ErrUnsupported, i, l)
		}
	}
	if width != cfg.Classes {
		return nil, fmt.Errorf("export: the student ends in %d values, not its %d classes", width, cfg.Classes)
	}
	return b.finish(c, o, input, shape, x, describe(cfg, o))
}

// finish makes the model of the graph built in b: input named input of
// per-sample shape (a dynamic batch first), output the logits x.
func (b *builder) finish(c *train.Checkpoint, o Options, input string, shape []int, x, doc string) (*onnxpb.ModelProto, error) {
	outputs, err := b.outputs(x, c.Student.Config.Classes)
	if err != nil {
		return nil, err
	}
	inDims := []int64{-1}
	for _, d := range shape {
		inDims = append(inDims, int64(d))
	}
	inputs := []*onnxpb.ValueInfoProto{valueInfo(input, onnxpb.TensorProto_FLOAT, inDims)}
	return b.model(o, doc, inputs, outputs, metadata(c, o)), nil
}

// graphInput checks c's input standardization and returns the name of
// the graph input: the teacher's (CheckpointInfo.Input) or
// DefaultInputName.
func graphInput(c *train.Checkpoint) (string, error) {
	s, cfg := c.Student, c.Student.Config
	if s.Standardize == nil || s.Standardize.Size != cfg.Inputs {
		return "", fmt.Errorf("export: student has no input standardization for %d inputs", cfg.Inputs)
	}
	input := c.Info.Input
	if input == "" {
		input = DefaultInputName
	}
	if input == LogitsName || input == ProbsName {
		return "", fmt.Errorf("%w: the input is named %q, like an output; rename the cache input", ErrUnsupported, input)
	}
	return input, nil
}

// outputs renames x, the output of the last node, to LogitsName [N,
// classes], adds Softmax → ProbsName with Options.Probs, and returns the
// graph outputs.
func (b *builder) outputs(x string, classes int) ([]*onnxpb.ValueInfoProto, error) {
	if len(b.nodes) == 0 || b.nodes[len(b.nodes)-1].Output[0] != x {
		return nil, fmt.Errorf("export: internal error: the last node does not produce the logits")
	}
	b.nodes[len(b.nodes)-1].Output[0] = LogitsName
	outDims := []int64{-1, int64(classes)}
	outputs := []*onnxpb.ValueInfoProto{valueInfo(LogitsName, onnxpb.TensorProto_FLOAT, outDims)}
	if b.o.Probs {
		b.op("probs", "Softmax", ProbsName, []string{LogitsName}, attrInt("axis", 1))
		outputs = append(outputs, valueInfo(ProbsName, onnxpb.TensorProto_FLOAT, outDims))
	}
	return outputs, nil
}

// model returns the ModelProto of the graph g with its inputs, outputs,
// doc string and metadata, at o's opset and its IR version.
func (g *graph) model(o Options, doc string, inputs, outputs []*onnxpb.ValueInfoProto, meta []*onnxpb.StringStringEntryProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion(o.Opset)),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(o.Opset))}},
		ProducerName:    proto.String(producerName),
		ProducerVersion: proto.String(o.ToolVersion),
		DocString:       proto.String(doc),
		Graph: &onnxpb.GraphProto{
			Name: proto.String("student"), Node: g.nodes, Initializer: g.inits, Input: inputs, Output: outputs,
		},
		MetadataProps: meta,
	}
}

// describe is the model's doc_string, e.g. "distill student: mlp 784→32→32→10, relu, layernorm; weights f32".
func describe(cfg train.Config, o Options) string {
	widths := []string{strconv.Itoa(cfg.Inputs)}
	for _, h := range cfg.Hidden {
		widths = append(widths, strconv.Itoa(h))
	}
	widths = append(widths, strconv.Itoa(cfg.Classes))
	act := string(cfg.Activation)
	if act == "" {
		act = string(train.ReLU)
	}
	parts := []string{"mlp " + strings.Join(widths, "→")}
	if len(cfg.Hidden) > 0 {
		parts = append(parts, act)
	}
	if cfg.LayerNorm {
		parts = append(parts, "layernorm")
	}
	w := "weights " + o.Dtype
	if o.Quantize != "" {
		w = "weights " + o.Quantize + " (dynamic quantization)"
	}
	return "distill student: " + strings.Join(parts, ", ") + "; " + w
}

// metadata returns the provenance entries, sorted by key.
func metadata(c *train.Checkpoint, o Options) []*onnxpb.StringStringEntryProto {
	info := c.Info
	kv := map[string]string{}
	var last any
	if len(info.Metrics) > 0 {
		last = info.Metrics[len(info.Metrics)-1]
	}
	exportMeta(kv, o, c.Student.Config)
	trainingMeta(kv, info.Training, info.Epoch, info.Step, info.Cache, info.Val, last)
	if info.Input != "" {
		kv[MetaInput] = info.Input
	}
	return sortedProps(kv)
}

// exportMeta sets the entries of kv about the export: the tool version,
// dtype, quantization and the student's config as JSON.
func exportMeta(kv map[string]string, o Options, student any) {
	kv[MetaToolVersion], kv[MetaDtype], kv[MetaQuantize] = o.ToolVersion, o.Dtype, o.Quantize
	if o.Quantize == "" {
		kv[MetaQuantize] = "none"
	}
	if b, err := json.Marshal(student); err == nil {
		kv[MetaStudent] = string(b)
	}
}

// trainingMeta sets the Meta* provenance entries of kv from a checkpoint's
// record: the training options' T and α, epochs and steps, the cache's
// teacher sha256 and digests, and the last epoch's metrics (last, nil for
// none).
func trainingMeta(kv map[string]string, training train.Options, epoch int, step int64, cache train.Provenance, val *train.Provenance, last any) {
	kv[MetaTemperature] = strconv.FormatFloat(training.Temperature, 'g', -1, 64)
	kv[MetaAlpha] = strconv.FormatFloat(training.Alpha, 'g', -1, 64)
	kv[MetaEpochs] = strconv.Itoa(epoch)
	kv[MetaSteps] = strconv.FormatInt(step, 10)
	if cache.TeacherSHA256 != "" {
		kv[MetaTeacherSHA256] = cache.TeacherSHA256
	}
	if cache.Digest != "" {
		kv[MetaCacheDigest] = cache.Digest
	}
	if val != nil && val.Digest != "" {
		kv[MetaValDigest] = val.Digest
	}
	if last != nil {
		if b, err := json.Marshal(last); err == nil {
			kv[MetaMetrics] = string(b)
		}
	}
}

// builder emits the ops of student layers into a graph.
type builder struct {
	*graph
	o      Options
	consts map[float32]string // shared scalar constants by value
	first  bool               // the next Linear reads the standardized input
}

// constant returns the name of a shared float scalar initializer.
func (b *builder) constant(name string, v float32) string {
	if n, ok := b.consts[v]; ok {
		return n
	}
	n := b.scalar("const/"+name, v)
	b.consts[v] = n
	return n
}

// linear emits x·Wᵀ + b for l in the configured weight format.
func (b *builder) linear(scope, x string, l *train.Linear) (string, error) {
	wDims := []int64{int64(l.Out), int64(l.In)}
	bDims := []int64{int64(l.Out)}
	switch {
	case b.o.Quantize == Int8:
		// The standardized model input is not quantized dynamically: a
		// near-constant input feature (a border pixel) standardizes to
		// values in the thousands, and one such value in a batch would
		// set the 8-bit step for all of it.
		return b.linearInt8(scope, x, l, !b.first), nil
	case b.o.Dtype == F16:
		for _, p := range []*train.Param{l.W, l.B} {
			for j, v := range p.Data {
				if math.Abs(float64(v)) > 65504 {
					return "", fmt.Errorf("%w: %s[%d] = %g is beyond float16's range (±65504); export as f32", ErrUnsupported, p.Name, j, v)
				}
			}
		}
		w := b.float16s(l.W.Name, wDims, l.W.Data)
		bias := b.float16s(l.B.Name, bDims, l.B.Data)
		to := attrInt("to", int64(onnxpb.TensorProto_FLOAT))
		w = b.op(scope, "Cast", "", []string{w}, to)
		bias = b.op(scope, "Cast", "", []string{bias}, to)
		return b.op(scope, "Gemm", "", []string{x, w, bias}, attrInt("transB", 1)), nil
	}
	w := b.float32s(l.W.Name, wDims, l.W.Data)
	bias := b.float32s(l.B.Name, bDims, l.B.Data)
	return b.op(scope, "Gemm", "", []string{x, w, bias}, attrInt("transB", 1)), nil
}

// linearInt8 emits a Linear with int8 weights (see Options.Quantize).
// With dynamic, the input is quantized too and the product is integer:
//
//	xq, sx, zx = DynamicQuantizeLinear(x)     xq uint8 [N, In], sx, zx scalars
//	acc = MatMulInteger(xq, Wq, zx, 128)      Wq uint8 [In, Out] = q(W)ᵀ + 128; acc int32 [N, Out]
//	y   = Cast(acc)·(sx·sw) + b               sw [Out] per-channel scale, b float32 [Out]
//
// Otherwise only the weights are quantized, dequantized in the graph
// (a constant a runtime folds at load) and used by a float Gemm:
//
//	y = Gemm(x, Cast(q(W))·sw, b, transB=1)   q(W) int8 [Out, In], sw [Out, 1]
//
// with q(W)[o,i] = round(W[o,i]/sw[o]) ∈ [−127, 127], sw[o] = max_i |W[o,i]| / 127.
func (b *builder) linearInt8(scope, x string, l *train.Linear, dynamic bool) string {
	wq, sw := QuantizeWeights(l.W.Data, l.Out, l.In)
	bias := b.float32s(l.B.Name, []int64{int64(l.Out)}, l.B.Data)
	if !dynamic {
		w := make([]byte, len(wq))
		for i := range l.In {
			for o := range l.Out {
				w[o*l.In+i] = byte(int8(int(wq[i*l.Out+o]) - WeightZeroPoint))
			}
		}
		q := b.init(scope+".weight_quantized", onnxpb.TensorProto_INT8, []int64{int64(l.Out), int64(l.In)}, w)
		scale := b.float32s(scope+".weight_scale", []int64{int64(l.Out), 1}, sw)
		wf := b.op(scope, "Cast", "", []string{q}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
		wf = b.op(scope, "Mul", "", []string{wf, scale})
		return b.op(scope, "Gemm", "", []string{x, wf, bias}, attrInt("transB", 1))
	}
	q := b.uint8s(scope+".weight_quantized", []int64{int64(l.In), int64(l.Out)}, wq)
	zp := b.init(scope+".weight_zero_point", onnxpb.TensorProto_UINT8, []int64{}, []byte{WeightZeroPoint})
	scale := b.float32s(scope+".weight_scale", []int64{int64(l.Out)}, sw)
	xq := b.multi(scope, "DynamicQuantizeLinear", 3, []string{x})
	acc := b.op(scope, "MatMulInteger", "", []string{xq[0], q, xq[2], zp})
	y := b.op(scope, "Cast", "", []string{acc}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
	s := b.op(scope, "Mul", "", []string{xq[1], scale})
	y = b.op(scope, "Mul", "", []string{y, s})
	return b.op(scope, "Add", "", []string{y, bias})
}

// WeightZeroPoint is the zero point of int8-quantized weights stored as
// uint8 (Options.Quantize).
const WeightZeroPoint = 128

// QuantizeWeights quantizes w [out, in] (row-major, PyTorch layout)
// symmetrically per output channel: scale[o] = max_i |w[o,i]| / 127 (1 for
// an all-zero row) and q[o,i] = round_half_even(w[o,i]/scale[o]) clamped to
// [−127, 127]. It returns q + WeightZeroPoint transposed to [in, out] as
// MatMulInteger takes it, and the scales.
func QuantizeWeights(w []float32, out, in int) (q []uint8, scale []float32) {
	r, scale := quantizeRows(w, out, in)
	q = make([]uint8, in*out)
	for o := range out {
		for i := range in {
			q[i*out+o] = uint8(int(r[o*in+i]) + WeightZeroPoint)
		}
	}
	return q, scale
}

// quantizeRows is QuantizeWeights without the zero point and the
// transpose: q [out, in] in w's layout, and the scales.
func quantizeRows(w []float32, out, in int) (q []int8, scale []float32) {
	q, scale = make([]int8, in*out), make([]float32, out)
	for o := range out {
		row := w[o*in : (o+1)*in]
		var amax float32
		for _, v := range row {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		s := amax / 127
		if !(s > 0) || math.IsInf(float64(s), 0) {
			s = 1
		}
		scale[o] = s
		for i, v := range row {
			r := math.RoundToEven(float64(v / s))
			q[o*in+i] = int8(min(max(r, -127), 127))
		}
	}
	return q, scale
}

// layerNorm emits l without its activation: LayerNormalization from opset
// 17, below it the same formula in primitive ops:
//
//	μ = ReduceMean(x), d = x − μ, σ² = ReduceMean(d·d)
//	y = d / Sqrt(σ² + ε) · γ + β
func (b *builder) layerNorm(scope, x string, l *train.LayerNorm) string {
	dims := []int64{int64(l.Size)}
	gamma := b.float32s(l.Gamma.Name, dims, l.Gamma.Data)
	beta := b.float32s(l.Beta.Name, dims, l.Beta.Data)
	if b.opset >= 17 {
		return b.op(scope, "LayerNormalization", "", []string{x, gamma, beta},
			attrInt("axis", -1), attrFloat("epsilon", train.LayerNormEps))
	}
	axes, keep := attrInts("axes", -1), attrInt("keepdims", 1)
	mu := b.op(scope, "ReduceMean", "", []string{x}, axes, keep)
	d := b.op(scope, "Sub", "", []string{x, mu})
	sq := b.op(scope, "Mul", "", []string{d, d})
	v := b.op(scope, "ReduceMean", "", []string{sq}, axes, keep)
	v = b.op(scope, "Add", "", []string{v, b.constant("eps", train.LayerNormEps)})
	sd := b.op(scope, "Sqrt", "", []string{v})
	y := b.op(scope, "Div", "", []string{d, sd})
	y = b.op(scope, "Mul", "", []string{y, gamma})
	return b.op(scope, "Add", "", []string{y, beta})
}

// activation emits act(x); Identity emits nothing.
func (b *builder) activation(scope, x string, act train.Activation) (string, error) {
	switch act {
	case train.Identity, "":
		return x, nil
	case train.ReLU:
		return b.op(scope, "Relu", "", []string{x}), nil
	case train.Tanh:
		return b.op(scope, "Tanh", "", []string{x}), nil
	case train.GELU:
		if b.opset >= 20 {
			return b.op(scope, "Gelu", "", []string{x}, attrString("approximate", "none")), nil
		}
		// gelu(x) = 0.5·x·(1 + erf(x/√2)), the exact form torch exports.
		t := b.op(scope, "Div", "", []string{x, b.constant("sqrt2", math.Sqrt2)})
		t = b.op(scope, "Erf", "", []string{t})
		t = b.op(scope, "Add", "", []string{t, b.constant("one", 1)})
		t = b.op(scope, "Mul", "", []string{x, t})
		return b.op(scope, "Mul", "", []string{t, b.constant("half", 0.5)}), nil
	}
	return "", fmt.Errorf("%w: activation %q", ErrUnsupported, act)
}

// TrainingMeta reads how a student was trained from the metadata_props
// its export wrote (MetaAlpha, MetaTemperature, MetaEpochs); ok is false
// when meta has no MetaAlpha (a model distill did not export).
func TrainingMeta(meta map[string]string) (alpha, temperature float64, epochs int, ok bool) {
	alpha, err := strconv.ParseFloat(meta[MetaAlpha], 64)
	if err != nil {
		return 0, 0, 0, false
	}
	temperature, _ = strconv.ParseFloat(meta[MetaTemperature], 64)
	epochs, _ = strconv.Atoi(meta[MetaEpochs])
	return alpha, temperature, epochs, true
}

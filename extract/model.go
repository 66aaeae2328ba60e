package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/internal/store"
	"google.golang.org/protobuf/proto"
)

// ErrModel is wrapped by every error about a teacher model file.
var ErrModel = errors.New("extract: bad teacher model")

// ElemType is an ONNX tensor element type (TensorProto.DataType).
type ElemType = onnxpb.TensorProto_DataType

// Element types distill handles on model inputs and score outputs.
const (
	Float32 = onnxpb.TensorProto_FLOAT
	Float64 = onnxpb.TensorProto_DOUBLE
	Float16 = onnxpb.TensorProto_FLOAT16
	Int64   = onnxpb.TensorProto_INT64
	Int32   = onnxpb.TensorProto_INT32
)

// TensorInfo describes one named tensor of a model graph.
type TensorInfo struct {
	Name string
	// Op is the type of the node that produces the tensor ("" for graph
	// inputs), Domain its operator set domain ("" = ai.onnx).
	Op, Domain string
	// Kind is "tensor", "sequence", "map" or "" when unknown.
	Kind string
	// Elem is the element type when Kind is "tensor"; 0 when unknown.
	Elem ElemType
	// Shape as declared in the graph: -1 for a symbolic or unknown
	// dimension; nil when the rank is unknown.
	Shape []int64
}

// ShapeString formats the shape like [N,1,28,28], "?" when unknown.
func (t TensorInfo) ShapeString() string { return shapeString(t.Shape) }

func shapeString(s []int64) string {
	if s == nil {
		return "?"
	}
	p := make([]string, len(s))
	for i, d := range s {
		if d < 0 {
			p[i] = "N"
			if i > 0 {
				p[i] = "?"
			}
		} else {
			p[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(p, ",") + "]"
}

// Model is a parsed teacher. The file on disk is never modified: edits are
// made to in-memory copies (WithOutputs, RelaxBatch).
type Model struct {
	Path     string
	SHA256   string
	Size     int64
	Proto    *onnxpb.ModelProto
	Opset    int64  // ai.onnx opset version
	Producer string // producer name and version

	types     map[string]*onnxpb.TypeProto
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	inits     map[string]bool
}

// LoadModel reads and parses the ONNX model file at the location path (a
// path, file://, s3:// or gs://; package internal/store). Sessions are
// made from the bytes (Runtime.NewSession), so a remote model is read into
// memory like a local one, never written to disk. Errors wrap ErrModel
// (or fs.ErrNotExist for a missing file) and say what is wrong.
func LoadModel(path string) (*Model, error) {
	data, err := store.ReadFile(context.Background(), path, 0)
	if err != nil {
		return nil, fmt.Errorf("teacher model: %w", err)
	}
	m, err := ParseModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// ParseModel parses ONNX model bytes.
func ParseModel(data []byte) (*Model, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrModel)
	}
	mp := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return nil, fmt.Errorf("%w: not an ONNX model (protobuf: %v)", ErrModel, err)
	}
	g := mp.GetGraph()
	if g == nil || len(g.GetNode()) == 0 && len(g.GetOutput()) == 0 {
		return nil, fmt.Errorf("%w: not an ONNX model (no graph); is this really a .onnx file?", ErrModel)
	}
	if mp.GetIrVersion() <= 0 {
		return nil, fmt.Errorf("%w: not an ONNX model (ir_version missing)", ErrModel)
	}
	sum := sha256.Sum256(data)
	m := &Model{
		SHA256:    hex.EncodeToString(sum[:]),
		Size:      int64(len(data)),
		Proto:     mp,
		Producer:  strings.TrimSpace(mp.GetProducerName() + " " + mp.GetProducerVersion()),
		types:     map[string]*onnxpb.TypeProto{},
		producer:  map[string]*onnxpb.NodeProto{},
		consumers: map[string][]*onnxpb.NodeProto{},
		inits:     map[string]bool{},
	}
	for _, o := range mp.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			m.Opset = o.GetVersion()
		}
	}
	m.index()
	if len(m.Inputs()) == 0 {
		return nil, fmt.Errorf("%w: the graph has no inputs", ErrModel)
	}
	return m, nil
}

// index records producers, consumers and the element type of every tensor,
// from declarations where present and by forward propagation otherwise.
func (m *Model) index() {
	g := m.Proto.GetGraph()
	for _, t := range g.GetInitializer() {
		m.inits[t.GetName()] = true
		m.types[t.GetName()] = tensorType(ElemType(t.GetDataType()), t.GetDims())
	}
	for _, lists := range [][]*onnxpb.ValueInfoProto{g.GetInput(), g.GetValueInfo(), g.GetOutput()} {
		for _, v := range lists {
			if v.GetType() != nil {
				m.types[v.GetName()] = v.GetType()
			}
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			m.consumers[in] = append(m.consumers[in], n)
		}
		for i, out := range n.GetOutput() {
			if out == "" {
				continue
			}
			m.producer[out] = n
			if _, ok := m.types[out]; !ok {
				if e := m.inferElem(n, i); e != 0 {
					m.types[out] = tensorType(e, nil)
				}
			}
		}
	}
}

func tensorType(e ElemType, dims []int64) *onnxpb.TypeProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(e))}
	if dims != nil {
		tt.Shape = &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			tt.Shape.Dim = append(tt.Shape.Dim, &onnxpb.TensorShapeProto_Dimension{
				Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}
}

// inferElem guesses the element type of output i of n from the op's type
// rules; most ops keep their first input's type. 0 means unknown.
func (m *Model) inferElem(n *onnxpb.NodeProto, i int) ElemType {
	attrInt := func(name string) (int64, bool) {
		for _, a := range n.GetAttribute() {
			if a.GetName() == name {
				return a.GetI(), true
			}
		}
		return 0, false
	}
	switch n.GetOpType() {
	case "Cast":
		if to, ok := attrInt("to"); ok {
			return ElemType(to)
		}
	case "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "NonMaxSuppression":
		return Int64
	case "TopK":
		if i == 1 {
			return Int64
		}
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf":
		return onnxpb.TensorProto_BOOL
	case "Constant", "ConstantOfShape":
		for _, a := range n.GetAttribute() {
			if a.GetT() != nil {
				return ElemType(a.GetT().GetDataType())
			}
		}
		if n.GetOpType() == "ConstantOfShape" {
			return Float32
		}
	case "QuantizeLinear", "DynamicQuantizeLinear":
		return onnxpb.TensorProto_UINT8
	case "TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier":
		if i == 0 {
			return Int64 // label (may be string for string class labels)
		}
		return Float32
	case "TreeEnsembleRegressor", "LinearRegressor", "SVMRegressor", "Scaler", "Normalizer", "Binarizer", "Imputer":
		return Float32
	case "ZipMap":
		return 0
	}
	if len(n.GetInput()) > 0 {
		if t := m.types[n.GetInput()[0]]; t.GetTensorType() != nil {
			return ElemType(t.GetTensorType().GetElemType())
		}
	}
	return 0
}

// Info describes a tensor by name.
func (m *Model) Info(name string) TensorInfo {
	ti := TensorInfo{Name: name}
	if p := m.producer[name]; p != nil {
		ti.Op, ti.Domain = p.GetOpType(), p.GetDomain()
	}
	t := m.types[name]
	switch {
	case t.GetTensorType() != nil:
		ti.Kind = "tensor"
		ti.Elem = ElemType(t.GetTensorType().GetElemType())
		if sh := t.GetTensorType().GetShape(); sh != nil {
			ti.Shape = make([]int64, len(sh.GetDim()))
			for i, d := range sh.GetDim() {
				ti.Shape[i] = -1
				if _, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && d.GetDimValue() > 0 {
					ti.Shape[i] = d.GetDimValue()
				}
			}
		}
	case t.GetSequenceType() != nil:
		ti.Kind = "sequence"
	case t.GetMapType() != nil:
		ti.Kind = "map"
	}
	return ti
}

// Inputs lists the graph inputs that must be fed (initializers excluded).
func (m *Model) Inputs() []TensorInfo {
	var out []TensorInfo
	for _, v := range m.Proto.GetGraph().GetInput() {
		if !m.inits[v.GetName()] {
			out = append(out, m.Info(v.GetName()))
		}
	}
	return out
}

// Outputs lists the graph outputs.
func (m *Model) Outputs() []TensorInfo {
	var out []TensorInfo
	for _, v := range m.Proto.GetGraph().GetOutput() {
		out = append(out, m.Info(v.GetName()))
	}
	return out
}

// Intermediates lists every tensor produced by a node that is not a graph
// output, in graph order.
func (m *Model) Intermediates() []TensorInfo {
	outs := map[string]bool{}
	for _, v := range m.Proto.GetGraph().GetOutput() {
		outs[v.GetName()] = true
	}
	var res []TensorInfo
	for _, n := range m.Proto.GetGraph().GetNode() {
		for _, o := range n.GetOutput() {
			if o != "" && !outs[o] {
				res = append(res, m.Info(o))
			}
		}
	}
	return res
}

// Has reports whether name is a tensor of the graph (input, initializer or
// node output).
func (m *Model) Has(name string) bool {
	if m.producer[name] != nil || m.inits[name] {
		return true
	}
	for _, v := range m.Proto.GetGraph().GetInput() {
		if v.GetName() == name {
			return true
		}
	}
	return false
}

// ProducedBy returns the node producing name, or nil.
func (m *Model) ProducedBy(name string) *onnxpb.NodeProto { return m.producer[name] }

// Closest returns up to n tensor names nearest to name by edit distance,
// for "did you mean" messages.
func (m *Model) Closest(name string, n int) []string {
	type cand struct {
		s string
		d int
	}
	var cs []cand
	seen := map[string]bool{}
	for _, t := range append(m.Intermediates(), m.Outputs()...) {
		if !seen[t.Name] {
			seen[t.Name] = true
			cs = append(cs, cand{t.Name, editDistance(strings.ToLower(name), strings.ToLower(t.Name))})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var res []string
	for i := 0; i < len(cs) && i < n; i++ {
		res = append(res, cs[i].s)
	}
	return res
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// castSuffix names the float32 copies WithOutputs adds for tensors of
// other element types.
const castSuffix = "__distill_f32"

// WithOutputs returns the serialized bytes of a copy of the model prepared
// for distill: graph.output lists exactly outputs (existing graph outputs
// keep their declarations; other tensors are appended with their element
// type), every fetched tensor that is not float32 is Cast to float32, and
// every float64 or float16 input takes float32 and is Cast inside the graph,
// so the caller only ever feeds and reads float32. fetch[i] is the name to
// fetch for outputs[i]. Unknown names are an error listing the closest names.
func (m *Model) WithOutputs(outputs []string) (model []byte, fetch []string, err error) {
	mp := proto.Clone(m.Proto).(*onnxpb.ModelProto)
	g := mp.GetGraph()
	declared := map[string]*onnxpb.ValueInfoProto{}
	for _, v := range g.GetOutput() {
		declared[v.GetName()] = v
	}
	g.Output = nil
	for _, name := range outputs {
		if !m.Has(name) {
			return nil, nil, fmt.Errorf("%w: no tensor named %q in %s; closest: %s", ErrModel, name, filepath.Base(m.Path),
				strings.Join(quoteAll(m.Closest(name, 5)), ", "))
		}
		t := m.types[name]
		if v := declared[name]; v != nil && v.GetType() != nil {
			t = v.GetType()
		}
		tt := t.GetTensorType()
		if tt == nil {
			return nil, nil, fmt.Errorf("%w: cannot fetch %q (produced by %s): it is not a tensor of a known element type; pick another tensor",
				ErrModel, name, m.Info(name).Op)
		}
		elem := ElemType(tt.GetElemType())
		switch {
		case elem == Float32:
			g.Output = append(g.Output, valueInfo(name, Float32))
			fetch = append(fetch, name)
		case isNumeric(elem):
			out := name + castSuffix
			g.Node = append(g.Node, castNode(name, out))
			g.Output = append(g.Output, valueInfo(out, Float32))
			fetch = append(fetch, out)
		default:
			return nil, nil, fmt.Errorf("%w: tensor %q has element type %s, which is not numeric", ErrModel, name, elem)
		}
	}
	// Inputs of other float types take float32 and are cast inside.
	for _, v := range g.GetInput() {
		tt := v.GetType().GetTensorType()
		if m.inits[v.GetName()] || tt == nil || ElemType(tt.GetElemType()) == Float32 {
			continue
		}
		if e := ElemType(tt.GetElemType()); e != Float64 && e != Float16 && e != Int64 && e != Int32 {
			return nil, nil, fmt.Errorf("%w: input %q has element type %s; distill feeds float32, float64, float16, int64 or int32 inputs",
				ErrModel, v.GetName(), e)
		}
		orig := v.GetName()
		inner := orig + "__distill_orig"
		renameInputs(g, orig, inner)
		tt.ElemType = proto.Int32(int32(Float32))
		g.Node = append([]*onnxpb.NodeProto{castNodeTo(orig, inner, ElemType(0))}, g.Node...)
		g.Node[0].Attribute[0].I = proto.Int64(int64(elemOf(m.types[orig])))
	}
	data, err := proto.Marshal(mp)
	return data, fetch, err
}

func elemOf(t *onnxpb.TypeProto) ElemType { return ElemType(t.GetTensorType().GetElemType()) }

func isNumeric(e ElemType) bool {
	switch e {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16,
		onnxpb.TensorProto_INT8, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT64,
		onnxpb.TensorProto_UINT8, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		return true
	}
	return false
}

func valueInfo(name string, e ElemType) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: tensorType(e, nil)}
}

func castNode(in, out string) *onnxpb.NodeProto { return castNodeTo(in, out, Float32) }

func castNodeTo(in, out string, to ElemType) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		Name: proto.String("distill_cast_" + out), OpType: proto.String("Cast"),
		Input: []string{in}, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(to))}},
	}
}

// renameInputs replaces uses of tensor from by to in g's nodes and in the
// subgraphs of their attributes (If/Loop/Scan bodies may use outer names).
func renameInputs(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.GetNode() {
		for i, in := range n.Input {
			if in == from {
				n.Input[i] = to
			}
		}
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil {
				renameInputs(a.GetG(), from, to)
			}
			for _, sg := range a.GetGraphs() {
				renameInputs(sg, from, to)
			}
		}
	}
	for _, o := range g.GetOutput() {
		if o.GetName() == from {
			o.Name = proto.String(to)
		}
	}
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// FixedBatch returns the fixed leading dimension shared by the model's
// inputs, or 0 when the batch axis is dynamic (or the inputs disagree).
func (m *Model) FixedBatch() int64 {
	var fixed int64
	for _, in := range m.Inputs() {
		if len(in.Shape) == 0 || in.Shape[0] <= 0 {
			return 0
		}
		if fixed != 0 && fixed != in.Shape[0] {
			return 0
		}
		fixed = in.Shape[0]
	}
	return fixed
}

// RelaxBatch returns a copy of the model whose inputs' and outputs' leading
// dimension is symbolic ("N") instead of fixed, and without intermediate
// value_info (which may pin the old batch size). Whether the graph really
// computes with another batch size (a Reshape to a constant [1,256] does
// not) is for the caller to check by running it.
func (m *Model) RelaxBatch() *Model {
	mp := proto.Clone(m.Proto).(*onnxpb.ModelProto)
	g := mp.GetGraph()
	relax := func(vs []*onnxpb.ValueInfoProto) {
		for _, v := range vs {
			if m.inits[v.GetName()] {
				continue
			}
			if sh := v.GetType().GetTensorType().GetShape(); sh != nil && len(sh.Dim) > 0 {
				sh.Dim[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}
			}
		}
	}
	relax(g.GetInput())
	relax(g.GetOutput())
	g.ValueInfo = nil
	return m.derived(mp)
}

// derived returns a Model of the edited copy mp of m's graph, indexed
// anew; Path, SHA256 and Size stay those of the file.
func (m *Model) derived(mp *onnxpb.ModelProto) *Model {
	c := *m
	c.Proto = mp
	c.types = map[string]*onnxpb.TypeProto{}
	c.producer = map[string]*onnxpb.NodeProto{}
	c.consumers = map[string][]*onnxpb.NodeProto{}
	c.inits = map[string]bool{}
	c.index()
	return &c
}

// TopKTensors names the tensors WithTopK adds.
type TopKTensors struct {
	Values  string // [..., k] float32: the k largest scores, descending
	Indices string // [..., k] int64: their class ids
	LSE     string // [...] float32: log Σ_c exp(score_c) over all classes
	Min     string // [...] float32: the smallest score
}

// MinTopKOpset is the first ai.onnx opset whose TopK takes k as an input
// and breaks ties by the lower index (opset 11); older graphs keep the
// scores and take their top-k in Go.
const MinTopKOpset = 11

// WithTopK returns a copy of the model that also computes, inside the
// graph, over the last axis of the score tensor scores (first cast to
// float32 when it is another numeric type, as WithOutputs casts): TopK (k largest, sorted,
// ties to the lower index, as formats.TopK), ReduceLogSumExp and
// ReduceMin. Fetching these instead of the scores moves the per-position
// top-k and logsumexp of a [N,T,V] teacher into onnxruntime's threads and
// copies k+3 values per position out of it instead of V. The
// logsumexp is non-finite when a score is NaN or +Inf and the minimum is
// −Inf when one is −Inf, so non-finite scores are still seen. Attributes
// and inputs follow the model's opset (axes became an input of ReduceMin
// and ReduceLogSumExp in opset 18).
func (m *Model) WithTopK(scores string, k int) (*Model, TopKTensors, error) {
	if m.Opset < MinTopKOpset {
		return nil, TopKTensors{}, fmt.Errorf("%w: opset %d has no TopK with a k input (needs %d)", ErrModel, m.Opset, MinTopKOpset)
	}
	elem := m.Info(scores).Elem
	if !isNumeric(elem) {
		return nil, TopKTensors{}, fmt.Errorf("%w: score tensor %q has element type %s, which is not numeric", ErrModel, scores, elem)
	}
	mp := proto.Clone(m.Proto).(*onnxpb.ModelProto)
	g := mp.GetGraph()
	const pre = "distill_topk_"
	t := TopKTensors{Values: pre + "values", Indices: pre + "indices", LSE: pre + "logsumexp", Min: pre + "min"}
	in := scores
	if elem != Float32 {
		in = pre + "scores"
		g.Node = append(g.Node, castNodeTo(scores, in, Float32))
	}
	ints := func(name string, v ...int64) {
		g.Initializer = append(g.Initializer, &onnxpb.TensorProto{
			Name: proto.String(name), DataType: proto.Int32(int32(Int64)), Dims: []int64{int64(len(v))}, Int64Data: v})
	}
	ints(pre+"k", int64(k))
	ints(pre+"axes", -1)
	node := func(op string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) {
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(pre + op), OpType: proto.String(op), Input: inputs, Output: outputs, Attribute: attrs})
	}
	intAttr := func(name string, v int64) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
	}
	node("TopK", []string{in, pre + "k"}, []string{t.Values, t.Indices}, intAttr("axis", -1), intAttr("largest", 1), intAttr("sorted", 1))
	for _, r := range [][2]string{{"ReduceLogSumExp", t.LSE}, {"ReduceMin", t.Min}} {
		op, out := r[0], r[1]
		if m.Opset >= 18 {
			node(op, []string{in, pre + "axes"}, []string{out}, intAttr("keepdims", 0))
		} else {
			node(op, []string{in}, []string{out}, intAttr("keepdims", 0),
				&onnxpb.AttributeProto{Name: proto.String("axes"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: []int64{-1}})
		}
	}
	g.ValueInfo = append(g.ValueInfo, valueInfo(t.Values, Float32), valueInfo(t.Indices, Int64), valueInfo(t.LSE, Float32), valueInfo(t.Min, Float32))
	return m.derived(mp), t, nil
}

// Penultimate returns the tensor that feeds the last MatMul or Gemm on the
// way back from scores (the classifier's input features, usually the best
// hidden state to distill from), looking through Dropout and Identity.
// "" when there is none.
func (m *Model) Penultimate(scores string) string {
	name := scores
	for steps := 0; steps < 64; steps++ {
		p := m.producer[name]
		if p == nil || len(p.GetInput()) == 0 {
			return ""
		}
		switch p.GetOpType() {
		case "MatMul", "Gemm", "MatMulInteger", "QLinearMatMul":
			for _, in := range p.GetInput() {
				if in != "" && !m.inits[in] && m.producer[in] != nil && m.producer[in].GetOpType() != "Constant" {
					for { // look through ops that do not change the values
						q := m.producer[in]
						if q == nil || len(q.GetInput()) == 0 {
							return in
						}
						switch q.GetOpType() {
						case "Dropout", "Identity":
							in = q.GetInput()[0]
							continue
						}
						return in
					}
				}
			}
			return ""
		}
		// Follow the first non-constant input.
		next := ""
		for _, in := range p.GetInput() {
			if in != "" && !m.inits[in] && (m.producer[in] == nil || m.producer[in].GetOpType() != "Constant") {
				next = in
				break
			}
		}
		if next == "" {
			return ""
		}
		name = next
	}
	return ""
}

// ParamCount counts the values of a model's weights: its initializers and
// Constant tensors, except int64 ones (shapes, axes, indices).
func ParamCount(mp *onnxpb.ModelProto) int64 {
	count := func(t *onnxpb.TensorProto) int64 {
		if t == nil || t.GetDataType() == int32(onnxpb.TensorProto_INT64) {
			return 0
		}
		n := int64(1)
		for _, d := range t.GetDims() {
			n *= d
		}
		return n
	}
	var n int64
	g := mp.GetGraph()
	for _, t := range g.GetInitializer() {
		n += count(t)
	}
	for _, node := range g.GetNode() {
		if node.GetOpType() == "Constant" {
			for _, a := range node.GetAttribute() {
				n += count(a.GetT())
			}
		}
	}
	return n
}

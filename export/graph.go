package export

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/distill-ml/distill/formats"

	"github.com/distill-ml/distill/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// graph accumulates the nodes and initializers of one ONNX graph in
// topological order. Every node is named SCOPE/OP (with a numeric suffix if
// the scope repeats the op) and its single output takes the node's name, so
// a dump reads like the student's layer list.
type graph struct {
	opset int
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
	used  map[string]bool
}

func newGraph(opset int) *graph { return &graph{opset: opset, used: map[string]bool{}} }

// unique returns name, or name_2, name_3, ... if it is taken, and marks it
// taken.
func (g *graph) unique(name string) string {
	n := name
	for i := 2; g.used[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	g.used[n] = true
	return n
}

// op appends the node scope/opType with the given inputs and attributes and
// returns the name of its output, which is out if not empty.
func (g *graph) op(scope, opType, out string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name := g.unique(scope + "/" + opType)
	if out == "" {
		out = name
	} else {
		g.used[out] = true
	}
	g.nodes = append(g.nodes, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(opType),
		Input: inputs, Output: []string{out}, Attribute: attrs,
	})
	return out
}

// multi appends a node with several outputs, named name:0, name:1, ...
func (g *graph) multi(scope, opType string, outputs int, inputs []string, attrs ...*onnxpb.AttributeProto) []string {
	name := g.unique(scope + "/" + opType)
	outs := make([]string, outputs)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s:%d", name, i)
		g.used[outs[i]] = true
	}
	g.nodes = append(g.nodes, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(opType),
		Input: inputs, Output: outs, Attribute: attrs,
	})
	return outs
}

// float32s adds a FLOAT initializer (raw little-endian data).
func (g *graph) float32s(name string, dims []int64, v []float32) string {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return g.init(name, onnxpb.TensorProto_FLOAT, dims, raw)
}

// float16s adds a FLOAT16 initializer holding v rounded to binary16.
func (g *graph) float16s(name string, dims []int64, v []float32) string {
	raw := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(raw[2*i:], formats.Float16Bits(x))
	}
	return g.init(name, onnxpb.TensorProto_FLOAT16, dims, raw)
}

// uint8s adds a UINT8 initializer.
func (g *graph) uint8s(name string, dims []int64, v []uint8) string {
	return g.init(name, onnxpb.TensorProto_UINT8, dims, append([]byte(nil), v...))
}

// scalar adds a rank-0 FLOAT initializer.
func (g *graph) scalar(name string, v float32) string {
	return g.float32s(name, []int64{}, []float32{v})
}

func (g *graph) init(name string, dt onnxpb.TensorProto_DataType, dims []int64, raw []byte) string {
	name = g.unique(name)
	g.inits = append(g.inits, &onnxpb.TensorProto{
		Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims, RawData: raw,
	})
	return name
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// valueInfo declares a tensor of element type dt and shape dims, where a
// negative dim is the symbolic batch axis "N".
func valueInfo(name string, dt onnxpb.TensorProto_DataType, dims []int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d < 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: BatchDim}
		} else {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(dt)), Shape: shape,
		}}},
	}
}

// int64s adds an INT64 initializer (a Reshape's target shape).
func (g *graph) int64s(name string, dims []int64, v []int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return g.init(name, onnxpb.TensorProto_INT64, dims, raw)
}

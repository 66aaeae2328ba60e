package export

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Dump writes a readable listing of the ONNX model in data: header, inputs,
// outputs, initializers (type, shape, bytes), nodes in order as
// "OUTPUTS = Op(INPUTS) ATTRS", and metadata. It is meant for people and
// golden tests, not for parsing.
func Dump(w io.Writer, data []byte) error {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("export: dump: not an ONNX model: %w", err)
	}
	var b strings.Builder
	var opsets []string
	for _, o := range m.GetOpsetImport() {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		opsets = append(opsets, fmt.Sprintf("%s %d", d, o.GetVersion()))
	}
	fmt.Fprintf(&b, "model   ir_version %d, opset %s, producer %s %s\n", m.GetIrVersion(), strings.Join(opsets, ", "), m.GetProducerName(), m.GetProducerVersion())
	if d := m.GetDocString(); d != "" {
		fmt.Fprintf(&b, "doc     %s\n", d)
	}
	g := m.GetGraph()
	for _, v := range g.GetInput() {
		fmt.Fprintf(&b, "input   %s %s\n", v.GetName(), typeString(v.GetType()))
	}
	for _, v := range g.GetOutput() {
		fmt.Fprintf(&b, "output  %s %s\n", v.GetName(), typeString(v.GetType()))
	}
	for _, t := range g.GetInitializer() {
		fmt.Fprintf(&b, "init    %s %s%s %d bytes\n", t.GetName(), elemName(t.GetDataType()), dimsString(t.GetDims()), len(t.GetRawData()))
	}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" {
			op = d + "." + op
		}
		fmt.Fprintf(&b, "node    %s = %s(%s)", strings.Join(n.GetOutput(), ", "), op, strings.Join(n.GetInput(), ", "))
		for _, a := range n.GetAttribute() {
			fmt.Fprintf(&b, " %s=%s", a.GetName(), attrString1(a))
		}
		b.WriteByte('\n')
	}
	for _, p := range m.GetMetadataProps() {
		fmt.Fprintf(&b, "meta    %s = %s\n", p.GetKey(), p.GetValue())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func elemName(dt int32) string {
	switch onnxpb.TensorProto_DataType(dt) {
	case onnxpb.TensorProto_FLOAT:
		return "float"
	case onnxpb.TensorProto_FLOAT16:
		return "float16"
	case onnxpb.TensorProto_DOUBLE:
		return "double"
	}
	return strings.ToLower(onnxpb.TensorProto_DataType(dt).String())
}

func dimsString(dims []int64) string {
	p := make([]string, len(dims))
	for i, d := range dims {
		p[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(p, ",") + "]"
}

func typeString(t *onnxpb.TypeProto) string {
	tt := t.GetTensorType()
	if tt == nil {
		return "?"
	}
	var p []string
	for _, d := range tt.GetShape().GetDim() {
		if d.GetDimParam() != "" {
			p = append(p, d.GetDimParam())
		} else {
			p = append(p, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return elemName(tt.GetElemType()) + "[" + strings.Join(p, ",") + "]"
}

func attrString1(a *onnxpb.AttributeProto) string {
	switch a.GetType() {
	case onnxpb.AttributeProto_INT:
		if a.GetName() == "to" {
			return elemName(int32(a.GetI()))
		}
		return strconv.FormatInt(a.GetI(), 10)
	case onnxpb.AttributeProto_FLOAT:
		return strconv.FormatFloat(float64(a.GetF()), 'g', -1, 32)
	case onnxpb.AttributeProto_STRING:
		return strconv.Quote(string(a.GetS()))
	case onnxpb.AttributeProto_INTS:
		return dimsString(a.GetInts())
	}
	return a.GetType().String()
}

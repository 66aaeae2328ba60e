package export

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

// cnnFormats are the weight formats and the opsets where a CNN graph
// changes form (Clip's min and max are attributes before opset 11).
var cnnFormats = []struct {
	name string
	opts Options
}{
	{"f32", Options{}},
	{"f32_opset9", Options{Opset: 9}},
	{"f16", Options{Dtype: F16}},
	{"int8", Options{Quantize: Int8}},
	{"int8_opset11_probs", Options{Quantize: Int8, Opset: 11, Probs: true}},
}

func cnnCheckpoint(t testing.TB, k fixtures.CNNCase, seed uint64) *train.Checkpoint {
	t.Helper()
	s := fixtures.CNNStudent(t, k, seed)
	return &train.Checkpoint{Student: s, Info: train.CheckpointInfo{Student: s.Config, Input: "image"}}
}

func cnnCase(t testing.TB, name string) fixtures.CNNCase {
	t.Helper()
	for _, k := range fixtures.CNNCases {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("no CNN case %s", name)
	return fixtures.CNNCase{}
}

func marshalCNN(t testing.TB, c *train.Checkpoint, o Options) []byte {
	t.Helper()
	o.ToolVersion = "test"
	data, err := Marshal(c, &o)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCNNSemantics runs every CNN case in every format through the float64
// reference evaluator (the ONNX operator definitions, not onnxruntime)
// and compares the logits with the Go layers' inference forward pass
// within the format's tolerance.
func TestCNNSemantics(t *testing.T) {
	const rows = 5
	for _, k := range fixtures.CNNCases {
		c := cnnCheckpoint(t, k, 1)
		x := fixtures.CNNInputs(c.Student, rows, 2)
		want := fixtures.CNNForward(c.Student, x, rows)
		for _, f := range cnnFormats {
			t.Run(k.Name+"/"+f.name, func(t *testing.T) {
				out, err := evalModel(marshalCNN(t, c, f.opts), x, rows)
				if err != nil {
					t.Fatal(err)
				}
				got := out[LogitsName]
				if len(got.shape) != 2 || got.shape[0] != rows || got.shape[1] != k.Classes {
					t.Fatalf("logits shape %v, want [%d %d]", got.shape, rows, k.Classes)
				}
				var maxAbs, maxDiff float64
				for i, w := range want {
					maxAbs = max(maxAbs, math.Abs(float64(w)))
					maxDiff = max(maxDiff, math.Abs(got.v[i]-float64(w)))
				}
				tol := Tolerance(&f.opts, maxAbs)
				t.Logf("max |Δlogit| %.3g (max |logit| %.3g, tolerance %.3g)", maxDiff, maxAbs, tol)
				if maxDiff > tol || math.IsNaN(maxDiff) {
					t.Errorf("max |Δlogit| %g > %g", maxDiff, tol)
				}
				if maxAbs < 0.5 {
					t.Errorf("max |logit| %g: the case's logits are too small to check anything", maxAbs)
				}
			})
		}
	}
}

// opCount counts the graph's nodes by op type.
func opCount(t *testing.T, data []byte) map[string]int {
	t.Helper()
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, node := range m.GetGraph().GetNode() {
		n[node.GetOpType()]++
	}
	return n
}

// TestCNNFolding: a BatchNorm right after a Conv leaves no node (it is in
// the Conv's weights), any other BatchNorm is a BatchNormalization node,
// and every conv is one Conv or ConvInteger node (in int8: Conv for the
// first layer and grouped convs, which keep a float input).
func TestCNNFolding(t *testing.T) {
	for _, k := range fixtures.CNNCases {
		c := cnnCheckpoint(t, k, 1)
		var convs, floatConvs, loose, folded int
		for i, l := range c.Student.Layers {
			switch l := l.(type) {
			case *train.Conv2d:
				if convs == 0 || l.Groups > 1 {
					floatConvs++
				}
				convs++
			case *train.BatchNorm2d:
				if _, ok := c.Student.Layers[i-1].(*train.Conv2d); ok {
					folded++
				} else {
					loose++
				}
			}
		}
		for _, f := range []Options{{}, {Quantize: Int8}} {
			n := opCount(t, marshalCNN(t, c, f))
			if n["BatchNormalization"] != loose {
				t.Errorf("%s %+v: %d BatchNormalization nodes, want %d (%d batchnorms folded)", k.Name, f, n["BatchNormalization"], loose, folded)
			}
			if n["Conv"]+n["ConvInteger"] != convs {
				t.Errorf("%s %+v: %d Conv and %d ConvInteger nodes for %d convolutions", k.Name, f, n["Conv"], n["ConvInteger"], convs)
			}
			if f.Quantize != "" && (n["Conv"] != floatConvs || n["ConvInteger"] != convs-floatConvs) {
				t.Errorf("%s int8: %d Conv, %d ConvInteger; want %d convs (the first, grouped) in float and the rest integer", k.Name, n["Conv"], n["ConvInteger"], floatConvs)
			}
		}
	}
}

// TestCNNFoldFormula checks the folded initializers of conv_bn_maxpool
// against w·γ/√(σ²+ε) and (0−μ)·γ/√(σ²+ε)+β computed here.
func TestCNNFoldFormula(t *testing.T) {
	c := cnnCheckpoint(t, cnnCase(t, "conv_bn_maxpool"), 3)
	conv, bn := c.Student.Layers[0].(*train.Conv2d), c.Student.Layers[1].(*train.BatchNorm2d)
	if conv.Bias != nil {
		t.Fatal("a conv followed by bn has a bias")
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(marshalCNN(t, c, Options{}), m); err != nil {
		t.Fatal(err)
	}
	inits := map[string]tensor{}
	for _, x := range m.GetGraph().GetInitializer() {
		inits[x.GetName()] = decodeInit(x)
	}
	w, b := inits["0+1.weight"], inits["0+1.bias"]
	if len(w.v) != len(conv.Weight.Data) || len(b.v) != conv.F {
		t.Fatalf("folded initializers 0+1.weight %v, 0+1.bias %v; have %v", w.shape, b.shape, m.GetGraph().GetInitializer())
	}
	per := len(w.v) / conv.F
	for f := range conv.F {
		s := float64(bn.Gamma.Data[f]) / math.Sqrt(float64(bn.RunningVar[f])+1e-5)
		if want := -float64(bn.RunningMean[f])*s + float64(bn.Beta.Data[f]); math.Abs(b.v[f]-want) > 1e-6*max(1, math.Abs(want)) {
			t.Errorf("bias[%d] = %v, want %v", f, b.v[f], want)
		}
		for j := range per {
			want := float64(conv.Weight.Data[f*per+j]) * s
			if math.Abs(w.v[f*per+j]-want) > 1e-6*max(1, math.Abs(want)) {
				t.Errorf("weight[%d,%d] = %v, want %v", f, j, w.v[f*per+j], want)
			}
		}
	}
}

// TestCNNStandardizeShape: per-channel standardization is written as
// [C,1,1] initializers, per-feature as [C,H,W].
func TestCNNStandardizeShape(t *testing.T) {
	for name, want := range map[string][]int{"conv_bias_relu_fc": {2, 1, 1}, "conv5x5_stride2_pad2": {3, 9, 9}, "hw_input": {1, 1, 1}} {
		m := &onnxpb.ModelProto{}
		if err := proto.Unmarshal(marshalCNN(t, cnnCheckpoint(t, cnnCase(t, name), 1), Options{}), m); err != nil {
			t.Fatal(err)
		}
		for _, x := range m.GetGraph().GetInitializer() {
			if n := x.GetName(); (n == "input_mean" || n == "input_std") && dimsString(x.GetDims()) != dimsString([]int64{int64(want[0]), int64(want[1]), int64(want[2])}) {
				t.Errorf("%s: %s has shape %v, want %v", name, n, x.GetDims(), want)
			}
		}
	}
}

// TestCNNGolden compares the graph dumps of a few CNN exports with
// testdata/cnn_*.txt (-update rewrites them).
func TestCNNGolden(t *testing.T) {
	for _, g := range []struct {
		name, kase string
		opts       Options
	}{
		{"cnn_conv_bn_maxpool", "conv_bn_maxpool", Options{}},
		{"cnn_avgpool_then_bn_f16", "avgpool_then_bn", Options{Dtype: F16}},
		{"cnn_dwconv_int8", "dwconv_bn_relu6_gap", Options{Quantize: Int8}},
		{"cnn_hw_input_opset9", "hw_input", Options{Opset: 9}},
		{"cnn_groups2_dilation2", "groups2_dilation2_stride2", Options{}},
	} {
		t.Run(g.name, func(t *testing.T) {
			golden(t, g.name, marshalCNN(t, cnnCheckpoint(t, cnnCase(t, g.kase), 1), g.opts))
		})
	}
}

// TestCNNChecker runs the official ONNX checker over every CNN case in
// every format.
func TestCNNChecker(t *testing.T) {
	script := requireChecker(t)
	dir := t.TempDir()
	var files []string
	for _, k := range fixtures.CNNCases {
		c := cnnCheckpoint(t, k, 1)
		for _, f := range cnnFormats {
			p := filepath.Join(dir, k.Name+"_"+f.name+".onnx")
			if err := os.WriteFile(p, marshalCNN(t, c, f.opts), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	runChecker(t, script, files)
}

// TestCNNErrors: what cannot be exported is a clear error and writes
// nothing.
func TestCNNErrors(t *testing.T) {
	k := cnnCase(t, "conv_bn_maxpool")
	for _, tc := range []struct {
		name string
		edit func(s *train.Student)
		opts Options
		want string
	}{
		{"f16 overflow after folding", func(s *train.Student) {
			s.Layers[1].(*train.BatchNorm2d).Gamma.Data[0] = 1e6
		}, Options{Dtype: F16}, "0+1.weight"},
		{"negative running variance", func(s *train.Student) {
			s.Layers[1].(*train.BatchNorm2d).RunningVar[2] = -1
		}, Options{}, "folding batchnorm channel 2"},
		{"layer without ONNX form", func(s *train.Student) {
			s.Layers = append(s.Layers[:2], append([]train.Layer{train.NewLayerNorm("x", s.Layers[1].OutSize(), train.Identity)}, s.Layers[2:]...)...)
		}, Options{}, "has no ONNX form"},
		{"input shape not an image", func(s *train.Student) { s.Config.InputShape = []int{64} }, Options{}, "needs an image input shape"},
		{"layers that do not chain", func(s *train.Student) { s.Layers = s.Layers[1:] }, Options{}, "takes"},
	} {
		c := cnnCheckpoint(t, k, 1)
		tc.edit(c.Student)
		_, err := Marshal(c, &tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
		if tc.name == "layer without ONNX form" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v does not wrap ErrUnsupported", tc.name, err)
		}
	}
}

package export

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden graph dumps in testdata")

// testCheckpoint returns a student of cfg with random weights (seed) and a
// non-trivial input standardization, with provenance filled in.
func testCheckpoint(t testing.TB, cfg train.Config, seed uint64) *train.Checkpoint {
	t.Helper()
	s, err := train.NewStudent(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	mean, std := make([]float32, cfg.Inputs), make([]float32, cfg.Inputs)
	for i := range mean {
		mean[i] = float32(rng.NormFloat64())
		std[i] = float32(0.5 + rng.Float64())
	}
	if err := s.Standardize.Set(mean, std); err != nil {
		t.Fatal(err)
	}
	// Non-default LayerNorm affine parameters, so they are exercised.
	for _, p := range s.Params.List {
		if strings.HasPrefix(p.Name, "ln") {
			for i := range p.Data {
				p.Data[i] += float32(0.3 * rng.NormFloat64())
			}
		}
	}
	acc := 0.97
	return &train.Checkpoint{Student: s, Info: train.CheckpointInfo{
		Student: s.Config, Input: "image",
		Training: train.Options{Temperature: 4, Alpha: 0.9, Epochs: 3},
		Epoch:    3, Step: 300,
		Cache: train.Provenance{Digest: "sha256:cafe", TeacherSHA256: "beef", Rows: 1000, Classes: cfg.Classes},
		Metrics: []train.EpochMetrics{{Epoch: 3, Step: 300, TrainLoss: 0.25, LR: 1e-3,
			Val: &train.Metrics{Rows: 100, Accuracy: &acc, Agreement: 0.98}}},
	}}
}

// variant is one exported form of a test student.
type variant struct {
	name string
	cfg  train.Config
	opts Options
}

var tinyShape = train.Config{Inputs: 12, InputShape: []int{1, 3, 4}, Hidden: []int{6, 5}, Classes: 4}

func with(f func(*train.Config)) train.Config {
	c := tinyShape
	c.Hidden = append([]int(nil), c.Hidden...)
	f(&c)
	return c
}

// variants covers every activation, with and without LayerNorm, every
// weight format, Softmax, and the opsets where the graph changes form.
var variants = []variant{
	{"relu", with(func(c *train.Config) { c.Activation = train.ReLU; c.Dropout = 0.5 }), Options{}},
	{"relu_probs", with(func(c *train.Config) { c.Activation = train.ReLU }), Options{Probs: true}},
	{"gelu", with(func(c *train.Config) { c.Activation = train.GELU }), Options{}},
	{"tanh", with(func(c *train.Config) { c.Activation = train.Tanh }), Options{}},
	{"relu_ln", with(func(c *train.Config) { c.Activation = train.ReLU; c.LayerNorm = true }), Options{}},
	{"gelu_ln", with(func(c *train.Config) { c.Activation = train.GELU; c.LayerNorm = true }), Options{}},
	{"tanh_ln", with(func(c *train.Config) { c.Activation = train.Tanh; c.LayerNorm = true }), Options{}},
	{"gelu_ln_opset13", with(func(c *train.Config) { c.Activation = train.GELU; c.LayerNorm = true }), Options{Opset: 13}},
	{"gelu_ln_opset20", with(func(c *train.Config) { c.Activation = train.GELU; c.LayerNorm = true }), Options{Opset: 20}},
	{"relu_ln_f16", with(func(c *train.Config) { c.Activation = train.ReLU; c.LayerNorm = true }), Options{Dtype: F16}},
	{"relu_ln_int8_probs", with(func(c *train.Config) { c.Activation = train.ReLU; c.LayerNorm = true }), Options{Quantize: Int8, Probs: true}},
	{"flat_linear", train.Config{Inputs: 5, Classes: 3}, Options{}},
}

func marshal(t testing.TB, v variant) ([]byte, *train.Checkpoint) {
	t.Helper()
	c := testCheckpoint(t, v.cfg, 1)
	o := v.opts
	o.ToolVersion = "test"
	data, err := Marshal(c, &o)
	if err != nil {
		t.Fatalf("%s: %v", v.name, err)
	}
	return data, c
}

func TestGolden(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			data, _ := marshal(t, v)
			golden(t, v.name, data)
		})
	}
}

// golden compares the Dump of model with testdata/NAME.txt (-update
// rewrites it).
func golden(t *testing.T, name string, model []byte) {
	t.Helper()
	var got bytes.Buffer
	if err := Dump(&got, model); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".txt")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./export -run Golden -update)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("graph of %s differs from %s (-update to accept):\n%s", name, path, got.String())
	}
}

// TestSemantics runs every variant through the reference evaluator and
// compares it with the Go student's Forward (inference mode).
func TestSemantics(t *testing.T) {
	const rows = 17
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			data, c := marshal(t, v)
			rng := rand.New(rand.NewPCG(3, 3))
			x := make([]float32, rows*v.cfg.Inputs)
			for i := range x {
				x[i] = float32(2 * rng.NormFloat64())
			}
			want := c.Student.Forward(train.Mat{Rows: rows, Cols: v.cfg.Inputs, Data: x})
			out, err := evalModel(data, x, rows)
			if err != nil {
				t.Fatal(err)
			}
			got := out[LogitsName]
			if len(got.shape) != 2 || got.shape[0] != rows || got.shape[1] != v.cfg.Classes {
				t.Fatalf("logits shape %v, want [%d %d]", got.shape, rows, v.cfg.Classes)
			}
			var maxAbs, maxDiff float64
			for i, w := range want.Data[:rows*v.cfg.Classes] {
				maxAbs = max(maxAbs, math.Abs(float64(w)))
				maxDiff = max(maxDiff, math.Abs(got.v[i]-float64(w)))
			}
			tol := Tolerance(&v.opts, maxAbs)
			t.Logf("max |Δlogit| %.3g (max |logit| %.3g, tolerance %.3g)", maxDiff, maxAbs, tol)
			if maxDiff > tol {
				t.Errorf("max |Δlogit| %g > %g", maxDiff, tol)
			}
			if v.opts.Probs {
				p := out[ProbsName]
				for r := range rows {
					var sum float64
					for _, q := range p.v[r*v.cfg.Classes : (r+1)*v.cfg.Classes] {
						sum += q
					}
					if math.Abs(sum-1) > 1e-9 {
						t.Errorf("row %d: probs sum to %v", r, sum)
					}
				}
			}
		})
	}
}

// TestInt8Exact checks the quantized graph against the quantization
// formulas computed here independently: the first Linear with dequantized
// int8 weights in float, the second with the batch quantized as
// DynamicQuantizeLinear does and integer accumulation, then the scales and
// the bias.
func TestInt8Exact(t *testing.T) {
	cfg := train.Config{Inputs: 7, Hidden: []int{5}, Classes: 3, Activation: train.ReLU}
	c := testCheckpoint(t, cfg, 2)
	data, err := Marshal(c, &Options{Quantize: Int8})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 2
	x := []float32{0.5, -1, 2, 0, 3, -0.25, 1, 1, 1, 1, -2, -2, -2, 4}
	out, err := evalModel(data, x, rows)
	if err != nil {
		t.Fatal(err)
	}
	fc1, fc2 := c.Student.Layers[0].(*train.Linear), c.Student.Layers[1].(*train.Linear)
	m, s := c.Student.Standardize.Mean.Data, c.Student.Standardize.Std.Data
	// fc1: float product with the dequantized weights, then ReLU.
	q1, sw1 := QuantizeWeights(fc1.W.Data, 5, 7)
	h := make([]float64, rows*5)
	for r := range rows {
		for o := range 5 {
			z := float64(fc1.B.Data[o])
			for i := range 7 {
				w := float64(int(q1[i*5+o])-WeightZeroPoint) * float64(sw1[o])
				z += w * float64((x[r*7+i]-m[i])/s[i])
			}
			h[r*5+o] = max(z, 0)
		}
	}
	// fc2: DynamicQuantizeLinear of the batch, integer product.
	lo, hi := 0.0, 0.0
	for _, v := range h {
		lo, hi = min(lo, v), max(hi, v)
	}
	sx := float64(float32(hi-lo) / 255)
	zx := math.RoundToEven(-lo / sx)
	q2, sw2 := QuantizeWeights(fc2.W.Data, 3, 5)
	for r := range rows {
		for o := range 3 {
			var acc int64
			for i := range 5 {
				xq := int64(math.Min(255, math.RoundToEven(h[r*5+i]/sx)+zx))
				acc += (xq - int64(zx)) * (int64(q2[i*3+o]) - WeightZeroPoint)
			}
			want := float64(acc)*sx*float64(sw2[o]) + float64(fc2.B.Data[o])
			if got := out[LogitsName].v[r*3+o]; math.Abs(got-want) > 1e-5*max(1, math.Abs(want)) {
				t.Errorf("row %d class %d: %v, want %v", r, o, got, want)
			}
		}
	}
}

func TestQuantizeWeights(t *testing.T) {
	w := []float32{0.5, -1, 0.25, 0, 0, 0, 3, 2.99, -3}
	q, s := QuantizeWeights(w, 3, 3)
	if s[0] != 1.0/127 || s[1] != 1 || s[2] != 3.0/127 {
		t.Errorf("scales %v", s)
	}
	// q is [in, out]: q[i*3+o].
	if q[1*3+0] != WeightZeroPoint-127 || q[0*3+1] != WeightZeroPoint || q[2*3+2] != WeightZeroPoint-127 {
		t.Errorf("q %v", q)
	}
	for o := range 3 {
		for i := range 3 {
			got := float32(int(q[i*3+o])-WeightZeroPoint) * s[o]
			if d := math.Abs(float64(got - w[o*3+i])); d > float64(s[o])/2+1e-7 {
				t.Errorf("w[%d,%d] = %v dequantizes to %v", o, i, w[o*3+i], got)
			}
		}
	}
}

func TestFloat16(t *testing.T) {
	for _, c := range []struct {
		f float32
		h uint16
	}{
		{0, 0}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e-8, 0},
		{5.960464477539063e-08, 1}, {0.1, 0x2e66}, {float32(math.Inf(-1)), 0xfc00},
		{1 + 1.0/2048, 0x3c00}, // tie → even
		{1 + 3.0/2048, 0x3c02}, // tie → even (up)
	} {
		if got := formats.Float16Bits(c.f); got != c.h {
			t.Errorf("formats.Float16Bits(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	for h := range 1 << 16 {
		f := formats.Float16Value(uint16(h))
		if f != f { // NaN
			continue
		}
		if back := formats.Float16Bits(f); back != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, f, back)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := marshal(t, variants[4])
	b, _ := marshal(t, variants[4])
	if !bytes.Equal(a, b) {
		t.Error("two exports of the same checkpoint differ")
	}
}

func TestMetadata(t *testing.T) {
	data, _ := marshal(t, variants[0])
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		got[p.GetKey()] = p.GetValue()
	}
	for k, want := range map[string]string{
		MetaToolVersion: "test", MetaTeacherSHA256: "beef", MetaCacheDigest: "sha256:cafe",
		MetaTemperature: "4", MetaAlpha: "0.9", MetaEpochs: "3", MetaSteps: "300", MetaInput: "image",
		MetaDtype: "f32", MetaQuantize: "none",
	} {
		if got[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, got[k], want)
		}
	}
	if !strings.Contains(got[MetaMetrics], `"accuracy":0.97`) || !strings.Contains(got[MetaStudent], `"hidden":[6,5]`) {
		t.Errorf("metrics %s, student %s", got[MetaMetrics], got[MetaStudent])
	}
	if m.GetIrVersion() != 8 || m.GetOpsetImport()[0].GetVersion() != 17 || m.GetProducerName() != "distill" || m.GetProducerVersion() != "test" {
		t.Errorf("header: ir %d opset %v producer %s %s", m.GetIrVersion(), m.GetOpsetImport(), m.GetProducerName(), m.GetProducerVersion())
	}
	in := m.GetGraph().GetInput()[0]
	if in.GetName() != "image" || typeString(in.GetType()) != "float[N,1,3,4]" {
		t.Errorf("input %s %s", in.GetName(), typeString(in.GetType()))
	}
}

// TestSizes checks that f16 halves and int8 quarters the file of a
// student whose size is dominated by its weights.
func TestSizes(t *testing.T) {
	c := testCheckpoint(t, train.Config{Inputs: 784, InputShape: []int{1, 28, 28}, Hidden: []int{256}, Classes: 10}, 1)
	size := map[string]int{}
	for name, o := range map[string]*Options{"f32": nil, "f16": {Dtype: F16}, "int8": {Quantize: Int8}} {
		data, err := Marshal(c, o)
		if err != nil {
			t.Fatal(err)
		}
		size[name] = len(data)
	}
	t.Logf("sizes: %v", size)
	if r := float64(size["f16"]) / float64(size["f32"]); r < 0.49 || r > 0.52 {
		t.Errorf("f16/f32 = %.3f, want about 0.5", r)
	}
	if r := float64(size["int8"]) / float64(size["f32"]); r < 0.24 || r > 0.28 {
		t.Errorf("int8/f32 = %.3f, want about 0.25", r)
	}
}

func TestOptionErrors(t *testing.T) {
	c := testCheckpoint(t, variants[0].cfg, 1)
	for _, o := range []Options{
		{Opset: 8}, {Opset: 24}, {Dtype: "bf16"}, {Quantize: "int4"},
		{Quantize: Int8, Dtype: F16},
		{Quantize: Int8, Opset: 10}, // DynamicQuantizeLinear is opset 11
	} {
		_, err := Marshal(c, &o)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%+v: error %v, want ErrUnsupported", o, err)
		} else {
			t.Logf("%+v: %v", o, err)
		}
	}
	if _, err := Marshal(&train.Checkpoint{}, nil); err == nil {
		t.Error("checkpoint without a student exported")
	}
	big := testCheckpoint(t, variants[0].cfg, 1)
	big.Student.Params.List[0].Data[0] = 1e6
	if _, err := Marshal(big, &Options{Dtype: F16}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "float16") {
		t.Errorf("weight beyond float16: %v", err)
	}
}

// TestWriteFileAtomic: the file appears whole; errors leave nothing behind
// and keep an existing file.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	c := testCheckpoint(t, variants[0].cfg, 1)
	path := filepath.Join(dir, "s.onnx")
	if err := WriteFile(path, c, nil); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if err := WriteFile(path, c, &Options{Opset: 3}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("opset 3: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
		t.Error("a failed export changed the existing file")
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(sub, c, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "s.onnx"), c, nil); err == nil {
		t.Error("missing parent directory: no error")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "s.onnx sub" {
		t.Errorf("directory holds %v, want s.onnx and sub only", names)
	}
}

// checkerScript locates peers/onnx_check.py: ../shared beside the
// repository root (as CI lays it out).
func checkerScript(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	return filepath.Join(dir, "..", "shared", "peers", "onnx_check.py")
}

// TestONNXChecker runs the official ONNX checker (onnx.checker.check_model
// with full_check, through peers/onnx_check.py) over every variant the
// checker's ONNX (1.12: opset ≤ 17, IR ≤ 8) knows. Without python3's onnx
// module the test fails under CI and is skipped elsewhere.
func TestONNXChecker(t *testing.T) {
	script := requireChecker(t)
	dir := t.TempDir()
	var files []string
	extra := []variant{
		{"gelu_ln_opset9", variants[5].cfg, Options{Opset: 9}},
		{"tanh_opset11_int8", variants[3].cfg, Options{Opset: 11, Quantize: Int8}},
		{"gelu_f16_probs_opset15", variants[2].cfg, Options{Opset: 15, Dtype: F16, Probs: true}},
	}
	for _, v := range append(append([]variant(nil), variants...), extra...) {
		if v.opts.Opset > 17 {
			continue
		}
		data, _ := marshal(t, v)
		p := filepath.Join(dir, v.name+".onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	runChecker(t, script, files)
}

// requireChecker returns the path of peers/onnx_check.py, or skips the
// test (fails it under CI) when it or python3's onnx is missing.
func requireChecker(t *testing.T) string {
	t.Helper()
	script := checkerScript(t)
	missing := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") != "" {
			t.Fatalf("the ONNX checker is required in CI: %s", msg)
		}
		t.Skipf("SKIPPING the ONNX checker: %s", msg)
	}
	if _, err := os.Stat(script); err != nil {
		missing("%v", err)
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import onnx").CombinedOutput(); err != nil {
		missing("/usr/bin/python3 cannot import onnx (apt-get install python3-onnx): %v %s", err, out)
	}
	return script
}

// runChecker runs the checker script over files; every one must pass.
func runChecker(t *testing.T, script string, files []string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", append([]string{script}, files...)...).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("onnx checker: %v", err)
	}
	if n := strings.Count(string(out), "\nOK ") + btoi(strings.HasPrefix(string(out), "OK ")); n != len(files) {
		t.Errorf("checker accepted %d of %d files", n, len(files))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

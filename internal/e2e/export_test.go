//go:build cgo

package e2e

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/train"
)

// requireRuntime returns a loaded onnxruntime. Without the library the test
// is skipped, except under CI (CI=true), where that is a failure: `make
// test` provisions it.
func requireRuntime(t testing.TB) *extract.Runtime {
	t.Helper()
	rt, err := extract.NewRuntime("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("onnxruntime is required in CI: %v", err)
		}
		t.Skipf("onnxruntime not available (run make setup): %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// tolProbs bounds |probs − softmax(logits)| of a --probs model.
const tolProbs = 1e-6

// studentCheckpoint writes a student of cfg with random weights and a
// non-trivial standardization as a checkpoint directory and loads it back,
// as distill export does.
func studentCheckpoint(t *testing.T, cfg train.Config, seed uint64) *train.Checkpoint {
	t.Helper()
	s, err := train.NewStudent(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	mean, std := make([]float32, cfg.Inputs), make([]float32, cfg.Inputs)
	for i := range mean {
		mean[i] = float32(rng.NormFloat64())
		std[i] = float32(0.2 + 2*rng.Float64())
	}
	if err := s.Standardize.Set(mean, std); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Params.List {
		if strings.HasPrefix(p.Name, "ln") {
			for i := range p.Data {
				p.Data[i] += float32(0.3 * rng.NormFloat64())
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "student.ckpt")
	info := train.CheckpointInfo{Student: s.Config, Input: "image", Training: train.Options{Temperature: 4, Alpha: 0.9}}
	if err := train.WriteCheckpoint(dir, &train.Checkpoint{Info: info, Student: s}); err != nil {
		t.Fatal(err)
	}
	c, err := train.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runONNX runs model on x [rows, per-sample shape] and returns the
// requested outputs.
func runONNX(t *testing.T, rt *extract.Runtime, model []byte, input string, shape []int64, x []float32, outputs ...string) []extract.Tensor {
	t.Helper()
	sess, err := rt.NewSession(model, []string{input}, outputs, extract.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Run([]extract.Tensor{{Shape: shape, Data: x}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportParity exports MLP students with and without LayerNorm, with
// each activation, in every weight format and at the opsets where the graph
// changes form, runs them through onnxruntime and compares the logits
// with the Go student's inference-mode Forward on the same rows.
func TestExportParity(t *testing.T) {
	rt := requireRuntime(t)
	base := train.Config{Inputs: 48, InputShape: []int{3, 4, 4}, Hidden: []int{32, 16}, Classes: 7, Dropout: 0.25}
	type format struct {
		name string
		opts export.Options
	}
	formats := []format{
		{"f32", export.Options{}},
		{"f32-probs", export.Options{Probs: true}},
		{"f32-opset13", export.Options{Opset: 13}},
		{"f32-opset9", export.Options{Opset: 9}},
		{"f32-opset20", export.Options{Opset: 20}},
		{"f32-opset23", export.Options{Opset: 23}},
		{"f16", export.Options{Dtype: export.F16}},
		{"f16-probs", export.Options{Dtype: export.F16, Probs: true}},
		{"int8", export.Options{Quantize: export.Int8}},
		{"int8-opset11-probs", export.Options{Quantize: export.Int8, Opset: 11, Probs: true}},
	}
	const rows = 64
	for _, act := range []train.Activation{train.ReLU, train.GELU, train.Tanh} {
		for _, ln := range []bool{false, true} {
			cfg := base
			cfg.Activation, cfg.LayerNorm = act, ln
			name := string(act)
			if ln {
				name += "-ln"
			}
			c := studentCheckpoint(t, cfg, 5)
			rng := rand.New(rand.NewPCG(9, 9))
			x := make([]float32, rows*cfg.Inputs)
			for i := range x {
				x[i] = float32(c.Student.Standardize.Mean.Data[i%cfg.Inputs]) + float32(2*rng.NormFloat64())
			}
			want := append([]float32(nil), c.Student.Forward(train.Mat{Rows: rows, Cols: cfg.Inputs, Data: x}).Data[:rows*cfg.Classes]...)
			for _, f := range formats {
				t.Run(name+"/"+f.name, func(t *testing.T) {
					path := filepath.Join(t.TempDir(), "s.onnx")
					if err := export.WriteFile(path, c, &f.opts); err != nil {
						t.Fatal(err)
					}
					model, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					outs := []string{export.LogitsName}
					if f.opts.Probs {
						outs = append(outs, export.ProbsName)
					}
					got := runONNX(t, rt, model, "image", []int64{rows, 3, 4, 4}, x, outs...)
					if s := got[0].Shape; len(s) != 2 || s[0] != rows || s[1] != int64(cfg.Classes) {
						t.Fatalf("logits shape %v", s)
					}
					var maxAbs, maxDiff float64
					for i, w := range want {
						maxAbs = max(maxAbs, math.Abs(float64(w)))
						maxDiff = max(maxDiff, math.Abs(float64(got[0].Data[i]-w)))
					}
					tol := export.Tolerance(&f.opts, maxAbs)
					t.Logf("%d bytes, max |Δlogit| %.3g (max |logit| %.3g, tolerance %.3g)", len(model), maxDiff, maxAbs, tol)
					if maxDiff > tol || math.IsNaN(maxDiff) {
						t.Errorf("max |Δlogit| %g exceeds %g", maxDiff, tol)
					}
					// These students' logits are O(1): float32 exports must
					// also meet 1e-5 absolute.
					if f.opts.Dtype == "" && f.opts.Quantize == "" && maxDiff > 1e-5 {
						t.Errorf("float32: max |Δlogit| %g exceeds 1e-5 absolute", maxDiff)
					}
					if f.opts.Probs {
						checkSoftmax(t, got[0].Data, got[1].Data, cfg.Classes)
					}
				})
			}
		}
	}
}

// checkSoftmax checks probs = softmax(logits) per row within tolProbs.
func checkSoftmax(t *testing.T, logits, probs []float32, classes int) {
	t.Helper()
	if len(probs) != len(logits) {
		t.Fatalf("%d probs for %d logits", len(probs), len(logits))
	}
	for r := 0; r < len(logits)/classes; r++ {
		l := logits[r*classes : (r+1)*classes]
		m := math.Inf(-1)
		for _, v := range l {
			m = max(m, float64(v))
		}
		var z float64
		for _, v := range l {
			z += math.Exp(float64(v) - m)
		}
		for j, v := range l {
			p := math.Exp(float64(v)-m) / z
			if d := math.Abs(p - float64(probs[r*classes+j])); d > tolProbs {
				t.Fatalf("row %d class %d: probs %v, softmax(logits) %v", r, j, probs[r*classes+j], p)
			}
		}
	}
}

// int8Reference computes what the int8 export should compute, here in Go:
// the student's layers, with the first Linear's weights dequantized from
// export.QuantizeWeights, and every later Linear replaced by ONNX's
// DynamicQuantizeLinear of its input (float32 scale and zero point over
// the whole batch, round half to even) and an integer product with the
// quantized weights, then the scales and the bias.
func int8Reference(s *train.Student, x []float32, rows int) []float32 {
	n := s.Config.Inputs
	cur := train.Mat{Rows: rows, Cols: n, Data: make([]float32, rows*n)}
	s.Standardize.Forward(cur, train.Mat{Rows: rows, Cols: n, Data: x})
	first := true
	for _, layer := range s.Layers {
		switch l := layer.(type) {
		case *train.Linear:
			if first {
				first = false
				q, sw := export.QuantizeWeights(l.W.Data, l.Out, l.In)
				deq := train.NewLinear("fc", l.In, l.Out, l.Act)
				train.NewParams(deq.Params()...)
				for o := range l.Out {
					for i := range l.In {
						deq.W.Data[o*l.In+i] = float32(int(q[i*l.Out+o])-export.WeightZeroPoint) * sw[o]
					}
				}
				copy(deq.B.Data, l.B.Data)
				y := train.Mat{Rows: rows, Cols: l.Out, Data: make([]float32, rows*l.Out)}
				deq.Forward(y, cur)
				cur = y
				continue
			}
			lo, hi := float32(0), float32(0)
			for _, v := range cur.Data {
				lo, hi = min(lo, v), max(hi, v)
			}
			sx := (hi - lo) / 255
			zx := math.RoundToEven(float64(min(255, max(0, -lo/sx))))
			xq := make([]int32, len(cur.Data))
			for i, v := range cur.Data {
				xq[i] = int32(min(255, max(0, math.RoundToEven(float64(v/sx))+zx))) - int32(zx)
			}
			q, sw := export.QuantizeWeights(l.W.Data, l.Out, l.In)
			z := train.Mat{Rows: rows, Cols: l.Out, Data: make([]float32, rows*l.Out)}
			for r := range rows {
				for o := range l.Out {
					var acc int32
					for i := range l.In {
						acc += xq[r*l.In+i] * (int32(q[i*l.Out+o]) - export.WeightZeroPoint)
					}
					z.Data[r*l.Out+o] = float32(acc)*(sx*sw[o]) + l.B.Data[o]
				}
			}
			y := train.Mat{Rows: rows, Cols: l.Out, Data: make([]float32, rows*l.Out)}
			train.NewActivationLayer(l.Act, l.Out).Forward(y, z)
			cur = y
		case *train.Dropout:
		default:
			y := train.Mat{Rows: rows, Cols: l.OutSize(), Data: make([]float32, rows*l.OutSize())}
			l.Forward(y, cur)
			cur = y
		}
	}
	return cur.Data
}

// TestExportInt8Exact compares onnxruntime's result for the int8 export
// with int8Reference, much more tightly than the float tolerance: a
// runtime whose u8×s8 products saturate (VPMADDUBSW) would fail it.
// Inputs far apart in magnitude make the quantized values span 0..255.
func TestExportInt8Exact(t *testing.T) {
	rt := requireRuntime(t)
	for _, act := range []train.Activation{train.ReLU, train.GELU} {
		cfg := train.Config{Inputs: 64, InputShape: []int{1, 8, 8}, Hidden: []int{40, 30}, Classes: 5, Activation: act, LayerNorm: act == train.GELU}
		c := studentCheckpoint(t, cfg, 8)
		// Saturating weights: every fc2 row reaches ±127 at several columns.
		for _, l := range c.Student.Layers {
			if l, ok := l.(*train.Linear); ok && l.W.Name == "fc2.weight" {
				for i := range l.W.Data {
					if i%3 == 0 {
						l.W.Data[i] = 0.5
					}
				}
			}
		}
		const rows = 32
		rng := rand.New(rand.NewPCG(4, 4))
		x := make([]float32, rows*cfg.Inputs)
		for i := range x {
			x[i] = c.Student.Standardize.Mean.Data[i%cfg.Inputs] + float32(3*rng.Float64())*c.Student.Standardize.Std.Data[i%cfg.Inputs]
		}
		model, err := export.Marshal(c, &export.Options{Quantize: export.Int8})
		if err != nil {
			t.Fatal(err)
		}
		got := runONNX(t, rt, model, "image", []int64{rows, 1, 8, 8}, x, export.LogitsName)[0].Data
		want := int8Reference(c.Student, x, rows)
		var maxAbs, maxDiff float64
		for i, v := range want[:rows*cfg.Classes] {
			maxAbs = max(maxAbs, math.Abs(float64(v)))
			maxDiff = max(maxDiff, math.Abs(float64(got[i]-v)))
		}
		t.Logf("%s: onnxruntime vs int8 reference: max |Δlogit| %.3g (max |logit| %.3g)", act, maxDiff, maxAbs)
		// The float first layer (and LayerNorm and GELU) round differently
		// in onnxruntime and Go, so a quantized input of a later layer can
		// land one step apart, moving a logit by about scale_x·|w| ≈
		// (4/255)·0.16 ≈ 2.5e-3; saturation would be orders of magnitude more.
		if maxDiff > 1e-2*max(1, maxAbs) {
			t.Errorf("%s: max |Δlogit| %g", act, maxDiff)
		}
	}
}

package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/eval/onnxmodel"
	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// cnnCheckpoint wraps the student of a fixtures CNN case; spec-built
// students go through a checkpoint on disk and train.Load, as distill
// export reads them (BatchNorm comes back in training mode there).
func cnnCheckpoint(t *testing.T, k fixtures.CNNCase, seed uint64) *train.Checkpoint {
	t.Helper()
	s := fixtures.CNNStudent(t, k, seed)
	c := &train.Checkpoint{Student: s, Info: train.CheckpointInfo{Student: s.Config, Input: "image"}}
	if k.Layers != nil {
		return c
	}
	dir := filepath.Join(t.TempDir(), "s.ckpt")
	if err := train.WriteCheckpoint(dir, c); err != nil {
		t.Fatal(err)
	}
	c, err := train.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Student.SetTraining(false, nil)
	return c
}

// runORT runs model in onnxruntime on x [rows, shape...] and returns its
// logits.
func runORT(t *testing.T, lib string, model []byte, shape []int, x []float32, rows int) []float32 {
	t.Helper()
	r, err := onnxmodel.NewRunner(lib, model, "image", []string{export.LogitsName})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dims := []int64{int64(rows)}
	for _, d := range shape {
		dims = append(dims, int64(d))
	}
	out, err := r.Run(dims, x)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestExportCNNParity exports every fixtures CNN case (each layer kind:
// conv with and without bias, strides, paddings, dilation, groups,
// depthwise, BatchNorm folded into a conv with non-trivial running
// statistics and on its own after a pool and after gap, max/avg/global
// pooling, ReLU, ReLU6, fc; the three presets) as f32, f16 and int8,
// runs it in onnxruntime and compares the logits with the Go layers'
// inference forward pass on the same rows within export.Tolerance.
func TestExportCNNParity(t *testing.T) {
	lib := fixtures.RequireLib(t)
	formats := []struct {
		name string
		opts export.Options
	}{
		{"f32", export.Options{}},
		{"f32-opset9", export.Options{Opset: 9}},
		{"f32-opset23", export.Options{Opset: 23}},
		{"f16", export.Options{Dtype: export.F16}},
		{"int8", export.Options{Quantize: export.Int8}},
		{"int8-opset11", export.Options{Quantize: export.Int8, Opset: 11}},
	}
	const rows = 24
	for _, k := range fixtures.CNNCases {
		c := cnnCheckpoint(t, k, 4)
		x := fixtures.CNNInputs(c.Student, rows, 5)
		want := fixtures.CNNForward(c.Student, x, rows)
		for _, f := range formats {
			t.Run(k.Name+"/"+f.name, func(t *testing.T) {
				model, err := export.Marshal(c, &f.opts)
				if err != nil {
					t.Fatal(err)
				}
				got := runORT(t, lib, model, k.Shape, x, rows)
				if len(got) != len(want) {
					t.Fatalf("%d logits, want %d", len(got), len(want))
				}
				var maxAbs, maxDiff float64
				for i, w := range want {
					maxAbs = max(maxAbs, math.Abs(float64(w)))
					d := math.Abs(float64(got[i] - w))
					if math.IsNaN(d) {
						d = math.Inf(1)
					}
					maxDiff = max(maxDiff, d)
				}
				tol := export.Tolerance(&f.opts, maxAbs)
				t.Logf("onnxruntime vs Go: max |Δlogit| %.3g (max |logit| %.3g, tolerance %.3g)", maxDiff, maxAbs, tol)
				if maxDiff > tol {
					t.Errorf("max |Δlogit| %g > %g", maxDiff, tol)
				}
			})
		}
	}
}

// int8ConvReference computes in Go what the int8 export of a student
// made of convolutions, ReLUs and a final gap computes: the first conv
// and grouped convs with their weights dequantized from
// export.QuantizeWeights, every other conv with its input quantized as ONNX's DynamicQuantizeLinear does
// (float32 scale and zero point over the whole batch, round half to
// even), an integer convolution in which a padded pixel is a real 0,
// then the scales and the bias.
func int8ConvReference(s *train.Student, x []float32, rows int) []float32 {
	n := s.Config.Inputs
	cur := make([]float32, rows*n)
	s.Standardize.Forward(train.Mat{Rows: rows, Cols: n, Data: cur}, train.Mat{Rows: rows, Cols: n, Data: x})
	first := true
	for _, layer := range s.Layers {
		l, ok := layer.(*train.Conv2d)
		if !ok {
			y := make([]float32, rows*layer.OutSize())
			layer.Forward(train.Mat{Rows: rows, Cols: layer.OutSize(), Data: y}, train.Mat{Rows: rows, Cols: layer.InSize(), Data: cur})
			cur = y
			continue
		}
		k := l.C / l.Groups * l.Kh * l.Kw
		q, sw := export.QuantizeWeights(l.Weight.Data, l.F, k) // [k, F] + 128
		wq := func(f, j int) float64 { return float64(int(q[j*l.F+f]) - export.WeightZeroPoint) }
		xv := func(v float32) float64 { return float64(v) }
		scale := func(f int) float64 { return float64(sw[f]) }
		if !first && l.Groups == 1 {
			lo, hi := float32(0), float32(0)
			for _, v := range cur {
				lo, hi = min(lo, v), max(hi, v)
			}
			sx := (hi - lo) / 255
			zx := math.RoundToEven(float64(min(255, max(0, -lo/sx))))
			xv = func(v float32) float64 { return min(255, max(0, math.RoundToEven(float64(v/sx))+zx)) - zx }
			scale = func(f int) float64 { return float64(sx * sw[f]) }
		}
		first = false
		y := make([]float32, rows*l.OutSize())
		fg, cg := l.F/l.Groups, l.C/l.Groups
		for r := range rows {
			img := cur[r*l.InSize():]
			for f := range l.F {
				g := f / fg
				for i := range l.Ho {
					for j := range l.Wo {
						var acc float64
						for c := range cg {
							for u := range l.Kh {
								for v := range l.Kw {
									yy, xx := i*l.Stride-l.Pad+u*l.Dilation, j*l.Stride-l.Pad+v*l.Dilation
									if yy < 0 || yy >= l.H || xx < 0 || xx >= l.W {
										continue // a real 0
									}
									acc += wq(f, (c*l.Kh+u)*l.Kw+v) * xv(img[((g*cg+c)*l.H+yy)*l.W+xx])
								}
							}
						}
						z := acc * scale(f)
						if l.Bias != nil {
							z += float64(l.Bias.Data[f])
						}
						y[r*l.OutSize()+(f*l.Ho+i)*l.Wo+j] = float32(z)
					}
				}
			}
		}
		cur = y
	}
	return cur
}

// TestExportCNNInt8Exact compares onnxruntime's int8 convolutions with
// int8ConvReference much more tightly than the int8 tolerance. The
// integer convs read signed values (no activation before them) through
// zero padding, so their input's zero point is far from 0: a runtime that
// padded the quantized input with 0 instead of the zero point would be
// off by whole logits. Stride and dilation are in the integer convs, a
// depthwise and a grouped conv (float input) between them.
func TestExportCNNInt8Exact(t *testing.T) {
	lib := fixtures.RequireLib(t)
	k := fixtures.CNNCase{Name: "int8_exact", Shape: []int{2, 9, 9}, Classes: 6, Layers: func() []train.Layer {
		a, _ := train.NewConv2d("0", 2, 9, 9, 4, 3, 3, 1, 1, 1, 1)
		b, _ := train.NewConv2d("1", 4, 9, 9, 6, 3, 3, 2, 2, 2, 1) // stride 2, pad 2, dilation 2
		c, _ := train.NewConv2d("2", 6, b.Ho, b.Wo, 6, 3, 3, 1, 1, 1, 6)
		d, _ := train.NewConv2d("3", 6, c.Ho, c.Wo, 4, 1, 1, 1, 0, 1, 2)
		e, _ := train.NewConv2d("4", 4, d.Ho, d.Wo, 6, 3, 3, 1, 1, 1, 1)
		return []train.Layer{a, b, c, d, e, train.NewActivationLayer(train.ReLU, e.OutSize()), train.NewGlobalAvgPool(6, e.Ho, e.Wo)}
	}}
	ck := cnnCheckpoint(t, k, 6)
	const rows = 16
	x := fixtures.CNNInputs(ck.Student, rows, 7)
	model, err := export.Marshal(ck, &export.Options{Quantize: export.Int8})
	if err != nil {
		t.Fatal(err)
	}
	got := runORT(t, lib, model, k.Shape, x, rows)
	want := int8ConvReference(ck.Student, x, rows)
	float := fixtures.CNNForward(ck.Student, x, rows)
	var maxAbs, maxDiff, maxQuant float64
	for i, w := range want {
		maxAbs = max(maxAbs, math.Abs(float64(w)))
		maxDiff = max(maxDiff, math.Abs(float64(got[i]-w)))
		maxQuant = max(maxQuant, math.Abs(float64(float[i]-w)))
	}
	t.Logf("onnxruntime vs int8 reference: max |Δlogit| %.3g (max |logit| %.3g); int8 reference vs float: %.3g", maxDiff, maxAbs, maxQuant)
	// Go and onnxruntime round the float first conv differently, so a
	// quantized value can land one step apart: scale_x·|w| ≈ 1e-3 here.
	if maxDiff > 1e-3*max(1, maxAbs) {
		t.Errorf("max |Δlogit| %g", maxDiff)
	}
	if maxQuant == 0 {
		t.Error("the reference equals the float forward pass: it quantizes nothing")
	}
}

// TestExportCNNPresets trains the peer's tiny, lenet5 and dws presets for
// one to four epochs on 1,000 MNIST test images (teacher logits from the project
// teacher), exports each checkpoint as f32, f16 and int8 with --verify on
// the same images (real BatchNorm running statistics, real inputs), runs
// the official checker on every file, and checks that distill eval reads
// the f32 export like the teacher and agrees with the checkpoint, and that
// distill extract takes it as a teacher.
func TestExportCNNPresets(t *testing.T) {
	requireLib(t)
	if testing.Short() {
		t.Skip("trains three CNNs (about a minute)")
	}
	tmp := t.TempDir()
	images, labels := mnistHead(t, tmp, 1000)
	cache := filepath.Join(tmp, "cache")
	mustDistill(t, "extract", "--teacher", "../../fixtures/teacher/mnist_cnn.onnx", "--data", images, "--labels", labels,
		"--out", cache, "--scale", "1/255", "--keep-input", "--threads", "2")
	var files []string
	// dws, 13 BatchNorms deep, needs a few epochs before its running
	// statistics and weights make it a classifier.
	for _, p := range []struct{ arch, epochs string }{{"tiny", "1"}, {"lenet5", "1"}, {"dws", "4"}} {
		arch := p.arch
		ckpt := filepath.Join(tmp, arch+".ckpt")
		mustDistill(t, "train", "--cache", cache, "--val", cache, "--out", ckpt, "--student", "cnn", "--arch", arch,
			"--epochs", p.epochs, "--batch", "32", "--lr", "3e-3", "--threads", "2")
		for _, v := range []struct {
			name  string
			flags []string
		}{{"f32", nil}, {"f16", []string{"--dtype", "f16"}}, {"int8", []string{"--quantize", "int8"}}} {
			out := filepath.Join(tmp, arch+"-"+v.name+".onnx")
			stdout := mustDistill(t, append([]string{"export", "--student", ckpt, "--out", out, "--verify", cache}, v.flags...)...)
			t.Logf("%s %s:\n%s", arch, v.name, stdout)
			if !strings.Contains(stdout, "1000 rows") || !strings.Contains(stdout, "): ok") {
				t.Errorf("%s %s: --verify did not pass on 1000 rows:\n%s", arch, v.name, stdout)
			}
			files = append(files, out)
		}
		c, err := train.Load(ckpt)
		if err != nil {
			t.Fatal(err)
		}
		acc := *c.Info.Metrics[len(c.Info.Metrics)-1].Val.Accuracy
		res := runEvalJSON(t, "--model", filepath.Join(tmp, arch+"-f32.onnx"), "--data", cache, "--bench-time", "1ms")
		if res.Accuracy == nil || math.Abs(*res.Accuracy-acc) > 1.5e-3 {
			t.Errorf("%s: distill eval of the f32 export: accuracy %v, the checkpoint's %v", arch, res.Accuracy, acc)
		}
		if acc < 0.5 {
			t.Errorf("%s: accuracy %.3f after an epoch: the test exports a student that learned nothing", arch, acc)
		}
	}
	// The exported student drops in where the teacher ran.
	mustDistill(t, "extract", "--teacher", files[0], "--data", images, "--labels", labels, "--out", filepath.Join(tmp, "from-student"),
		"--scale", "1/255", "--threads", "2")
	if script := filepath.Join("..", "..", "..", "shared", "peers", "onnx_check.py"); fileExists(script) {
		out, err := exec.Command("/usr/bin/python3", append([]string{script}, files...)...).CombinedOutput()
		t.Logf("%s", out)
		if err != nil || strings.Count(string(out), "OK ") != len(files) {
			t.Errorf("onnx checker: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Errorf("the ONNX checker %s is required in CI", script)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mnistHead writes the first n MNIST test images as images.npy (float32
// [n,1,28,28], pixels 0..255) and their labels as labels.npy (int32) in
// dir.
func mnistHead(t *testing.T, dir string, n int) (images, labels string) {
	t.Helper()
	b := fixtures.ReadRows(t, mnistTestImages(t), nil, n)
	if len(b.Cols) != 1 || len(b.Labels) != n {
		t.Fatalf("MNIST test: %d columns, %d labels", len(b.Cols), len(b.Labels))
	}
	images, labels = filepath.Join(dir, "images.npy"), filepath.Join(dir, "labels.npy")
	for _, x := range b.Cols {
		if err := dataset.WriteNPYFile(images, []int{n, 1, 28, 28}, x); err != nil {
			t.Fatal(err)
		}
	}
	y := make([]int32, n)
	for i, l := range b.Labels {
		y[i] = int32(l)
	}
	if err := dataset.WriteNPYFile(labels, []int{n}, y); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

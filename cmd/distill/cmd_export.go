package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/eval/onnxmodel"
	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "export",
		UsageLine: "--student student.ckpt --out student.onnx [flags]  |  --student lm.ckpt --out DIR [flags]",
		Short:     "write a trained student (an MLP, a CNN or a transformer) as an ONNX model, optionally f16 or int8, and verify it",
		Long: `Write the student of a checkpoint (from distill train) as a standard ONNX model
that drops in where the teacher ran: the input has the teacher's name and
per-sample shape with a dynamic batch axis N, the output is "logits" [N,C]
(and "probs" = Softmax(logits) with --probs). The graph is the student's
inference forward pass in ops every runtime has: Flatten, Sub/Div (the input
standardization), Gemm, LayerNormalization (written out in primitive ops below
opset 17), Relu, Tanh, GELU as 0.5*x*(1+Erf(x/sqrt 2)) (the Gelu op from opset
20); Dropout is left out. A convolutional student (distill train --student
cnn) takes the teacher's [N,C,H,W] input, standardized by Sub/Div, and becomes
Conv (pads, strides, dilations, group; a BatchNorm right after a conv is
folded into its weights and bias), BatchNormalization (a BatchNorm anywhere
else), MaxPool, AveragePool, GlobalAveragePool, Relu, Clip(0, 6) for relu6,
Flatten and Gemm. The metadata records the tool version, the teacher
sha256, the cache digest, temperature, alpha and the final metrics. The file
appears atomically.

--dtype f16 stores the weights and biases as float16 (about half the size;
computation and the input and output stay float32). --quantize int8 writes a
dynamically quantized model (about a quarter of the size): weights int8 per
output channel; the inputs of every Linear but the first quantized per batch
by DynamicQuantizeLinear and multiplied in integers (MatMulInteger; for a
CNN's convolutions ConvInteger, weights per output channel, the input per
batch). The first conv or Linear, and grouped (depthwise) convs, keep a
float input (their int8 weights are dequantized in the graph). These are onnxruntime's dynamic-quantization
ops: checked in onnxruntime's CPU provider; a runtime without
DynamicQuantizeLinear, ConvInteger or MatMulInteger cannot run the file.

--verify CACHE runs the exported file through onnxruntime and the Go student
on the first --verify-rows rows of the cache's input column, prints the
largest |logit difference| and, with labels, the accuracy of both, and fails
(exit 1) beyond the tolerance: 1e-5 (f32), 1e-2 (f16) or 1e-1 (int8) times
max(1, largest |logit|). For int8 the result of a row depends on the other
rows of its batch (the quantization range of the hidden layers); --verify
runs batches of 256. A model that fails verification is still written.

A transformer checkpoint (distill train --student transformer; it holds
training.json) is exported as a folder --out DIR, which appears atomically
(an earlier export there is replaced, any other directory refused; an --out
ending in .onnx is a usage error):
  model.onnx         a decoder with past in the Hugging Face Optimum /
                     onnxruntime-genai layout: inputs input_ids,
                     attention_mask, position_ids [batch, seq] (int64) and
                     past_key_values.{i}.key|value [batch, kv_heads, past,
                     head_dim] (keys after RoPE; a past of length 0 starts a
                     sequence); outputs logits [batch, seq, vocab] and
                     present.{i}.key|value. With --no-cache: the plain form
                     input_ids [batch, seq] -> logits [batch, seq, vocab].
  config.json        the Hugging Face config, with bos/eos_token_id
  genai_config.json  the onnxruntime-genai config (not with --no-cache)
  the tokenizer      copied from the file the training data was made with:
                     found through the checkpoint's training cache, its
                     token dataset and the tokenizer recorded there (sha256
                     checked), or given with --tokenizer FILE
For a transformer --dtype f16 stores every weight matrix as float16;
--quantize int8 is weight-only (int8 per output channel, dequantized in the
graph and computed in float32 by any runtime; stories260K's shape shrinks to
a third, as RoPE tables, norms and scales stay float32). Opsets 13..23;
--probs is refused. --verify DATA (a token dataset of distill data text, or
a cache extracted from one) runs the first --verify-rows windows (default 4
for a transformer, at most 256) through the exported folder in onnxruntime
as a generator would: a prefill of half the model's positions, then up to
64 greedy steps of one token (cached, or the prefix re-run with
--no-cache). It compares every call's logits with the Go forward and fails
beyond the same tolerances.

Exit codes: 0 success, 1 failure (or verification beyond tolerance), 2 usage error, 130 interrupted.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o exportOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				o.verifyRowsSet = fs.Changed("verify-rows")
				return runExport(ctx, cmdOut, o)
			}
		},
	})
}

// exportOptions are the flags of distill export.
type exportOptions struct {
	Student, Out string
	Opset        int
	Dtype        string
	Quantize     string
	Probs        bool
	Verify       string
	VerifyRows   int
	OrtLib       string
	// A transformer's:
	NoCache       bool
	Tokenizer     string
	verifyRowsSet bool // --verify-rows was given
}

// AddFlags registers the flags on fs.
func (o *exportOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Student, "student", "", "checkpoint from distill train: a directory or an s3:// / gs:// location (required)")
	fs.StringVar(&o.Out, "out", "", "ONNX file to write, or for a transformer the folder; a path or an s3:// / gs:// location (required)")
	fs.IntVar(&o.Opset, "opset", export.DefaultOpset, fmt.Sprintf("ONNX opset, %d..%d (a transformer %d..%d; the IR version follows)", export.MinOpset, export.MaxOpset, export.MinLMOpset, export.MaxOpset))
	fs.StringVar(&o.Dtype, "dtype", "f32", "weight storage: f32 or f16")
	fs.StringVar(&o.Quantize, "quantize", "none", "quantization: none or int8 (dynamic; weight-only for a transformer)")
	fs.BoolVar(&o.Probs, "probs", false, `add the output "probs" = softmax(logits)`)
	fs.StringVar(&o.Verify, "verify", "", "cache whose input rows check the exported model against the Go student (a transformer: a token dataset, or a cache extracted from one)")
	fs.IntVar(&o.VerifyRows, "verify-rows", 1000, fmt.Sprintf("rows of --verify to run, 1..%d (a transformer's windows: default %d, at most %d)", maxVerifyRows, lmVerifyRows, maxLMVerifyRows))
	fs.BoolVar(&o.NoCache, "no-cache", false, "transformer: write the full-sequence model input_ids -> logits instead of the decoder with past")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "transformer: tokenizer file to copy into the folder, a path or URL (default: the one the training data was made with)")
	fs.StringVar(&o.OrtLib, "ort-lib", "", "onnxruntime shared library for --verify (default: $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the project cache from make setup)")
}

// maxVerifyRows bounds --verify-rows: both models' logits are kept.
const maxVerifyRows = 1 << 24

// options validates the flags and returns the export options.
func (o *exportOptions) options() (export.Options, error) {
	var eo export.Options
	if o.Student == "" {
		return eo, usageError("--student is required")
	}
	if o.Out == "" {
		return eo, usageError("--out is required")
	}
	if o.Opset < export.MinOpset || o.Opset > export.MaxOpset {
		return eo, usageError("--opset %d: want %d..%d", o.Opset, export.MinOpset, export.MaxOpset)
	}
	for _, f := range []struct {
		set  bool
		flag string
	}{{o.NoCache, "--no-cache"}, {o.Tokenizer != "", "--tokenizer"}} {
		if f.set {
			return eo, usageError("%s is for a transformer checkpoint; --student %s is an MLP or CNN student's", f.flag, o.Student)
		}
	}
	eo, err := o.common()
	if err != nil {
		return eo, err
	}
	if err := checkRange("--verify-rows", o.VerifyRows, 1, maxVerifyRows); err != nil {
		return eo, err
	}
	if err := checkPaths([]guard.Path{{Flag: "--student", Path: o.Student}, {Flag: "--verify", Path: o.Verify}},
		[]guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.File}}); err != nil {
		return eo, err
	}
	eo.Probs = o.Probs
	return eo, nil
}

// common validates the flags an MLP and a transformer export share and
// returns them as options.
func (o *exportOptions) common() (export.Options, error) {
	var eo export.Options
	if o.Dtype != export.F32 && o.Dtype != export.F16 {
		return eo, usageError("--dtype %q: want f32 or f16", o.Dtype)
	}
	q := strings.ToLower(o.Quantize)
	switch q {
	case "none", "":
		q = ""
	case export.Int8:
	default:
		return eo, usageError("--quantize %q: want none or int8", o.Quantize)
	}
	if q != "" && o.Dtype != export.F32 {
		return eo, usageError("--quantize int8 and --dtype f16 cannot be combined")
	}
	return export.Options{Opset: o.Opset, Dtype: o.Dtype, Quantize: q, ToolVersion: version}, nil
}

func runExport(ctx context.Context, stdout io.Writer, o exportOptions) error {
	if o.Student != "" && isTransformerCheckpoint(o.Student) {
		return runExportLM(ctx, stdout, o)
	}
	eo, err := o.options()
	if err != nil {
		return err
	}
	c, err := train.Load(o.Student)
	if err != nil {
		return newerHint(err)
	}
	if o.Verify != "" {
		// The cache and onnxruntime are checked before the model is
		// written: a --verify that cannot run leaves nothing behind.
		if err := eval.CheckParity(c, o.Verify, o.VerifyRows); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
		rt, err := extract.NewRuntime(o.OrtLib)
		if err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
		rt.Close()
	}
	if err := export.WriteFile(o.Out, c, &eo); err != nil {
		return err
	}
	fi, err := store.Stat(ctx, o.Out)
	if err != nil {
		return err
	}
	cfg := c.Student.Config
	input := c.Info.Input
	if input == "" {
		input = export.DefaultInputName
	}
	quant := "none"
	if eo.Quantize != "" {
		quant = eo.Quantize
	}
	outputs := fmt.Sprintf("%s [N,%d]", export.LogitsName, cfg.Classes)
	if eo.Probs {
		outputs += fmt.Sprintf(", %s [N,%d]", export.ProbsName, cfg.Classes)
	}
	fmt.Fprintf(stdout, "export: %s: %s (%d bytes), opset %d (IR %d), dtype %s, quantize %s\n",
		o.Out, human.Bytes(fi.Size), fi.Size, eo.Opset, export.IRVersion(eo.Opset), eo.Dtype, quant)
	fmt.Fprintf(stdout, "  input %s [N,%s] → %s\n", input, strings.Trim(human.Shape(studentInputShape(cfg)), "[]"), outputs)
	if o.Verify == "" {
		return nil
	}
	model, err := store.ReadFile(ctx, o.Out, 0)
	if err != nil {
		return err
	}
	res, err := verifyExport(ctx, c, model, &eo, o.Verify, o.VerifyRows, o.OrtLib)
	if err != nil {
		return fmt.Errorf("--verify: %w", err)
	}
	fmt.Fprint(stdout, res.String())
	if !res.OK() {
		return fmt.Errorf("--verify: max |Δlogit| %.3g exceeds the tolerance %.3g", res.MaxDiff, res.Tolerance)
	}
	return nil
}

// newerHint adds to a checkpoint's loading error, when its format is
// newer than this build's, that a newer distill wrote it.
func newerHint(err error) error {
	if errors.Is(err, train.ErrCheckpoint) && strings.Contains(err.Error(), "this build reads") {
		return fmt.Errorf("%w (written by a newer distill? export it with that version)", err)
	}
	return err
}

// studentInputShape is the student's per-sample input shape.
func studentInputShape(cfg train.Config) []int64 {
	if len(cfg.InputShape) == 0 {
		return []int64{int64(cfg.Inputs)}
	}
	s := make([]int64, len(cfg.InputShape))
	for i, d := range cfg.InputShape {
		s[i] = int64(d)
	}
	return s
}

// verifyResult is eval.Parity's comparison of an exported model with the
// Go student; its Tolerance is that of the export's dtype.
type verifyResult = eval.ParityResult

// verifyExport runs the first rows of cache through the exported model
// (onnxruntime) and the Go student (eval.Parity) and sets the tolerance:
// export.Tolerance of the variant.
func verifyExport(ctx context.Context, c *train.Checkpoint, model []byte, eo *export.Options, cache string, rows int, lib string) (*verifyResult, error) {
	input := c.Info.Input
	if input == "" {
		input = export.DefaultInputName
	}
	outputs := []string{export.LogitsName}
	if eo.Probs {
		outputs = append(outputs, export.ProbsName)
	}
	p, err := eval.Parity(ctx, c, cache, rows, eo.Probs, func() (eval.Runner, error) {
		return onnxmodel.NewRunner(lib, model, input, outputs)
	})
	if err != nil {
		return nil, err
	}
	res := p
	res.Tolerance = export.Tolerance(eo, p.MaxAbs)
	tol := export.TolF32
	switch {
	case eo.Quantize != "":
		tol = export.TolInt8
	case eo.Dtype == export.F16:
		tol = export.TolF16
	}
	res.ToleranceRule = fmt.Sprintf("%g × max(1, max |logit|)", tol)
	return res, nil
}

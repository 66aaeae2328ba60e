package export

import (
	"errors"
	"fmt"
)

// Opset bounds and default. Opset 17 (IR 8, ONNX 1.12) is the newest the
// ONNX checker shipped with Debian's python3-onnx validates and is read by
// every current runtime; it has LayerNormalization.
const (
	DefaultOpset = 17
	MinOpset     = 9  // Erf (exact GELU) and a batch-polymorphic Flatten
	MaxOpset     = 23 // the newest onnxruntime 1.24 runs (IR 11)
)

// Dtypes of the stored Linear weights and biases (Options.Dtype).
const (
	F32 = "f32"
	F16 = "f16"
)

// Int8 is the dynamic quantization scheme of Options.Quantize.
const Int8 = "int8"

// ErrUnsupported is wrapped by errors about a student, option or opset the
// exporter cannot express.
var ErrUnsupported = errors.New("export: unsupported")

// Options configure Write. A nil *Options or the zero value gives the
// defaults.
type Options struct {
	// Opset is the ai.onnx operator set, MinOpset..MaxOpset; 0 means
	// DefaultOpset. The IR version is the one ONNX released with it
	// (IRVersion). Below 17 LayerNorm is written out in primitive ops;
	// from 20 GELU is the Gelu op; --quantize int8 needs 11 or later.
	Opset int
	// Dtype stores the Linear and Conv weights and biases as F32 (default,
	// "") or F16. With F16 they are FLOAT16 initializers cast to float inside the
	// graph: the file is about half the size, arithmetic stays float32, and
	// the inputs and outputs are float32 either way.
	Dtype string
	// Quantize "" (default) keeps float weights; Int8 writes a dynamically
	// quantized model (about a quarter of the float32 size). Weights are
	// quantized symmetrically per output channel to [−127, 127]; biases,
	// scales, LayerNorm and standardization stay float32. Every Linear
	// after the first becomes DynamicQuantizeLinear of its input (uint8, per
	// tensor: scale and zero point over the whole batch), MatMulInteger with
	// the weights (stored as uint8 with zero point 128, so no runtime's u8×s8
	// kernel can saturate), a Cast, the scales and the bias. The first
	// Linear keeps a float input: its int8 weights are dequantized in the
	// graph (Cast, Mul) and fed to Gemm, because the standardized input of
	// a near-constant feature (an image border pixel) reaches thousands and
	// would set the 8-bit step for the whole batch. A CNN's convolutions
	// are quantized the same way, with ConvInteger (the first conv and
	// grouped convs with weights dequantized in the graph); see buildCNN. Quantize and Dtype
	// F16 cannot be combined.
	Quantize string
	// Probs adds a second output "probs" = Softmax(logits) over the classes.
	Probs bool
	// ToolVersion is recorded as the producer version and in the metadata;
	// "" means "unknown".
	ToolVersion string
}

// resolve validates o and fills defaults.
func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Opset == 0 {
		r.Opset = DefaultOpset
	}
	if r.Dtype == "" {
		r.Dtype = F32
	}
	if r.ToolVersion == "" {
		r.ToolVersion = "unknown"
	}
	if r.Opset < MinOpset || r.Opset > MaxOpset {
		return r, fmt.Errorf("%w: opset %d: distill writes opsets %d to %d", ErrUnsupported, r.Opset, MinOpset, MaxOpset)
	}
	if r.Dtype != F32 && r.Dtype != F16 {
		return r, fmt.Errorf("%w: dtype %q: want %s or %s", ErrUnsupported, r.Dtype, F32, F16)
	}
	switch r.Quantize {
	case "":
	case Int8:
		if r.Dtype != F32 {
			return r, fmt.Errorf("%w: quantize %s with dtype %s: choose one (int8 weights keep float32 scales and biases)", ErrUnsupported, Int8, r.Dtype)
		}
		if r.Opset < 11 {
			return r, fmt.Errorf("%w: quantize %s needs opset 11 or later (DynamicQuantizeLinear), not %d", ErrUnsupported, Int8, r.Opset)
		}
	default:
		return r, fmt.Errorf("%w: quantize %q: want %s", ErrUnsupported, r.Quantize, Int8)
	}
	return r, nil
}

// IRVersion returns the ONNX IR version released with opset (ONNX's
// VERSION_TABLE in onnx/helper.py): 4 for opset 9, 5 for 10, 6 for 11, 7
// for 12 to 14, 8 for 15 to 18, 9 for 19 and 20, 10 for 21 and 22, 11 for
// 23.
func IRVersion(opset int) int64 {
	switch {
	case opset <= 9:
		return 4
	case opset == 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	case opset <= 22:
		return 10
	}
	return 11
}

// Tolerances of an exported model's logits against train's Forward on the
// same rows, as the parity tests require and distill export --verify
// checks (see Tolerance). Each is relative to max(1, max |logit|): float32
// rounding, like the f16 and int8 rounding, scales with the logits.
const (
	// TolF32: the same float32 ops, accumulated in another order (Gemm
	// blocking, LayerNorm and Erf kernels). 1e-5 absolute for logits up to
	// 1; an MNIST 784-800-800-10 GELU+LayerNorm student with logits up to
	// 23 differs by 1.9e-5 (8 float32 ulps), so an absolute bound would
	// fail correct exports of ordinary students.
	TolF32 = 1e-5
	// TolF16: binary16 weights and biases have a relative error of at most
	// 2⁻¹¹ ≈ 4.9e-4 each; the logits typically move by 1e-4 to 5e-4 of
	// their scale.
	TolF16 = 1e-2
	// TolInt8: 8-bit weights per output channel, and 8-bit activations per
	// batch into every Linear but the first; the logits typically move by
	// 0.5% (MNIST students) to 3% (random tiny students) of their scale.
	TolInt8 = 1e-1
)

// Tolerance returns the largest |Δlogit| allowed between the model Write
// produces with opts and train's Forward, for rows whose largest |logit|
// (from Forward) is maxAbs: TolF32, TolF16 or TolInt8 × max(1, maxAbs).
func Tolerance(opts *Options, maxAbs float64) float64 {
	var o Options
	if opts != nil {
		o = *opts
	}
	scale := max(1, maxAbs)
	switch {
	case o.Quantize != "":
		return TolInt8 * scale
	case o.Dtype == F16:
		return TolF16 * scale
	}
	return TolF32 * scale
}

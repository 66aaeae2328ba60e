// Package export writes a trained student (a train.Checkpoint) as a
// standard ONNX model that drops in where the teacher ran: the same input
// name and per-sample shape, a symbolic batch axis, float32 logits out;
// and a transformer (train.Transformer, a train.LMCheckpoint) as a
// decoder with past or a full-sequence language model (MarshalLM,
// WriteLMDir).
//
// # Sections
//
//   - Writing: Write, WriteFile (atomic), Marshal; Options (Opset, Dtype,
//     Quantize, Probs, ToolVersion), IRVersion.
//   - Language models: MarshalLM, WriteLMDir (a folder: model.onnx,
//     config.json, genai_config.json, the tokenizer), FindTokenizer,
//     TransformerOf; LMOptions, MinLMOpset; the input and output names
//     (InputIDsName, PastKeyNames, ...).
//   - Inspecting: Dump, a readable node listing.
//   - Quantization: QuantizeWeights, WeightZeroPoint.
//   - Names: LogitsName, ProbsName, BatchDim, Meta* metadata keys.
//   - Errors: ErrUnsupported.
//
// # Graph
//
// The graph is the student's inference-mode forward pass, op for op, using
// only ops every runtime has:
//
//	input [N, InputShape...]                       named CheckpointInfo.Input ("image", ...)
//	Flatten(axis 1)                                when InputShape has more than one axis
//	Sub input_mean, Div input_std                  the student's standardization, exactly
//	per hidden block h:
//	  Gemm(x, fc{h}.weight [out,in], fc{h}.bias, transB 1)
//	  LayerNormalization(ln{h}.weight, ln{h}.bias, axis −1, ε 1e-5)   with --layernorm
//	  Relu | Tanh | GELU                           GELU: Gelu from opset 20, else 0.5·x·(1+Erf(x/√2))
//	  (Dropout: omitted, the identity at inference)
//	Gemm(x, fc{L}.weight, fc{L}.bias, transB 1) → logits [N, classes]
//	Softmax(axis 1) → probs [N, classes]           with Options.Probs
//
// A convolutional student (Config.Type "cnn") keeps the teacher's image
// input and its layer indices as names (buildCNN):
//
//	input [N, C, H, W]                             ([N, H, W]: Reshape to [N, 1, H, W])
//	Sub input_mean, Div input_std                  [C, 1, 1] per channel, or [C, H, W] per value
//	Conv(pads, strides, dilations, group)          a BatchNorm right after it folded in:
//	                                               w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β
//	BatchNormalization                             a BatchNorm after anything else (a pool, gap)
//	MaxPool | AveragePool (kernel K, stride S)     no padding, floor, as torch
//	GlobalAveragePool, Flatten                     gap → [N, C]
//	Relu | Clip(0, 6)                              relu, relu6
//	Flatten(axis 1), Gemm                          fc (after [C, H, W] maps: torch's order)
//
// Below opset 17 LayerNormalization is written out as ReduceMean, Sub, Mul,
// ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β. The IR version is the one
// released with the opset (IRVersion): opset 17, the default, is IR 8.
//
// # Precision
//
// With float32 weights the exported model reproduces train's Forward to
// within float32 rounding. Dtype F16 rounds the Linear weights and biases
// (and a CNN's folded Conv weights) to binary16 (relative error ≤ 2⁻¹¹)
// and computes in float32; Quantize Int8 rounds weights to 8 bits per
// output channel and the input of every Linear or Conv but the first (and
// grouped convs) to 8 bits per batch (DynamicQuantizeLinear, MatMulInteger, ConvInteger:
// onnxruntime's dynamic quantization, checked in its CPU provider; a
// runtime without these ops cannot run an int8 file). Tolerance gives the bound on
// |Δlogit| each must meet (TolF32, TolF16, TolInt8 relative to
// max(1, max |logit|)); the parity tests and distill export --verify apply
// it.
//
// # Provenance
//
// ModelProto.metadata_props carries the tool version, the student config,
// the teacher's sha256, the training cache's manifest digest, temperature,
// α, epochs, steps and the final epoch's metrics (Meta* keys).
//
// # Example
//
//	c, err := train.Load("student.ckpt")
//	...
//	err = export.WriteFile("student.onnx", c, &export.Options{Dtype: export.F16})
package export

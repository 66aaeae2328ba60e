// Package onnxmodel makes an ONNX file an eval.Model: its single input is
// fed through onnxruntime (extract's Runtime and Session) and its score
// tensor chosen as extract chooses it, a final Softmax looked through and
// probabilities turned into log-probabilities. It is the one part of eval
// that needs cgo; built without it, opening a scorer fails with extract's
// explanation.
//
// # Sections
//
//   - Models: Open, Options; Params (weight values of a model proto).
//   - Running: Runner, NewRunner (one float32 input, every output), the
//     eval.Runner that eval.Parity compares an exported student with.
//
// # Fixed batch sizes
//
// A model whose batch axis is fixed (1, 10, ...) runs at that size: a
// request of n rows is split into runs of it, the last padded with zeros,
// and the scorer's RunBatch reports the size, which eval records beside
// the latency.
//
// # Example
//
//	m, err := onnxmodel.Open("student.onnx", &onnxmodel.Options{Threads: 1})
//	...
//	res, err := eval.Run(ctx, m, data, nil, nil)
package onnxmodel

// Package lm runs causal language models one call at a time, for
// generation (distill generate) and evaluation (distill eval of a language
// model): a Model starts Sessions, and a Session feeds new tokens with an
// attention mask and positions and returns their next-token logits.
//
// # Sections
//
//   - Models: Model, Info, Session, the Kind* constants, ErrModel.
//   - Batches: LeftPad, Positions (the Hugging Face position rule).
//
// Package lm/onnxlm opens ONNX files as Models through onnxruntime (the
// one part that needs cgo).
package lm

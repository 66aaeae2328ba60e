// Package lm runs causal language models one call at a time, for
// generation (distill generate) and evaluation (distill eval of a language
// model): a Model starts Sessions, and a Session feeds new tokens with an
// attention mask and positions and returns their next-token logits.
//
// # Sections
//
//   - Models: Model, Info, Session, the Kind* constants, ErrModel;
//     OpenCheckpoint (a transformer checkpoint or a Hugging Face Llama
//     directory through the Go forward with a KV cache, train.Decoder).
//   - Batches: LeftPad, Positions (the Hugging Face position rule).
//   - Sampling: Sampling (temperature, top-k, top-p), Sampler, SampleRNG.
//   - Generation: Generate, GenerateOptions, Sample, Progress.
//
// Package lm/onnxlm opens ONNX files as Models through onnxruntime (the
// one part that needs cgo).
package lm

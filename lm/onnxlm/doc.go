// Package onnxlm opens ONNX language models as lm.Models run by
// onnxruntime (through extract's runtime; the one part of lm that needs
// cgo, and without cgo Open fails with extract.ErrNoRuntime):
//
//   - a decoder with past in the Hugging Face Optimum / onnxruntime-genai
//     convention (input_ids, attention_mask, position_ids,
//     past_key_values.{i}.key|value → logits, present.{i}.key|value), each
//     Step feeding the previous Step's presents back as the past;
//   - a full-sequence model (input_ids → logits [batch, seq, vocab]), re-run
//     over each row's whole prefix at every Step.
//
// # Sections
//
//   - Opening: Open, Options; the convention's names (InputIDs, PastKey, ...).
package onnxlm

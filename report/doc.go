// Package report turns a run directory into a self-contained HTML page:
// the size and speed table of its eval outputs, the training curves of its
// checkpoints, reliability diagrams, confusion matrices and per-class
// accuracy, drawn with gonum/plot as PNGs beside index.html; for language
// models their size and speed table (perplexity, prefill and decode
// tokens/s), the curves of transformer checkpoints and generated samples
// side by side. It reads eval.Result JSON, train checkpoints' config.json
// and metrics.jsonl, transformer checkpoints' training.json and distill
// generate's JSONL samples; it never runs a model (no onnxruntime, no
// cgo).
//
// # Sections
//
//   - Reading a run: Load, Checkpoint; LoadRun, Run, LMCheckpoint,
//     SampleFile, Sample (language-model runs).
//   - Writing: Write, Options; WriteTable (the size and speed table as
//     text).
//
// # Layout
//
// A run directory holds checkpoints (directories named *.ckpt, at any
// depth) and eval outputs:
//
//	run/
//	  kd.ckpt/               distill train --out
//	  baseline.ckpt/
//	  eval/kd.json           distill eval --out (eval.Result)
//	  eval/teacher.json
//	  lm-kd/training.json    distill train --student transformer --out
//	  teacher.jsonl          distill generate --out (samples)
//	  report/index.html      Write: the page,
//	  report/curves.png        and its charts, linked relatively
//
// Every file appears atomically (internal/atomicfile). Charts of an
// earlier report that this one did not rewrite (a model renamed or
// removed) are deleted; other files in the report directory are left
// alone.
//
// # Example
//
//	index, warnings, err := report.Write("run", nil)
package report

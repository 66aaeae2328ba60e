// Package extract runs a teacher ONNX model through onnxruntime over a
// dataset once and writes its outputs to a cache (package formats).
//
// # Sections
//
//   - Runtime: locating and loading the onnxruntime shared library
//     (LocateLibrary, NewRuntime, Runtime). One environment per process.
//   - Models: LoadModel, ParseModel, Model (inputs, outputs, intermediate
//     tensors, WithOutputs, WithTopK, FixedBatch, RelaxBatch,
//     Penultimate), TensorInfo, ElemType, TopKTensors.
//   - Scores: ChooseScores, ScoreSource, ScoreKind, ParseScoreKind,
//     DetectKind, LogProbsInPlace.
//   - Sessions: NewSession, Session, Tensor, SessionOptions; Probe.
//   - Runs: Options, Run, Result; NonFinite.
//   - Parsers of command-line values: ParseNumber (finite only),
//     ParseFloatList, ParseShape, ParseShard; Preprocess (formats').
//   - Errors: ErrNoRuntime, ErrModel, ErrSettings, ErrInterrupted.
//
// # Runs and their failures
//
// Run reads the dataset, runs the teacher and writes parts in goroutines
// joined by bounded queues. Options.Out is a directory or an object
// prefix (s3://, gs://). Parts appear whole or not at all, the attempt's
// journal lists the complete ones and manifest.json is written once,
// create-only, at the end (formats.CacheWriter), so a killed run resumes
// (Options.Resume) to the bytes of an uninterrupted one, and of two
// workers on one shard the first to commit wins while the other, finding
// the same settings committed, succeeds without writing. A local cache
// directory is locked for the whole run (internal/lock): a second local
// writer fails at once. A run that fails before its first part removes
// what it created, so the same command can simply run again.
//
// A sequence teacher cached as top-k logits runs with its top-k, logsumexp
// and minimum computed inside the graph (Model.WithTopK), so that k+3
// values per position leave onnxruntime instead of V; every other cache
// takes the scores and derives what it stores in Go (formats.TopK,
// formats.Sample).
//
// onnxruntime is reached through cgo (github.com/yalue/onnxruntime_go); a
// build with CGO_ENABLED=0 compiles, and NewRuntime then returns ErrNoRuntime.
package extract

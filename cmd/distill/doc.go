// Command distill distils ONNX teachers offline: it runs a teacher once
// over a dataset and caches its outputs, trains pure-Go students against
// that cache, exports them back to ONNX, and measures and reports them.
//
// Usage:
//
//	distill extract --teacher T.onnx --data D --out CACHE [flags]
//	distill train   --cache CACHE --out student.ckpt --layers 800,800 [flags]
//	distill export  --student student.ckpt --out student.onnx [flags]
//	distill eval    --model M.onnx|student.ckpt --data D [--out RUN/eval/NAME.json] [flags]
//	distill report  RUN_DIR [--out DIR] [--table]
//	distill inspect CACHE [CACHE...] [--rows N] [--verify] [--json]
//	distill tensors TEACHER.onnx
//	distill data    (mnist --split train|test --out FILE | text --tokenizer TOK --seq-len T --out FILE INPUT... | info FILE)
//	distill generate --model M --tokenizer TOK [--prompt TEXT | --prompts FILE] [--out FILE.jsonl] [--tokens FILE --seq-len T]
//	distill version
//
// 'distill COMMAND --help' prints a command's flags. The work is done by
// the packages extract, train, export, eval (with eval/onnxmodel), lm
// (with lm/onnxlm) and report; this command holds the flags, their validation, the
// orchestration and the printing, one file per command (cmd_NAME.go).
//
// Environment: DISTILL_GEMM=avx512|avx2|generic forces the matrix-product
// kernel of the student math (train/gemm.SetKernel);
// ONNXRUNTIME_SHARED_LIBRARY_PATH names the onnxruntime library when
// --ort-lib does not; JOB_COMPLETION_INDEX, DISTILL_SHARD_COUNT and
// SLURM_ARRAY_TASK_* give extract its shard.
//
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.
package main

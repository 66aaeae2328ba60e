// Package eval measures a model against labels and a teacher: accuracy,
// top-1 agreement and KL(teacher ‖ model), expected calibration error with
// its reliability table, the confusion matrix and per-class accuracy,
// latency, size and parameters. distill eval is a thin command over it,
// and package report reads the Result it writes. It runs no onnxruntime
// itself (no cgo): eval/onnxmodel makes an ONNX file a Model through
// extract's runtime.
//
// # Sections
//
//   - Models: Model (a model before it is bound to an input shape),
//     Scorer (scores batches), OpenCheckpoint and StudentScorer (a train
//     checkpoint, run by the Go forward pass), FileSHA256.
//   - Data: Data (OpenData: a cache with cached inputs, or a dataset file
//     with extract's preprocessing), Chunk; TeacherScores and TeacherTable
//     (LoadTeacherTable: a teacher cache matched by row id).
//   - Metrics: Position, Metric, Accumulator; Accuracy, Agreement,
//     Calibration, ClassifierMetrics; ECEBins.
//   - Running: Options, Run; BenchLatency.
//   - Language models: RunLM over an lm.Model (ONNX through lm/onnxlm,
//     opened by the command; eval itself stays cgo-free), LMOptions;
//     LMData (OpenLMData: a token dataset, or a per-token cache with its
//     teacher scores), LMDataOptions, LMChunk; NLL, NewTokenAccuracy,
//     LMMetrics; BenchPrefill, BenchDecode; LMInfo, TokenLatency;
//     DescribeTransformer.
//   - Export parity: Runner, Parity, ParityResult, ParityBatch.
//   - Results: Result (its JSON form; WriteText for people) and its parts (ModelInfo, Training, DataInfo,
//     TeacherInfo, Class, Bin, Latency); TrainingOf, DescribeStudent.
//   - Errors: ErrOption.
//
// # Metrics
//
// Every metric sees the model's predictions one Position at a time: a row
// of a classifier, or one token of a sequence for a language model (its
// classes the vocabulary, its label the next token). The Accumulator turns
// a batch of scores into positions once — finiteness, log-softmax
// (formats.LogSumExp), argmax, top-1 confidence — and hands each to every
// Metric, which keeps its own sums and fills its fields of the Result:
//
//	Accuracy     correct / positions against the labels; confusion [label][prediction]
//	Agreement    argmax model = argmax teacher; KL(p ‖ q) = Σ_c p_c (log p_c − log q_c) at T = 1
//	Calibration  ECE = Σ_b (n_b/N)·|acc_b − conf_b| over 15 bins (b/15, (b+1)/15]
//
// For a top-k teacher the KL runs over the k cached classes plus one
// bucket for the rest of the mass (TeacherScores.KL). Scores holding NaN
// or ±Inf predict nothing: they count as errors and disagreements and stay
// out of the KL and the calibration. A per-token evaluation adds its own
// Metric — a negative log-likelihood sums −LogQ[Label] — and runs the same
// loop; no second framework (RunLM: NLL, NewTokenAccuracy without the
// V×V confusion matrix, Agreement, Calibration against the next tokens).
// A sampled teacher's KL runs over its distinct drawn ids and the rest
// bucket, as a top-k one's (TeacherScores.Count marks the padding).
//
// # Results
//
// Result's JSON form is a file format: distill eval --json prints it,
// --out writes it to RUN/eval/NAME.json and report.Load reads it back.
// Fields that do not apply are absent (omitempty), never zero.
//
// # Example
//
//	m, err := eval.OpenCheckpoint("student.ckpt", 0)
//	...
//	d, err := eval.OpenData("test-cache", nil, formats.Preprocess{})
//	...
//	defer d.Close()
//	res, err := eval.Run(ctx, m, d, nil, &eval.Options{Name: "student", BenchTime: time.Second})
//	fmt.Printf("%.2f%% accurate, %.2f%% agreement\n", 100**res.Accuracy, 100**res.Agreement)
package eval

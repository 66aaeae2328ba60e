package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/eval/onnxmodel"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/progress"
	"github.com/distill-ml/distill/internal/store"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "eval",
		UsageLine: "--model M.onnx|student.ckpt|LM --data D [--teacher-cache C] [--json] [--out FILE.json] [flags]",
		Short:     "measure a model: accuracy or perplexity, agreement with the teacher, calibration, latency, size",
		Long: `Evaluate a model on labelled data and print its accuracy, test errors,
top-1 agreement and KL(teacher || model) at T = 1 with the teacher, expected
calibration error (15 equal-width bins), per-class accuracy, the reliability
table and the confusion matrix, per-sample latency (p50, p99) at batch 1 and
at --batch, the file size and the parameter count.

--model is an ONNX file (a teacher or an exported student, run through
onnxruntime with its single input; a final Softmax is looked through as in
extract, other probabilities are turned into log-probabilities) or a
student checkpoint directory from distill train (run by the Go forward pass
in evaluation mode).

--data is a cache directory with an input.* column (distill extract
--keep-input), whose labels and teacher scores are used, or a dataset file
(Parquet, Arrow IPC, .npy, CSV, MNIST idx) read and preprocessed as extract
does (--scale, --mean, --std, --reshape, --label, --labels, --features).
The input column is the one named like the model's input (--input chooses).

The teacher is --teacher-cache, its rows matched to the data's by row id,
or, when --data is a cache, that cache's own scores. Rows it lacks are left
out of agreement and KL. The calibration error is measured against the
labels, or against the teacher's top-1 when the data has none.

Latency is wall time per run divided by the batch size, on the first rows
of the data (repeated to fill --batch), after two warm-up runs, over at
least --bench-time and 100 runs at batch 1 (10 at --batch), single process;
--bench-time 0 skips it. Parameters count the model's stored weight values:
ONNX initializers and Constant tensors (int64 shape constants excluded), a
checkpoint's model.safetensors tensors (including the input
standardization, as its ONNX export stores it). The file size is the .onnx
file or the checkpoint's model.safetensors.

Language models. An ONNX model with an int64 input_ids [batch, seq] input
and a logits [batch, seq, vocab] output (a decoder with past_key_values.*
inputs runs with its KV cache, a full-sequence one is re-run over the
prefix), or a folder holding model.onnx (distill export), is evaluated as a
language model, and so is a transformer checkpoint directory (distill
train --student transformer: training.json) or a Hugging Face Llama
directory (config.json with a model_type, model.safetensors), run by the Go
forward pass with a KV cache (--threads its matrix products' threads). Its
--data is a token dataset
(distill data text: windows of T+1 ids, the first T fed, the last T the
next-token labels; with a "val" column --split picks val (the default),
train or all windows), or a per-token cache (distill extract over one),
whose labels and teacher scores are used, its ids read from its
input.input_ids column or from the token dataset its manifest names.
--data TOKENS --teacher-cache CACHE evaluates the cache's windows with
their ids read from TOKENS. Each window is fed whole from an empty past,
--batch windows per call (default 8 for a language model), --rows bounds
the windows. It reports, per next-token position: the mean negative
log-likelihood of the true next token (nats/token) and the perplexity
exp(NLL), next-token top-1 accuracy, top-1 agreement and KL(teacher ||
model) at T = 1 with the teacher (a dense cache exactly; a top-k cache
over the k + 1 buckets; a sampled cache over the distinct drawn ids + 1
bucket, a lower bound), ECE (15 bins) against the next tokens; then the
prefill throughput (one call over a whole window at batch 1, tokens/s
from the p50 call) and cached decoding at each --decode-batch (default
1,16): a prompt of --decode-prompt tokens, then --decode-steps
single-token calls, only those timed (tokens/s = batch / p50 step), the
tokens taken from the first windows; each for --bench-time (at least 10
prefill calls, 2 runs of decoding). The parameters and file size are the
.onnx file's, or a checkpoint's model.safetensors.

--out writes the JSON (what --json prints) to a file atomically; distill
report reads RUN_DIR/eval/*.json, and --report writes that report for the
run directory of --out (the parent of its eval/ directory).

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o evalOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				o.changed = fs.Changed
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				if err := o.parse(); err != nil {
					return err
				}
				res, err := runEvalAt(ctx, o)
				if err != nil {
					return err
				}
				return writeEvalOutputs(cmdOut, o, res)
			}
		},
	})
}

// evalOptions are the flags of distill eval.
type evalOptions struct {
	Model, Data, TeacherCache string
	JSON                      bool
	Out                       string
	Report                    bool
	Name                      string
	Threads, Batch            int
	BenchTime                 time.Duration
	Input, Output, Scores     string
	Lib                       string
	Scale, Mean, Std, Reshape string
	Dataset                   dataset.Options
	// Language models.
	DecodeSteps, DecodePrompt, Rows int
	DecodeBatch                     []int
	Split                           string

	pre     extract.Preprocess     // parsed --scale, --mean, --std
	reshape []int64                // parsed --reshape
	changed func(flag string) bool // whether the flag (without "--") was given
}

// AddFlags registers the flags on fs.
func (o *evalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Model, "model", "", "model to evaluate: an .onnx file or a student checkpoint directory; a path or an s3:// / gs:// location (required)")
	fs.StringVar(&o.Data, "data", "", "cache directory with an input column, or a dataset file; a language model: a token dataset or a per-token cache (required)")
	fs.StringVar(&o.TeacherCache, "teacher-cache", "", "cache of the teacher's scores for the same rows (default: --data's scores when it is a cache)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON")
	fs.StringVar(&o.Out, "out", "", "also write the JSON to this file or s3:// / gs:// location (atomically), e.g. RUN/eval/student.json")
	fs.BoolVar(&o.Report, "report", false, "after --out, write the HTML report of its run directory (see distill report)")
	fs.StringVar(&o.Name, "name", "", "the model's name in outputs and reports (default: the file name without extension)")
	fs.IntVar(&o.Threads, "threads", 0, "threads: onnxruntime intra-op, or the student's matrix products (0 = all cores; at most 4 per core)")
	fs.IntVar(&o.Batch, "batch", 256, "rows per model run (1..1048576), and the large batch of the latency measurement; a language model: windows per call (default 8)")
	fs.DurationVar(&o.BenchTime, "bench-time", time.Second, "time spent measuring latency at each batch size (0 = skip; at most 10m)")
	fs.StringVar(&o.Input, "input", "", "data input column to feed (default: the one named like the model's input, or the only one)")
	fs.StringVar(&o.Output, "output", "", "ONNX: the tensor holding the class scores (default: chosen as extract does)")
	fs.StringVar(&o.Scores, "scores", "auto", "ONNX: what the scores are: auto, logits, probs or log_probs")
	fs.StringVar(&o.Lib, "ort-lib", "", "onnxruntime shared library (default: $"+extract.EnvLibraryPath+", then the project cache from make setup)")
	fs.StringVar(&o.Scale, "scale", "", "dataset files: multiply input values by this first, e.g. 1/255")
	fs.StringVar(&o.Mean, "mean", "", "dataset files: subtract per-channel mean (after --scale)")
	fs.StringVar(&o.Std, "std", "", "dataset files: divide by per-channel std (after --mean)")
	fs.StringVar(&o.Reshape, "reshape", "", "per-sample shape fed to an ONNX model, without the batch axis, e.g. 1,28,28")
	fs.StringVar(&o.Dataset.Label, "label", "", `dataset label column (default "label" if present; "-" for none)`)
	fs.StringVar(&o.Dataset.Labels, "labels", "", "separate labels file for .npy or idx data, a path or URL (default for idx: the sibling labels file)")
	fs.StringSliceVar(&o.Dataset.Features, "features", nil, "scalar dataset columns combined, in order, into one input column")
	fs.StringVar(&o.Dataset.FeatureName, "feature-name", "", `name of that combined column (default "input")`)
	fs.IntVar(&o.DecodeSteps, "decode-steps", eval.DefaultDecodeSteps, "language models: single-token steps per timed decoding run (1..65536)")
	fs.IntVar(&o.DecodePrompt, "decode-prompt", eval.DefaultDecodePrompt, "language models: tokens fed before the timed decoding steps (1..65536)")
	fs.IntSliceVar(&o.DecodeBatch, "decode-batch", eval.DefaultDecodeBatch, "language models: batch sizes decoding is timed at (1..4096 each)")
	fs.IntVar(&o.Rows, "rows", 0, "language models: evaluate the first N windows only (0 = all)")
	fs.StringVar(&o.Split, "split", "", "language models: a token dataset's windows: val, train or all (default: val if it marks some, else all)")
}

// parse checks the flags and parses the preprocessing.
func (o *evalOptions) parse() error {
	if o.Model == "" {
		return usageError("--model is required")
	}
	if o.Data == "" {
		return usageError("--data is required")
	}
	if err := checkRange("--batch", o.Batch, 1, maxBatch); err != nil {
		return err
	}
	if err := checkThreads(o.Threads); err != nil {
		return err
	}
	if o.BenchTime < 0 || o.BenchTime > maxBenchTime {
		return usageError("--bench-time %v: want 0 (skip) to %v", o.BenchTime, maxBenchTime)
	}
	if err := o.checkLMOptions(); err != nil {
		return err
	}
	if o.Report && o.Out == "" {
		return usageError("--report needs --out (the report covers the run directory of --out)")
	}
	if _, err := extract.ParseScoreKind(o.Scores); err != nil {
		return usageError("--scores: %v", err)
	}
	var err error
	if o.pre, err = parsePreprocess(o.Scale, o.Mean, o.Std, o.Reshape); err != nil {
		return err
	}
	o.reshape = o.pre.Shape
	if o.Name == "" {
		base := store.Base(o.Model)
		o.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	outputs := []guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.File}}
	if o.Report {
		outputs = append(outputs, guard.Path{Flag: "--report", Path: store.Join(evalRunDir(o.Out), "report"), Kind: guard.Dir})
	}
	return checkPaths([]guard.Path{{Flag: "--model", Path: o.Model}, {Flag: "--data", Path: o.Data},
		{Flag: "--teacher-cache", Path: o.TeacherCache}, {Flag: "--labels", Path: o.Dataset.Labels}}, outputs)
}

// maxBenchTime bounds --bench-time.
const maxBenchTime = 10 * time.Minute

// evalRunDir is the run directory of an eval output: the parent of its
// eval/ directory, else its directory.
func evalRunDir(out string) string {
	run := store.Parent(out)
	if store.Base(run) == "eval" {
		run = store.Parent(run)
	}
	return run
}

// runEvalAt is runEval for an o.Model that may be remote (s3://, gs://):
// it is downloaded for the run (fetchModel) and the result names the
// location.
func runEvalAt(ctx context.Context, o evalOptions) (*eval.Result, error) {
	loc := o.Model
	local, rename, cleanup, err := fetchModel(ctx, "--model", loc)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	o.Model = local
	res, err := runEval(ctx, o)
	if store.IsRemote(loc) {
		relocateModel(res, loc, rename)
	}
	return res, err
}

// runEval opens o.Model, o.Data and the teacher and evaluates with
// eval.Run, printing progress and warnings to stderr.
func runEval(ctx context.Context, o evalOptions) (*eval.Result, error) {
	if o.changed == nil {
		o.changed = func(string) bool { return false }
	}
	kind, err := lmKind(o.Model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if err := checkLMFlags(o, kind != ""); err != nil {
		return nil, err
	}
	if kind != "" {
		return runLMEval(ctx, o, kind)
	}
	model, err := openEvalModel(o)
	if err != nil {
		return nil, err
	}
	data, err := eval.OpenData(o.Data, &o.Dataset, o.pre)
	if err != nil {
		return nil, evalError("--data", err)
	}
	defer data.Close()
	var table *eval.TeacherTable
	if o.TeacherCache != "" {
		if table, err = eval.LoadTeacherTable(o.TeacherCache); err != nil {
			return nil, fmt.Errorf("--teacher-cache: %w", err)
		}
	}
	pr := progress.New(cmdErr, "eval", "rows")
	var warnings []string
	res, err := evalRun(ctx, model, data, table, &eval.Options{
		Name: o.Name, Input: o.Input, Batch: o.Batch, BenchTime: o.BenchTime, Threads: o.Threads, ToolVersion: version,
		Progress: pr.Update,
		Warn:     func(msg string) { warnings = append(warnings, msg) },
	})
	pr.Done() // before the warnings, which would land inside a terminal's bar
	for _, w := range warnings {
		fmt.Fprintf(cmdErr, "eval: warning: %s\n", w)
	}
	return res, err
}

// evalRun is eval.Run with its option errors turned into usage errors.
func evalRun(ctx context.Context, m *eval.Model, d *eval.Data, t *eval.TeacherTable, o *eval.Options) (*eval.Result, error) {
	res, err := eval.Run(ctx, m, d, t, o)
	return res, evalError("", err)
}

// evalError turns an eval.ErrOption error into a usage error, and prefixes
// other errors with flag when it is set.
func evalError(flag string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eval.ErrOption):
		return usageError("%v", err)
	case flag != "":
		return fmt.Errorf("%s: %w", flag, err)
	}
	return err
}

// openEvalModel loads o.Model: a directory is a student checkpoint
// (distill train), anything else an ONNX model run through onnxruntime.
func openEvalModel(o evalOptions) (*eval.Model, error) {
	st, err := os.Stat(o.Model)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if st.IsDir() {
		return eval.OpenCheckpoint(o.Model, o.Threads)
	}
	kind, err := extract.ParseScoreKind(o.Scores)
	if err != nil {
		return nil, usageError("--scores: %v", err)
	}
	return onnxmodel.Open(o.Model, &onnxmodel.Options{Lib: o.Lib, Threads: o.Threads, Output: o.Output, Scores: kind, Reshape: o.reshape})
}

// writeEvalOutputs prints res (text or --json), writes --out and the
// --report.
func writeEvalOutputs(w io.Writer, o evalOptions, res *eval.Result) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	// The file first: it is what a pipeline keeps, even if stdout is a
	// closed pipe.
	if o.Out != "" {
		if err := writeOutput(context.Background(), o.Out, js); err != nil {
			return err
		}
	}
	if o.JSON {
		if _, err := w.Write(js); err != nil {
			return err
		}
	} else if err := res.WriteText(w); err != nil {
		return err
	}
	if o.Out == "" {
		return nil
	}
	if !o.JSON {
		fmt.Fprintf(w, "wrote %s\n", o.Out)
	}
	if o.Report {
		index, err := writeReport(evalRunDir(o.Out), "")
		if err != nil {
			return err
		}
		if !o.JSON {
			fmt.Fprintf(w, "report: %s\n", index)
		}
	}
	return nil
}

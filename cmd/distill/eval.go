package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "eval",
		UsageLine: "--model M.onnx|student.ckpt --data D [--teacher-cache C] [--json] [--out FILE.json] [flags]",
		Short:     "measure a model: accuracy, agreement with the teacher, calibration, confusion, latency, size",
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

--out writes the JSON (what --json prints) to a file atomically; distill
report reads RUN_DIR/eval/*.json, and --report writes that report for the
run directory of --out (the parent of its eval/ directory).

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o evalOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				if err := o.parse(); err != nil {
					return err
				}
				res, err := runEval(ctx, o)
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

	pre     extract.Preprocess // parsed --scale, --mean, --std
	reshape []int64            // parsed --reshape
}

// AddFlags registers the flags on fs.
func (o *evalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Model, "model", "", "model to evaluate: an .onnx file or a student checkpoint directory (required)")
	fs.StringVar(&o.Data, "data", "", "cache directory with an input column, or a dataset file (required)")
	fs.StringVar(&o.TeacherCache, "teacher-cache", "", "cache of the teacher's scores for the same rows (default: --data's scores when it is a cache)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON")
	fs.StringVar(&o.Out, "out", "", "also write the JSON to this file (atomically), e.g. RUN/eval/student.json")
	fs.BoolVar(&o.Report, "report", false, "after --out, write the HTML report of its run directory (see distill report)")
	fs.StringVar(&o.Name, "name", "", "the model's name in outputs and reports (default: the file name without extension)")
	fs.IntVar(&o.Threads, "threads", 0, "threads: onnxruntime intra-op, or the student's matrix products (0 = all cores)")
	fs.IntVar(&o.Batch, "batch", 256, "rows per model run, and the large batch of the latency measurement")
	fs.DurationVar(&o.BenchTime, "bench-time", time.Second, "time spent measuring latency at each batch size (0 = skip)")
	fs.StringVar(&o.Input, "input", "", "data input column to feed (default: the one named like the model's input, or the only one)")
	fs.StringVar(&o.Output, "output", "", "ONNX: the tensor holding the class scores (default: chosen as extract does)")
	fs.StringVar(&o.Scores, "scores", "auto", "ONNX: what the scores are: auto, logits, probs or log_probs")
	fs.StringVar(&o.Lib, "ort-lib", "", "onnxruntime shared library (default: $"+extract.EnvLibraryPath+", then the project cache from make setup)")
	fs.StringVar(&o.Scale, "scale", "", "dataset files: multiply input values by this first, e.g. 1/255")
	fs.StringVar(&o.Mean, "mean", "", "dataset files: subtract per-channel mean (after --scale)")
	fs.StringVar(&o.Std, "std", "", "dataset files: divide by per-channel std (after --mean)")
	fs.StringVar(&o.Reshape, "reshape", "", "per-sample shape fed to an ONNX model, without the batch axis, e.g. 1,28,28")
	fs.StringVar(&o.Dataset.Label, "label", "", `dataset label column (default "label" if present; "-" for none)`)
	fs.StringVar(&o.Dataset.Labels, "labels", "", "separate labels file for .npy or idx data (default for idx: the sibling labels file)")
	fs.StringSliceVar(&o.Dataset.Features, "features", nil, "scalar dataset columns combined, in order, into one input column")
	fs.StringVar(&o.Dataset.FeatureName, "feature-name", "", `name of that combined column (default "input")`)
}

// parse checks the flags and parses the preprocessing.
func (o *evalOptions) parse() error {
	if o.Model == "" {
		return usageError("--model is required")
	}
	if o.Data == "" {
		return usageError("--data is required")
	}
	if o.Batch < 1 || o.Batch > 1<<20 {
		return usageError("--batch %d: want 1..%d", o.Batch, 1<<20)
	}
	if o.Threads < 0 {
		return usageError("--threads %d: want 0 (all cores) or more", o.Threads)
	}
	if o.BenchTime < 0 {
		return usageError("--bench-time %v: want 0 (skip) or more", o.BenchTime)
	}
	if o.Report && o.Out == "" {
		return usageError("--report needs --out (the report covers the run directory of --out)")
	}
	if _, err := extract.ParseScoreKind(o.Scores); err != nil {
		return usageError("--scores: %v", err)
	}
	var err error
	if o.Scale != "" {
		if o.pre.Scale, err = extract.ParseNumber(o.Scale); err != nil {
			return usageError("--scale: %v", err)
		}
	}
	if o.pre.Mean, err = extract.ParseFloatList(o.Mean); err != nil {
		return usageError("--mean: %v", err)
	}
	if o.pre.Std, err = extract.ParseFloatList(o.Std); err != nil {
		return usageError("--std: %v", err)
	}
	if o.reshape, err = extract.ParseShape(o.Reshape); err != nil {
		return usageError("--reshape: %v", err)
	}
	o.pre.Shape = o.reshape
	if o.Name == "" {
		base := filepath.Base(filepath.Clean(o.Model))
		o.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	return nil
}

// evalResult is what eval prints; --json and --out write it as JSON, and
// distill report reads it back.
type evalResult struct {
	Name    string           `json:"name"`
	Model   evalModelInfo    `json:"model"`
	Data    evalDataInfo     `json:"data"`
	Teacher *evalTeacherInfo `json:"teacher,omitempty"`
	Rows    int64            `json:"rows"`
	Classes int              `json:"classes"`

	// Accuracy and Errors are against the labels; nil without labels.
	Accuracy *float64 `json:"accuracy,omitempty"`
	Errors   *int64   `json:"errors,omitempty"`
	// Agreement (top-1) and KL(teacher ‖ model) at T = 1, in nats, over
	// the rows that have teacher scores (KL: finite ones, on both sides);
	// nil without a teacher.
	Agreement *float64 `json:"agreement,omitempty"`
	KL        *float64 `json:"kl,omitempty"`
	// ECE = Σ_b (n_b/N)·|acc_b − conf_b| over ECEBins equal-width bins of
	// the top-1 confidence, against ECEReference: "labels" or "teacher".
	ECE          *float64 `json:"ece,omitempty"`
	ECEReference string   `json:"ece_reference,omitempty"`
	ECEBins      int      `json:"ece_bins,omitempty"`

	NonFinite        int64 `json:"nonfinite_rows"`      // rows with NaN/Inf scores: counted as errors
	LabelsOutOfRange int64 `json:"labels_out_of_range"` // labels outside [0, classes): counted as errors

	Confusion   [][]int64   `json:"confusion,omitempty"` // [label][prediction] counts
	PerClass    []evalClass `json:"per_class,omitempty"`
	Reliability []evalBin   `json:"reliability,omitempty"`
	// Latency at batch 1, then at --batch; per sample = per run / Batch.
	Latency []evalLatency `json:"latency,omitempty"`
	Threads int           `json:"threads"` // --threads (0 = all cores)
	Seconds float64       `json:"seconds"` // the evaluation pass, without the latency runs
	Tool    string        `json:"tool_version"`
}

type evalModelInfo struct {
	Path         string        `json:"path"`
	Kind         string        `json:"kind"` // "onnx" or "checkpoint"
	File         string        `json:"file"` // the file measured: the .onnx, or the checkpoint's model.safetensors
	FileBytes    int64         `json:"file_bytes"`
	SHA256       string        `json:"sha256"` // of File
	Params       int64         `json:"params"`
	Input        string        `json:"input,omitempty"`
	InputShape   []int64       `json:"input_shape,omitempty"` // per sample, as fed
	ScoreTensor  string        `json:"score_tensor,omitempty"`
	ScoreKind    string        `json:"score_kind"`
	Producer     string        `json:"producer,omitempty"`
	Architecture string        `json:"architecture,omitempty"`
	Training     *evalTraining `json:"training,omitempty"` // a checkpoint's, or an exported student's metadata
}

// evalTraining says how a student was trained: Method "kd" (alpha > 0) or
// "labels" (alpha 0, the hard-label baseline).
type evalTraining struct {
	Method      string  `json:"method"`
	Alpha       float64 `json:"alpha"`
	Temperature float64 `json:"temperature"`
	Epochs      int     `json:"epochs"`
}

type evalDataInfo struct {
	Path          string   `json:"path"`
	Kind          string   `json:"kind"` // "cache" or "dataset"
	Rows          int64    `json:"rows"`
	Column        string   `json:"column"`
	Digest        string   `json:"digest,omitempty"` // a cache's manifest digest
	Preprocessing []string `json:"preprocessing,omitempty"`
}

type evalTeacherInfo struct {
	Path      string `json:"path"` // the teacher cache
	File      string `json:"file,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	ScoreKind string `json:"score_kind,omitempty"`
	Rows      int64  `json:"rows"`    // rows in the teacher cache
	Matched   int64  `json:"matched"` // data rows it has scores for
}

type evalClass struct {
	Class    int      `json:"class"`
	Rows     int64    `json:"rows"`
	Correct  int64    `json:"correct"`
	Accuracy *float64 `json:"accuracy"` // nil when no row has this label
}

// evalBin is one row of the reliability table: confidences in (Lo, Hi].
type evalBin struct {
	Lo         float64  `json:"lo"`
	Hi         float64  `json:"hi"`
	Rows       int64    `json:"rows"`
	Confidence *float64 `json:"confidence"` // mean top-1 confidence; nil for an empty bin
	Accuracy   *float64 `json:"accuracy"`
}

type evalLatency struct {
	Batch int `json:"batch"`
	// RunBatch, when set, is the fixed batch size the model runs at: the
	// Batch rows are padded to it (or split into runs of it).
	RunBatch   int     `json:"run_batch,omitempty"`
	Runs       int     `json:"runs"`
	P50        float64 `json:"p50_ms_per_sample"`
	P99        float64 `json:"p99_ms_per_sample"`
	P50Batch   float64 `json:"p50_ms_per_batch"`
	P99Batch   float64 `json:"p99_ms_per_batch"`
	Throughput float64 `json:"samples_per_sec"` // Batch / p50 batch time
}

// runEval evaluates o.Model on o.Data.
func runEval(ctx context.Context, o evalOptions) (*evalResult, error) {
	model, err := openEvalModel(o.Model, &o)
	if err != nil {
		return nil, err
	}
	data, err := openEvalData(o.Data, &o.Dataset, o.pre)
	if err != nil {
		return nil, err
	}
	defer data.Close()
	if err := data.chooseColumn(o.Input, model.input); err != nil {
		return nil, err
	}
	if err := data.fit(model.shape, o.Model); err != nil {
		return nil, err
	}
	res := &evalResult{Name: o.Name, Model: model.info, Data: data.info, Threads: o.Threads, Tool: version}
	res.Model.InputShape = data.shape

	var table *teacherTable
	if o.TeacherCache != "" {
		if table, err = loadTeacherTable(o.TeacherCache); err != nil {
			return nil, err
		}
		ti := table.info
		res.Teacher = &ti
	} else if data.scores {
		m := data.cache.Manifest()
		res.Teacher = &evalTeacherInfo{Path: o.Data, File: m.Teacher.File, SHA256: m.Teacher.SHA256, ScoreKind: string(m.ScoreKind), Rows: data.info.Rows}
	}

	sc, err := model.open(data.shape)
	if err != nil {
		return nil, err
	}
	defer sc.Close()

	var acc *evalAcc
	var gathered teacherScores
	var sample []float32 // the first --batch rows' inputs, for latency
	width := int(data.width())
	pr := newProgress("eval", "rows")
	start := time.Now()
	var done int64
	for ch, err := range data.chunks(o.Batch) {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := len(ch.rows)
		if len(sample) < o.Batch*width {
			sample = append(sample, ch.x[:min(len(ch.x), o.Batch*width-len(sample))]...)
		}
		scores, err := sc.Score(ch.x, n)
		if err != nil {
			return nil, err
		}
		if acc == nil {
			if n == 0 || len(scores)%n != 0 {
				return nil, fmt.Errorf("model returned %d scores for %d rows", len(scores), n)
			}
			classes := len(scores) / n
			tclasses := 0
			switch {
			case table != nil:
				tclasses = table.classes
			case data.scores:
				tclasses = data.classes
			}
			if tclasses != 0 && tclasses != classes {
				return nil, fmt.Errorf("the model scores %d classes but the teacher (%s) has %d", classes, res.Teacher.Path, tclasses)
			}
			acc = newEvalAcc(classes, data.labels, res.Teacher != nil)
		}
		if len(scores) != n*acc.classes {
			return nil, fmt.Errorf("model returned %d scores for %d rows of %d classes", len(scores), n, acc.classes)
		}
		t := ch.teacher
		if table != nil {
			table.gather(ch.rows, &gathered)
			t = &gathered
		}
		acc.add(scores, ch.labels, ch.rows, t)
		done += int64(n)
		pr.Update(done, data.info.Rows)
	}
	pr.Done()
	if acc == nil {
		return nil, fmt.Errorf("%s has no rows", o.Data)
	}
	res.Seconds = time.Since(start).Seconds()
	acc.result(res)
	res.Model.ScoreKind = sc.ScoreKind()
	if res.Teacher != nil {
		res.Teacher.Matched = acc.teacherRows
		if acc.teacherRows == 0 {
			fmt.Fprintf(cmdErr, "eval: warning: the teacher cache %s has none of the data's row ids; no agreement or KL\n", res.Teacher.Path)
		}
	}
	if acc.labelOutOfRange > 0 {
		fmt.Fprintf(cmdErr, "eval: warning: %d labels outside the model's %d classes (first: %d at row %d), counted as errors\n",
			acc.labelOutOfRange, acc.classes, acc.firstBadLabel, acc.badLRow)
	}
	if o.BenchTime > 0 {
		for i, b := range []int{1, o.Batch} {
			if i == 1 && b == 1 {
				break
			}
			x := make([]float32, 0, b*width)
			for len(x) < b*width {
				x = append(x, sample[:min(len(sample), b*width-len(x))]...)
			}
			minRuns := 100
			if b > 1 {
				minRuns = 10
			}
			l, err := benchLatency(func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				_, err := sc.Score(x, b)
				return err
			}, b, o.BenchTime, minRuns)
			if err != nil {
				return nil, err
			}
			if rb := sc.RunBatch(b); rb != b {
				l.RunBatch = rb
			}
			res.Latency = append(res.Latency, l)
		}
	}
	return res, nil
}

// writeEvalOutputs prints res (text or --json), writes --out and the
// --report.
func writeEvalOutputs(w io.Writer, o evalOptions, res *evalResult) error {
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	// The file first: it is what a pipeline keeps, even if stdout is a
	// closed pipe.
	if o.Out != "" {
		if err := writeFileAtomic(o.Out, js); err != nil {
			return err
		}
	}
	if o.JSON {
		if _, err := w.Write(js); err != nil {
			return err
		}
	} else if err := writeEvalText(w, res); err != nil {
		return err
	}
	if o.Out == "" {
		return nil
	}
	if !o.JSON {
		fmt.Fprintf(w, "wrote %s\n", o.Out)
	}
	if o.Report {
		run := filepath.Dir(o.Out)
		if filepath.Base(run) == "eval" {
			run = filepath.Dir(run)
		}
		index, err := runReport(run, "")
		if err != nil {
			return err
		}
		if !o.JSON {
			fmt.Fprintf(w, "report: %s\n", index)
		}
	}
	return nil
}

// writeEvalText prints res for people.
func writeEvalText(out io.Writer, r *evalResult) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	pct := func(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }
	kind := r.Model.Kind
	if t := r.Model.Training; t != nil {
		kind += ", " + trainingLabel(t)
	}
	fmt.Fprintf(w, "model\t%s (%s) %s\n", r.Name, kind, r.Model.Path)
	if r.Model.Architecture != "" {
		fmt.Fprintf(w, "architecture\t%s\n", r.Model.Architecture)
	}
	fmt.Fprintf(w, "data\t%s (%s, column %q %s): %d rows, %d classes\n", r.Data.Path, r.Data.Kind, r.Data.Column, fmtShape(r.Model.InputShape), r.Rows, r.Classes)
	if r.Accuracy != nil {
		fmt.Fprintf(w, "accuracy\t%s\t%d errors\n", pct(*r.Accuracy), *r.Errors)
	} else {
		fmt.Fprintf(w, "accuracy\t-\tno labels\n")
	}
	if r.Teacher != nil && r.Agreement != nil {
		fmt.Fprintf(w, "agreement\t%s\ttop-1 with the teacher (%s, %d of %d rows matched)\n", pct(*r.Agreement), r.Teacher.Path, r.Teacher.Matched, r.Rows)
		fmt.Fprintf(w, "KL(teacher‖model)\t%.4g\tnats per row at T=1\n", *r.KL)
	} else {
		fmt.Fprintf(w, "agreement\t-\tno teacher scores (--teacher-cache)\n")
	}
	if r.ECE != nil {
		fmt.Fprintf(w, "ECE\t%.4f\t%d bins, against the %s\n", *r.ECE, r.ECEBins, r.ECEReference)
	}
	if r.NonFinite > 0 {
		fmt.Fprintf(w, "non-finite\t%d rows\tNaN/Inf scores, counted as errors\n", r.NonFinite)
	}
	fmt.Fprintf(w, "params\t%s\n", groupDigits(r.Model.Params))
	fmt.Fprintf(w, "file\t%s\t%s\n", humanBytes(r.Model.FileBytes), r.Model.File)
	for _, l := range r.Latency {
		fmt.Fprintf(w, "latency batch %d\tp50 %.4g ms/sample\tp99 %.4g ms/sample, %.0f samples/s, %d runs\n", l.Batch, l.P50, l.P99, l.Throughput, l.Runs)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(r.PerClass) > 0 {
		fmt.Fprintf(out, "\nper class:\n")
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "class\trows\tcorrect\taccuracy\t\n")
		for _, c := range r.PerClass {
			a := "-"
			if c.Accuracy != nil {
				a = pct(*c.Accuracy)
			}
			fmt.Fprintf(w, "%d\t%d\t%d\t%s\t\n", c.Class, c.Rows, c.Correct, a)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(r.Reliability) > 0 {
		fmt.Fprintf(out, "\nreliability (top-1 confidence bins, accuracy against the %s):\n", r.ECEReference)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "bin\trows\tconfidence\taccuracy\t\n")
		for _, b := range r.Reliability {
			if b.Rows == 0 {
				continue
			}
			fmt.Fprintf(w, "(%.3f, %.3f]\t%d\t%.4f\t%.4f\t\n", b.Lo, b.Hi, b.Rows, *b.Confidence, *b.Accuracy)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(r.Confusion) > 0 {
		if len(r.Confusion) > 20 {
			fmt.Fprintf(out, "\nconfusion matrix: %d classes, see --json\n", len(r.Confusion))
			return nil
		}
		fmt.Fprintf(out, "\nconfusion matrix (rows: label, columns: prediction):\n")
		w = tabwriter.NewWriter(out, 0, 4, 1, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "\t")
		for c := range r.Confusion {
			fmt.Fprintf(w, "%d\t", c)
		}
		fmt.Fprintln(w)
		for y, row := range r.Confusion {
			fmt.Fprintf(w, "%d\t", y)
			for _, v := range row {
				fmt.Fprintf(w, "%d\t", v)
			}
			fmt.Fprintln(w)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// trainingLabel describes how a student was trained, e.g. "KD α=0.9 T=4"
// or "hard labels".
func trainingLabel(t *evalTraining) string {
	if t.Method == "labels" {
		return "hard labels"
	}
	return fmt.Sprintf("KD α=%g T=%g", t.Alpha, t.Temperature)
}

// groupDigits formats n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// writeFileAtomic writes data to path: a temporary file in the same
// directory, synced, then renamed over path. Missing directories are made.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/progress"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "extract",
		UsageLine: "--teacher T.onnx --data D --out CACHE [flags]",
		Short:     "run a teacher over a dataset once and cache its logits and hidden states",
		Long: `Run the teacher ONNX model through onnxruntime over every row of the dataset
and write its scores (raw logits; probabilities are stored as log-probabilities),
chosen hidden states and optionally the model inputs to a cache directory:
manifest.json plus part-NNNNN.parquet (or .arrow) files.

The dataset may be Parquet, Arrow IPC, .npy, CSV or MNIST idx(.gz); dataset
columns feed the model inputs of the same name (a single-input model takes a
single-column dataset whatever the names; --map INPUT=COLUMN otherwise).
'distill tensors T.onnx' lists the tensors --hidden accepts.

A teacher whose graph ends in Softmax or LogSoftmax is cached from the
tensor before it, so temperature can be applied to real logits. A fixed
batch dimension (1, 10, ...) is relaxed in memory when the graph allows it,
otherwise batches run at the fixed size and the last one is padded.

A language-model teacher (an integer input_ids input [N,T], scores
[N,T,V]) is cached per token: the dataset holds windows of T+1 token ids
(distill data text writes them; the first T are fed, the last T are the
next-token labels), attention_mask, position_ids and token_type_ids are
filled unless the dataset has them, and every row of the cache holds T
score vectors (--topk per position, float16 top-k scores stored as
log-probabilities), with hidden states and attention maps of their
per-window shape.

--out (like --teacher and --data) may be a directory, file://PATH,
s3://BUCKET/PREFIX or gs://BUCKET/PREFIX; credentials, region and endpoint
come from the SDKs' standard variables (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL, ...; see README, "Caches on object storage").

Crash safety: parts appear whole or not at all, each named for its run (an
"attempt"), whose journal _attempt-ID.json lists them; manifest.json is
written once, create-only, when the shard is complete, and readers trust
only the parts it names. After a crash or kill, run the same command with
--resume: it continues the furthest attempt. Ctrl-C finishes the part in
flight and prints the resume command. Two workers on one shard (a retried
pod, a duplicate): the first to commit wins, the other removes its own
parts and exits 0 if the committed shard has its settings; with --resume, a
shard already committed is left as it is.

Scale-out: --shard I/N processes a deterministic 1/N of the parts (whole
parts, so N shards may share one directory). Without --shard, the Kubernetes
Indexed Job (JOB_COMPLETION_INDEX with --shard-count or DISTILL_SHARD_COUNT)
and Slurm array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) variables are
read.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o extractOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				if err := o.validate(); err != nil {
					return err
				}
				return runExtract(ctx, o)
			}
		},
	})
}

// extractOptions are the flags of distill extract.
type extractOptions struct {
	extract.Options
	hidden, maps                             []string
	scale, mean, std, reshape, shard, scores string
	shardCount                               int
	lib                                      string
	dso                                      dataset.Options
}

// AddFlags registers the flags on fs.
func (o *extractOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Teacher, "teacher", "", "teacher ONNX model (a path or an s3://, gs:// or file:// URL) (required)")
	fs.StringVar(&o.Data, "data", "", "dataset file: .parquet, .arrow, .npy, .csv or MNIST *-idx3-ubyte[.gz] (a path or an s3://, gs:// or file:// URL) (required)")
	fs.StringVar(&o.Out, "out", "", "cache directory to write (required)")
	fs.IntVar(&o.Batch, "batch", 0, fmt.Sprintf("rows per teacher run, 1..%d; 0 = auto: %d, or for a language model of T tokens max(1, 2^20/T²) windows (16 at T = 256), as a run's attention takes memory in T² per window", maxBatch, extract.DefaultBatch))
	fs.IntVar(&o.TopK, "topk", 0, "cache only the K largest logits per row plus their logsumexp (0 = all)")
	fs.IntVar(&o.Samples, "samples", 0, "cache S draws per score vector from softmax(logits/--sample-temperature) instead: the distinct ids, counts and logits (0 = off; not with --topk)")
	fs.Float64Var(&o.SampleTemperature, "sample-temperature", 1, "proposal temperature of --samples, 0.05..100")
	fs.Uint64Var(&o.SampleSeed, "seed", 1, "seed of the --samples draws (each row and position draws from its own stream)")
	fs.StringVar(&o.Dtype, "dtype", "f32", "storage of scores and hidden states: f32 or f16")
	fs.StringSliceVar(&o.hidden, "hidden", nil, "intermediate tensors to cache, comma-separated (see distill tensors)")
	fs.BoolVar(&o.KeepInput, "keep-input", false, "also cache the model inputs (after preprocessing), so training needs no dataset")
	fs.StringVar(&o.Format, "format", "parquet", "part file format: parquet (zstd) or arrow (IPC)")
	fs.StringVar(&o.Compression, "compression", "", "compression: zstd, lz4 (arrow only) or none (default: zstd for parquet, none for arrow)")
	fs.IntVar(&o.Threads, "threads", 0, fmt.Sprintf("threads for the teacher, 0 (all cores) to %d", maxThreads()))
	fs.IntVar(&o.Streams, "streams", 0, fmt.Sprintf("teacher runs in flight at once on consecutive batches, sharing the threads; 0 = min(threads, %d) on the cpu provider, 1 on others (each holds a batch in memory; 1 runs one batch at a time on all threads)", extract.MaxAutoStreams))
	fs.StringVar(&o.Provider, "provider", "cpu", "execution provider: cpu, cuda, tensorrt or coreml")
	fs.StringVar(&o.shard, "shard", "", "process shard I of N (I/N, 0-based)")
	fs.IntVar(&o.shardCount, "shard-count", 0, "shard count N (up to 99999) when the index comes from JOB_COMPLETION_INDEX")
	fs.BoolVar(&o.Resume, "resume", false, "continue an interrupted extraction into the same --out (a shard already committed is left as it is)")
	fs.StringVar(&o.Output, "output", "", "the tensor holding the class scores (default: chosen automatically)")
	fs.StringVar(&o.scores, "scores", "auto", "what the scores are: auto, logits, probs or log_probs")
	fs.StringVar(&o.scale, "scale", "", "multiply input values by this positive factor first, e.g. 1/255")
	fs.StringVar(&o.mean, "mean", "", "subtract per-channel mean (after --scale), e.g. 0.1307 or 0.485,0.456,0.406")
	fs.StringVar(&o.std, "std", "", "divide by per-channel std (after --mean), e.g. 0.3081")
	fs.StringVar(&o.reshape, "reshape", "", "per-sample shape fed to the model, without the batch axis, e.g. 1,28,28")
	fs.StringSliceVar(&o.maps, "map", nil, "feed dataset column COLUMN to model input INPUT (INPUT=COLUMN, repeatable)")
	fs.BoolVar(&o.AllowNonFinite, "allow-nonfinite", false, "keep NaN/Inf teacher scores instead of stopping")
	fs.StringVar(&o.dso.Label, "label", "", `dataset label column (default "label" if present; "-" for none)`)
	fs.StringVar(&o.dso.Labels, "labels", "", "separate labels file for .npy or idx data, a path or URL (default for idx: the sibling labels file)")
	fs.StringSliceVar(&o.dso.Features, "features", nil, "scalar dataset columns combined, in order, into one input column")
	fs.StringVar(&o.dso.FeatureName, "feature-name", "", `name of that combined column (default "input")`)
	fs.IntVar(&o.PartRows, "part-rows", 0, fmt.Sprintf("rows per part file, 1..%d: the unit of resume, sharding and Ctrl-C; 0 = auto: %d, or for a language model windows of about 2^20 tokens (4096 at T = 256)", maxPartRows, extract.DefaultPartRows))
	fs.StringVar(&o.lib, "ort-lib", "", "onnxruntime shared library (default: $"+extract.EnvLibraryPath+", then the project cache from make setup)")
}

// maxShards bounds the shard count: shard directories are named with
// five digits (formats.ShardDirName).
const maxShards = 99999

// maxPartRows bounds --part-rows (a part is streamed to its file one
// record batch at a time, so memory does not grow with it).
const maxPartRows = 1 << 24

// validate checks every flag, naming it in the error, and fills
// o.Options from them.
func (o *extractOptions) validate() error {
	for _, f := range []struct{ name, v string }{{"--teacher", o.Teacher}, {"--data", o.Data}, {"--out", o.Out}} {
		if f.v == "" {
			return usageError("%s is required", f.name)
		}
	}
	var err error
	o.Hidden = o.hidden
	if o.Scores, err = extract.ParseScoreKind(o.scores); err != nil {
		return usageError("--scores: %v", err)
	}
	if o.Preprocess, err = parsePreprocess(o.scale, o.mean, o.std, o.reshape); err != nil {
		return err
	}
	if len(o.maps) > 0 {
		o.InputMap = map[string]string{}
		for _, m := range o.maps {
			in, col, ok := strings.Cut(m, "=")
			if !ok || in == "" || col == "" {
				return usageError("--map %q: want INPUT=COLUMN", m)
			}
			o.InputMap[in] = col
		}
	}
	if err := checkRange("--shard-count", o.shardCount, 0, maxShards); err != nil {
		return err
	}
	if o.ShardIndex, o.ShardCount, err = extract.ShardFromEnv(o.shard, o.shardCount, os.Getenv); err != nil {
		return usageError("%v", err)
	}
	if err := checkRange("--batch", o.Batch, 0, maxBatch); err != nil {
		return err
	}
	if err := checkRange("--part-rows", o.PartRows, 0, maxPartRows); err != nil {
		return err
	}
	if err := checkRange("--topk", o.TopK, 0, maxBatch); err != nil {
		return err
	}
	if err := checkRange("--samples", o.Samples, 0, 1<<16); err != nil {
		return err
	}
	if o.Samples > 0 && o.TopK > 0 {
		return usageError("--samples and --topk are two kinds of sparse targets: choose one")
	}
	if err := checkFloat("--sample-temperature", o.SampleTemperature, 0.05, 100); err != nil {
		return err
	}
	if o.Samples == 0 {
		o.SampleTemperature, o.SampleSeed = 0, 0 // recorded only with --samples
	}
	if err := checkThreads(o.Threads); err != nil {
		return err
	}
	if err := checkRange("--streams", o.Streams, 0, maxThreads()); err != nil {
		return err
	}
	if t := cmp.Or(o.Threads, runtime.NumCPU()); o.Streams > t {
		return usageError("--streams %d is more than the %d threads (--threads): each stream runs on at least one", o.Streams, t)
	}
	switch o.Dtype {
	case "f32", "f16":
	default:
		return usageError("--dtype %q: want f32 or f16", o.Dtype)
	}
	switch o.Format {
	case "parquet", "arrow":
	default:
		return usageError("--format %q: want parquet or arrow", o.Format)
	}
	switch {
	case o.Compression == "lz4" && o.Format == "parquet":
		return usageError("--compression lz4 is for --format arrow; Parquet parts are zstd or none")
	case o.Compression != "" && o.Compression != "zstd" && o.Compression != "lz4" && o.Compression != "none":
		return usageError("--compression %q: want zstd, lz4 (arrow only) or none", o.Compression)
	}
	switch o.Provider {
	case "cpu", "cuda", "tensorrt", "coreml":
	default:
		return usageError("--provider %q: want cpu, cuda, tensorrt or coreml", o.Provider)
	}
	if err := checkPaths(
		[]guard.Path{{Flag: "--teacher", Path: o.Teacher}, {Flag: "--data", Path: o.Data}, {Flag: "--labels", Path: o.dso.Labels}},
		[]guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.Cache}}); err != nil {
		return err
	}
	// --resume continues a cache: a directory holding other files is not
	// one, whatever they are.
	if entries, err := os.ReadDir(o.Out); err == nil && len(entries) > 0 && o.Resume && guard.KindOf(o.Out) != guard.Cache {
		return usageError("--resume: --out %s holds files but no cache (no %s); --resume continues an extraction, choose its --out or a new one", o.Out, formats.ManifestName)
	}
	return nil
}

// runExtract runs the teacher over the dataset into the cache.
func runExtract(ctx context.Context, o extractOptions) error {
	o.Dataset = &o.dso
	o.ToolVersion = version
	o.Log = func(format string, a ...any) { fmt.Fprintf(cmdErr, "extract: "+format+"\n", a...) }
	pr := progress.New(cmdErr, "extract", "rows")
	per := int64(1)
	o.OnPlan = func(pi extract.PlanInfo) {
		if pi.Positions > 0 { // a language model: count tokens
			pr.SetUnit("tokens")
			per = int64(pi.Positions)
		}
	}
	o.Progress = func(done, total int64) { pr.Update(done*per, total*per) }
	rt, err := extract.NewRuntime(o.lib)
	if err != nil {
		return err
	}
	defer rt.Close()
	res, err := rt.Run(ctx, o.Options)
	pr.Done()
	if errors.Is(err, extract.ErrInterrupted) {
		fmt.Fprintf(cmdErr, "extract: interrupted after %d rows; parts written so far are complete. Resume with:\n  %s\n",
			res.Rows+res.Skipped, resumeCommand())
		return fmt.Errorf("%w", context.Canceled)
	}
	if err != nil {
		if res != nil && (res.Parts > 0 || res.Skipped > 0) {
			// Parts were committed (a full disk, a teacher error later
			// on): the cache keeps them, and --resume continues.
			fmt.Fprintf(cmdErr, "extract: the complete parts in %s are kept; after fixing the cause, resume with:\n  %s\n", o.Out, resumeCommand())
		}
		return err
	}
	if res.AlreadyCommitted {
		fmt.Fprintf(cmdOut, "extract: %s already holds this shard, committed (%d rows); nothing to do\n", o.Out, res.Skipped)
		return nil
	}
	fmt.Fprintf(cmdOut, "extract: %d rows in %d new parts (%d rows already complete) → %s\n  scores: %s (%s)\n",
		res.Rows, res.Parts, res.Skipped, o.Out, res.Source.Tensor, res.Source.Why)
	return nil
}

// resumeCommand is the current command line with --resume added.
func resumeCommand() string {
	args := []string{"distill"}
	has := false
	for _, a := range os.Args[1:] {
		if a == "--resume" {
			has = true
		}
		if strings.ContainsAny(a, " '\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	if !has {
		args = append(args, "--resume")
	}
	return strings.Join(args, " ")
}

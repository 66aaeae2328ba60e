package extract

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/distill-ml/distill/formats/dataset"
)

// ErrInterrupted is returned by Run when its context was cancelled: the part
// in flight was finished and the manifest written, so the run can be
// resumed with --resume.
var ErrInterrupted = errors.New("extract: interrupted")

// ErrSettings is wrapped when --resume meets a cache made with other
// settings, another teacher or another dataset.
var ErrSettings = errors.New("extract: cache settings differ")

// Options configure Run. Zero values select the documented defaults.
type Options struct {
	Teacher string // teacher .onnx path (required)
	Data    string // dataset path (required)
	Out     string // cache directory (required)

	Batch    int // rows per teacher run; 0 = auto (AutoBatch)
	PartRows int // rows per part file (the unit of resume and of Ctrl-C); 0 = auto (AutoPartRows)
	TopK     int // 0 caches all logits; else the k largest + logsumexp
	// Samples > 0 caches S draws per score vector from softmax(t/τ)
	// instead (formats.Config.Samples: the distinct ids, their counts and
	// logits, and the logsumexp), τ = SampleTemperature (0 means 1), the
	// draws seeded by SampleSeed and the row and position.
	Samples           int
	SampleTemperature float64
	SampleSeed        uint64
	Dtype             string // "f32" (default) or "f16" storage of scores and hidden states
	Hidden            []string
	KeepInput         bool   // also cache the model inputs (after preprocessing); without, train reads them from the dataset
	Format            string // "parquet" (default) or "arrow"
	Compression       string // "" = the format's default ("zstd" for parquet, "none" for arrow)

	Threads int // threads for the teacher; 0 = all cores (runtime.NumCPU)
	// Streams is how many teacher runs are in flight at once, on
	// consecutive batches of one session (OpenVINO's "streams"); 0 = auto:
	// min(Threads, MaxAutoStreams) on the CPU provider, 1 on others. The
	// session gets Threads − Streams + 1 intra-op threads, shared by the
	// runs (each run's calling thread works too), so Threads threads are
	// busy. A small teacher gains most: stories260K at batch 8 runs 1.26×
	// faster on 2 intra-op threads than on 1, and 2× as two 1-thread runs
	// (BenchmarkExtractSeqVsBare). Each stream holds a batch of outputs.
	Streams  int
	Provider string // execution provider; "" = cpu

	ShardIndex, ShardCount int // this run handles shard ShardIndex of ShardCount; 0,0 = all
	Resume                 bool

	Output string    // the scores tensor; "" = chosen automatically
	Scores ScoreKind // what the scores are; "" = detect

	Preprocess Preprocess
	// InputMap maps model input names to dataset column names when they
	// differ; a single-input model takes the dataset's single column
	// whatever its name.
	InputMap map[string]string
	Dataset  *dataset.Options

	AllowNonFinite bool // keep NaN/Inf teacher outputs instead of failing

	// Progress, when set, is called after each part is written, and
	// periodically, with rows done (in this shard) and the shard's total.
	Progress func(done, total int64)
	// OnPlan, when set, is called once the teacher and dataset are
	// planned, before the first batch: Positions is T for a sequence
	// teacher (each row then holds T tokens), 0 otherwise.
	OnPlan func(PlanInfo)
	// Log, when set, receives one-line notes (choices made, resumed parts).
	Log func(format string, args ...any)
	// ToolVersion is recorded in the manifest.
	ToolVersion string
}

func (o *Options) withDefaults() (Options, error) {
	v := *o
	if v.Teacher == "" || v.Data == "" || v.Out == "" {
		return v, errors.New("extract: teacher, data and out are required")
	}
	// Batch and PartRows 0 are resolved by the plan, which knows T.
	if v.Batch < 0 || v.Batch > 1<<20 {
		return v, fmt.Errorf("extract: --batch %d out of range [1, 1048576] (0 = auto)", v.Batch)
	}
	if v.PartRows < 0 {
		return v, fmt.Errorf("extract: rows per part %d must be positive (0 = auto)", v.PartRows)
	}
	switch v.Dtype {
	case "", "f32", "float32":
		v.Dtype = "f32"
	case "f16", "float16":
		v.Dtype = "f16"
	default:
		return v, fmt.Errorf("extract: --dtype %q: want f32 or f16", v.Dtype)
	}
	switch v.Format {
	case "":
		v.Format = "parquet"
	case "parquet", "arrow":
	default:
		return v, fmt.Errorf("extract: --format %q: want parquet or arrow", v.Format)
	}
	if v.Samples < 0 || v.Samples > 1<<16 || v.Samples > 0 && v.TopK > 0 {
		return v, fmt.Errorf("extract: --samples %d: want 1..%d draws, and not with --topk", v.Samples, 1<<16)
	}
	if v.Samples > 0 && v.SampleTemperature == 0 {
		v.SampleTemperature = 1
	}
	if v.TopK < 0 {
		return v, fmt.Errorf("extract: --topk %d must be ≥ 1 (or 0 for all logits)", v.TopK)
	}
	if v.ShardCount == 0 {
		v.ShardIndex, v.ShardCount = 0, 1
	}
	if v.ShardIndex < 0 || v.ShardIndex >= v.ShardCount {
		return v, fmt.Errorf("extract: shard %d/%d: want 0 ≤ I < N", v.ShardIndex, v.ShardCount)
	}
	if v.Threads < 0 || v.Streams < 0 {
		return v, fmt.Errorf("extract: --threads %d, --streams %d: want ≥ 0 (0 = auto)", v.Threads, v.Streams)
	}
	if v.Threads == 0 {
		v.Threads = runtime.NumCPU()
	}
	if v.Streams == 0 {
		v.Streams = 1
		if p := strings.ToLower(v.Provider); p == "" || p == "cpu" {
			v.Streams = min(v.Threads, MaxAutoStreams)
		}
	}
	if v.Streams > v.Threads {
		return v, fmt.Errorf("extract: --streams %d is more than --threads %d: each stream runs on at least one thread", v.Streams, v.Threads)
	}
	if v.Log == nil {
		v.Log = func(string, ...any) {}
	}
	return v, nil
}

// Defaults of Options.Batch and Options.PartRows (AutoBatch, AutoPartRows).
const (
	DefaultBatch    = 256   // rows per teacher run of a classifier
	DefaultPartRows = 65536 // rows per part of a classifier cache
	// SeqRunCells bounds rows·T² of a sequence teacher's automatic batch:
	// 16 windows at T = 256, 4 at 512, 1 from 1024 on.
	SeqRunCells = 1 << 20
	// SeqPartTokens is about the tokens of a sequence teacher's automatic
	// part: 4096 windows at T = 256.
	SeqPartTokens = 1 << 20
)

// AutoBatch returns the rows per teacher run that Options.Batch 0
// selects for a teacher of T positions per row (T = 0: not a sequence
// teacher): DefaultBatch, or for a sequence teacher
// max(1, min(DefaultBatch, SeqRunCells/T²)) windows. A transformer's run
// computes its attention, [rows, heads, T, T] float32 tensors (scores,
// masked scores, softmax), several alive at once inside onnxruntime even
// when none is fetched (Model.WithOutputs drops the graph outputs extract
// does not cache): a run's memory grows with rows·T², not with the rows·T
// of its outputs, and each stream holds a run.
// Measured on stories260K (8 heads, T = 256, top-32 f16, 2 threads):
// peak RSS 2.6 GB for one stream at 256 windows a run and 6.6 GB for two
// (over 2.3M tokens; 7.4 GB over 0.39M), against 0.34 and 0.72 GB at 16.
func AutoBatch(T int) int {
	if T <= 0 {
		return DefaultBatch
	}
	return max(1, min(DefaultBatch, SeqRunCells/T/T))
}

// AutoPartRows returns the rows per part that Options.PartRows 0
// selects for a teacher of T positions per row (T = 0: not a sequence
// teacher): DefaultPartRows, or for a sequence teacher max(1,
// SeqPartTokens/T) windows, so that a part (what Ctrl-C finishes, what
// a crash loses, what --resume and shards count in) holds about a million
// tokens, tens of seconds of a small teacher, rather than 65536 windows.
func AutoPartRows(T int) int {
	if T <= 0 {
		return DefaultPartRows
	}
	return max(1, SeqPartTokens/T)
}

// MaxAutoStreams caps the streams chosen when Options.Streams is 0: each
// holds a batch of teacher activations and outputs in memory.
const MaxAutoStreams = 8

// intraOpThreads is the intra-op pool of a session running o.Streams
// runs at once: with the runs' own calling threads, o.Threads in all.
func (o Options) intraOpThreads() int { return o.Threads - o.Streams + 1 }

// PlanInfo is what a Run decided before its first batch.
type PlanInfo struct {
	Classes   int // scores per position (the vocabulary of a sequence teacher)
	Positions int // T for a sequence teacher, 0 otherwise
}

// Result summarises a Run.
type Result struct {
	Rows        int64 // rows written by this run
	Skipped     int64 // rows found complete in the cache (--resume)
	Parts       int   // part files written by this run
	Source      ScoreSource
	Relaxed     bool  // a fixed batch dimension was relaxed in memory
	FixedBatch  int64 // the model's fixed batch size (0 = dynamic)
	Interrupted bool
	// AlreadyCommitted: with --resume, the shard was committed before this
	// run, with the same settings; nothing was done.
	AlreadyCommitted bool
}

// SessionOptions configure a teacher session. The zero value runs on the CPU
// with onnxruntime's default thread count.
type SessionOptions struct {
	// Threads is the intra-op thread count; 0 = onnxruntime's default.
	Threads int
	// Provider is the execution provider: "" or "cpu", "cuda", "tensorrt",
	// "coreml". A provider the library lacks is an error, never a silent
	// fall-back to the CPU.
	Provider string
	// quiet silences onnxruntime's own error log (for trial runs that are
	// expected to fail).
	quiet bool
}

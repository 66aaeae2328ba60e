package eval

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/train"
)

// Result is what an evaluation measured. Its JSON form is what distill eval
// --json prints and --out writes, and what package report reads back: the
// field names and tags are a file format.
type Result struct {
	Name    string       `json:"name"`
	Model   ModelInfo    `json:"model"`
	Data    DataInfo     `json:"data"`
	Teacher *TeacherInfo `json:"teacher,omitempty"`
	Rows    int64        `json:"rows"`
	Classes int          `json:"classes"`

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

	// A language model's evaluation (RunLM): Rows are windows, Classes the
	// vocabulary, and Accuracy, Errors, Agreement, KL, ECE and NonFinite
	// count next-token positions; Tokens is the positions scored against
	// their next token, NLL their mean −log q(next token) in nats and
	// Perplexity exp(NLL). LM describes the model and its token latencies.
	Tokens     int64    `json:"tokens,omitempty"`
	NLL        *float64 `json:"nll,omitempty"`
	Perplexity *float64 `json:"perplexity,omitempty"`
	LM         *LMInfo  `json:"lm,omitempty"`

	NonFinite        int64 `json:"nonfinite_rows"`      // rows with NaN/Inf scores: counted as errors
	LabelsOutOfRange int64 `json:"labels_out_of_range"` // labels outside [0, classes): counted as errors

	Confusion   [][]int64 `json:"confusion,omitempty"` // [label][prediction] counts
	PerClass    []Class   `json:"per_class,omitempty"`
	Reliability []Bin     `json:"reliability,omitempty"`
	// Latency at batch 1, then at the large batch; per sample = per run / Batch.
	Latency []Latency `json:"latency,omitempty"`
	Threads int       `json:"threads"` // threads asked for (0 = all cores)
	Seconds float64   `json:"seconds"` // the evaluation pass, without the latency runs
	Tool    string    `json:"tool_version"`
}

// ModelInfo describes the evaluated model.
type ModelInfo struct {
	Path         string    `json:"path"`
	Kind         string    `json:"kind"` // "onnx" or "checkpoint"
	File         string    `json:"file"` // the file measured: the .onnx, or the checkpoint's model.safetensors
	FileBytes    int64     `json:"file_bytes"`
	SHA256       string    `json:"sha256"` // of File
	Params       int64     `json:"params"`
	Input        string    `json:"input,omitempty"`
	InputShape   []int64   `json:"input_shape,omitempty"` // per sample, as fed
	ScoreTensor  string    `json:"score_tensor,omitempty"`
	ScoreKind    string    `json:"score_kind"`
	Producer     string    `json:"producer,omitempty"`
	Architecture string    `json:"architecture,omitempty"`
	Training     *Training `json:"training,omitempty"` // a checkpoint's, or an exported student's metadata
}

// Training says how a student was trained: Method "kd" (alpha > 0) or
// "labels" (alpha 0, the hard-label baseline).
type Training struct {
	Method      string  `json:"method"`
	Alpha       float64 `json:"alpha"`
	Temperature float64 `json:"temperature"`
	Epochs      int     `json:"epochs"`
}

// TrainingOf describes how a student was trained; alpha 0 means on the
// labels only (the hard-label baseline), alpha > 0 distillation.
func TrainingOf(alpha, temperature float64, epochs int) *Training {
	t := &Training{Alpha: alpha, Temperature: temperature, Epochs: epochs, Method: "kd"}
	if alpha == 0 {
		t.Method = "labels"
	}
	return t
}

// Label describes t for people: "KD α=0.9 T=4" or "hard labels".
func (t *Training) Label() string {
	if t.Method == "labels" {
		return "hard labels"
	}
	return fmt.Sprintf("KD α=%g T=%g", t.Alpha, t.Temperature)
}

// DescribeStudent is a one-line architecture, e.g. "mlp 784-800-800-10
// relu" or "cnn tiny [1 28 28]: conv3x3:8,bn,...".
func DescribeStudent(c train.Config) string {
	if c.Type == "cnn" {
		name := ""
		for k, v := range train.CNNPresets {
			if v == c.Arch {
				name = " " + k
			}
		}
		return fmt.Sprintf("cnn%s %v: %s", name, c.InputShape, c.Arch)
	}
	w := []string{strconv.Itoa(c.Inputs)}
	for _, h := range c.Hidden {
		w = append(w, strconv.Itoa(h))
	}
	w = append(w, strconv.Itoa(c.Classes))
	typ, act := c.Type, string(c.Activation)
	if typ == "" {
		typ = "mlp"
	}
	if act == "" {
		act = "relu"
	}
	s := fmt.Sprintf("%s %s %s", typ, strings.Join(w, "-"), act)
	if c.LayerNorm {
		s += " layernorm"
	}
	if c.Dropout > 0 {
		s += fmt.Sprintf(" dropout %g", c.Dropout)
	}
	return s
}

// DescribeTransformer is a one-line architecture, e.g. "transformer dim
// 48, 4 layers, 4 heads (2 KV), ffn 128 swiglu, rmsnorm, rope, vocab 512".
func DescribeTransformer(c train.TransformerConfig) string {
	kv := ""
	if c.KVHeads > 0 && c.KVHeads != c.Heads {
		kv = fmt.Sprintf(" (%d KV)", c.KVHeads)
	}
	or := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	s := fmt.Sprintf("transformer dim %d, %d layers, %d heads%s, ffn %d %s, %s, %s, vocab %d",
		c.Dim, c.Layers, c.Heads, kv, c.FFN, or(c.MLP, train.MLPSwiGLU), or(c.Norm, train.NormRMS), or(c.Pos, train.PosRoPE), c.Vocab)
	if c.Untied {
		s += ", untied head"
	}
	return s
}

// DataInfo describes the evaluation data.
type DataInfo struct {
	Path          string   `json:"path"`
	Kind          string   `json:"kind"` // "cache", "dataset" or "tokens" (a token dataset)
	Rows          int64    `json:"rows"`
	Column        string   `json:"column"`
	Digest        string   `json:"digest,omitempty"` // a cache's manifest digest
	Preprocessing []string `json:"preprocessing,omitempty"`
	// Split is the token dataset's windows evaluated: "val", "train" or
	// "all"; TokensFrom the token dataset a per-token cache's ids were
	// read from (when it has no input.input_ids column).
	Split      string `json:"split,omitempty"`
	TokensFrom string `json:"tokens_from,omitempty"`
}

// TeacherInfo describes the teacher scores compared against.
type TeacherInfo struct {
	Path      string `json:"path"` // the teacher cache
	File      string `json:"file,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	ScoreKind string `json:"score_kind,omitempty"`
	// TopK and Samples are the cache's top-k and draws per position
	// (formats.Config), absent for dense scores.
	TopK    int   `json:"top_k,omitempty"`
	Samples int   `json:"samples,omitempty"`
	Rows    int64 `json:"rows"`    // rows in the teacher cache
	Matched int64 `json:"matched"` // data rows it has scores for
}

// Class is one class's accuracy against the labels.
type Class struct {
	Class    int      `json:"class"`
	Rows     int64    `json:"rows"`
	Correct  int64    `json:"correct"`
	Accuracy *float64 `json:"accuracy"` // nil when no row has this label
}

// Bin is one row of the reliability table: confidences in (Lo, Hi].
type Bin struct {
	Lo         float64  `json:"lo"`
	Hi         float64  `json:"hi"`
	Rows       int64    `json:"rows"`
	Confidence *float64 `json:"confidence"` // mean top-1 confidence; nil for an empty bin
	Accuracy   *float64 `json:"accuracy"`
}

// Latency is the time per run of one batch size.
type Latency struct {
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

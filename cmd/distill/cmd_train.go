package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/progress"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "train",
		UsageLine: "--cache CACHE --out student.ckpt --layers 800,800 [flags]",
		Short:     "train a student against a cache with output and feature distillation",
		Long: `Train a student model on the rows of a teacher-output cache (from distill
extract): the targets are the cached teacher scores and labels, the inputs the
cached model inputs (extract --keep-input) or, for a cache extracted without
them, the rows of the dataset named in its manifest, preprocessed exactly as
extract fed them to the teacher. That file must be the one extracted (same
sha256); --data (--val-data) gives its new path if it moved. The loss per row is

  L = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)
      + sum over --feature pairs of weight * feature loss

(alpha 0: labels only; alpha 1: no labels needed). With a top-k cache the KL
runs over the k cached classes plus one bucket for the rest, exact at T = 1
(see 'go doc github.com/distill-ml/distill/train.KD' for T != 1).

--cache directories of two or more teachers (by the manifests' teacher
sha256; those of one teacher are the shards of one cache) over the same dataset
(sha256) train on the ensemble's target, rows joined by id: --ensemble probs
(the default), the weighted mean of the teachers' probabilities at T, or
logits, the mean of their logits; --teacher-weights w1,w2,... weighs them in
--cache order (default equal). --calibrate-teachers first divides each
teacher's log-probabilities by its own temperature, fitted on the labels
(temperature scaling): teachers whose logits are in the thousands otherwise
give one-hot targets at any usual T. A top-k teacher's rest bucket is spread
evenly over its uncached classes. Inputs, labels and hidden states come from the first
teacher's cache; --val is one teacher's cache (see 'go doc
github.com/distill-ml/distill/train.Ensemble').

The student is an MLP (--student mlp): Linear, optional LayerNorm, the
activation and optional Dropout per hidden block of --layers, then a Linear to
the classes. It standardizes its raw input itself with per-feature mean and
std computed from the cache, so it takes exactly the teacher's input.

--student cnn --arch SPEC trains a convolutional student on image inputs (a
cache whose input has shape [C,H,W], e.g. MNIST's [1,28,28]). SPEC is the
comma-separated layer list of the PyTorch peer's --arch cnn:SPEC
(../shared/peers/torch_kd_train.py): convKxK:C[:sS][:pP] (padding K/2 unless
given), dwconvKxK[:sS][:pP] (depthwise), bn (BatchNorm: batch statistics while
training, running ones for --val, eval and export), relu, relu6, maxpool2,
avgpool2, gap (global average pool), flatten and fc:N, or a preset: lenet5
(61,706 parameters on MNIST), tiny (8,834) or dws (38,314, MobileNet-style
depthwise-separable blocks). A conv or fc directly followed by bn has no bias.
The input is standardized per channel first (--standardize). model.safetensors
names the tensors as that torch module's state_dict (0.weight, 1.running_mean,
1.num_batches_tracked, ...), so it loads with load_state_dict(strict=True)
once input_mean and input_std are dropped.

--feature TEACHER_HIDDEN=STUDENT_LAYER[:WEIGHT] (repeatable) adds a FitNets
term: a learned linear projection of student hidden block STUDENT_LAYER (1 or
h1 = the first hidden block, after its activation) onto the cached teacher
hidden state TEACHER_HIDDEN (extract --hidden), with --feature-loss mse or
cosine. For --student cnn, STUDENT_LAYER is the 0-based index of a layer of
the expanded --arch (the i of the checkpoint's i.weight) and the pair reads
that layer's output: in tiny (conv3x3:8,bn,relu,maxpool2,conv3x3:16,bn,relu,
maxpool2,...) 3 is the first maxpool2 ([8,14,14] on MNIST) and 7 the second
([16,7,7]). A student map [Cs,Hs,Ws] meets a cached teacher map [Ct,Ht,Wt]
(e.g. the MNIST teacher's pool2, [64,7,7]) after average pooling of the larger
one to the smaller's size (one must be an integer multiple of the other);
mse and cosine then compare the teacher map with a learned 1x1 convolution
Cs->Ct of the student's (FitNets' regressor), and --feature-loss at
(attention transfer, Zagoruyko & Komodakis) compares the two spatial maps
sum_c A_c^2, each normalized to unit L2 norm, without a projection and for
any channel counts: WEIGHT * ||a_s - a_t||^2 per image, averaged (the
paper's code uses beta/2 times the mean over images and H*W positions with
beta = 1000, which is WEIGHT = 500/(H*W), about 10 on 7x7 maps). A layer
after flatten, gap or fc pairs as an MLP block does. The projections are
kept in state.safetensors, not in the model. The epoch line then shows the
feature terms' share of the loss.

After every epoch it evaluates on --val (accuracy, top-1 agreement with the
teacher, KL(teacher || student) at T = 1, 15-bin expected calibration error),
prints a line, and replaces the checkpoint directory --out atomically:
model.safetensors (PyTorch names: fc1.weight [out,in], fc1.bias, ln1.weight,
..., input_mean, input_std), config.json (architecture, options, metrics, cache
digest, teacher sha256), metrics.jsonl and state.safetensors (optimizer state).
An --out at s3://BUCKET/PREFIX or gs://BUCKET/PREFIX gets each epoch's files
under a new PREFIX/save-EPOCH-ID/ and then PREFIX/checkpoint.json naming it,
written last: a crash mid-upload leaves the previous epoch's save the one
read (by --resume, export, eval). The save before the current one is kept,
older ones are removed. A remote --out has no lock: run one train per --out.

--student transformer trains a Llama-style decoder on a per-token cache (a
sequence teacher's; the windows' token ids are the cached input.input_ids of
extract --keep-input or, without them, read from the token dataset the
manifest names, sha256-checked, --data if it moved): --layers N blocks of
width --dim with --heads query heads and --kv-heads key/value heads
(grouped-query), RoPE, RMSNorm, a SwiGLU MLP of --ffn, a tied classifier
(--untied for its own). GPT-2's choices are options, each on its own: --norm
layernorm (gain and bias), --mlp gelu (up, GELU in its tanh form, down; no
biases), --pos learned (a learned position embedding instead of RoPE). The
loss per token is the one above over the vocabulary (dense, top-k or sampled
targets; --divergence kl, reverse-kl or jsd with --beta), with the next-token
labels. --init-from DIR (a Hugging Face Llama directory, or a --student
transformer checkpoint: config.json, model.safetensors) with --init-layers
0,2,4 starts from its embedding, final norm and those layers (DistilBERT's
initialization); the sizes, --norm, --mlp and --pos then default to its
config, and other --norm, --mlp or --pos values are refused. After every
epoch it reports the held-out NLL (nats/token), perplexity, top-1 agreement
and KL(teacher || student) on --val and replaces --out atomically: the
Hugging Face layout (model.safetensors, config.json: a LlamaForCausalLM with
Llama's options, else architectures DistillDecoderForCausalLM, which Hugging
Face does not load), state.safetensors (optimizer state) and training.json
(architecture, options, metrics, cache digest). --feature
hidden_states.J=L[:WEIGHT] pairs student block L with a cached teacher hidden
state (extract --hidden), through a learned projection when the widths differ
(TinyBERT's hidden-state loss); --layer-map uniform[:WEIGHT] adds one such pair for every block, TinyBERT's
uniform map: block m of M learns hidden_states.(m*N/M), N the teacher's layers
(from the cache's manifest). --attention attentions.J=B[:WEIGHT] (repeatable)
adds the distance between student block B's attention probabilities (0-based,
as attentions.J counts the teacher's blocks) and a cached teacher attention map
(extract --hidden attentions.J), per query position over the causal entries:
--attention-loss kl (MiniLM's KL(teacher || student), the default) or mse
(TinyBERT's squared error, on probabilities). When the teacher has more heads,
each student head learns the average of a group of consecutive teacher heads
(8 onto 4: heads 2h and 2h+1); one head count must divide the other. The epoch
line then shows the attention terms' share of the loss.
Windows are shuffled per epoch across --shuffle-window cache units, as rows
are for an MLP.

--resume continues a stopped run, MLP or transformer, from its last epoch (or
starts one if --out holds no checkpoint yet, so a preempted job can rerun the
same command); the options must be the same (--threads may change; the
differences are listed). A resumed run is bit-identical to an uninterrupted
one with the same threads, and the same seed and threads give the same bytes.
Ctrl-C stops at the next batch, keeping the last epoch's checkpoint.

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o trainOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				return runTrain(ctx, cmdOut, cmdErr, o)
			}
		},
	})
}

// trainOptions are the flags of distill train.
type trainOptions struct {
	Cache, Val             []string
	Out                    string
	Student, Layers        string
	Arch                   string
	Activation             string
	Dropout                float64
	LayerNorm              bool
	Standardize            string
	Temperature, Alpha     float64
	Features               []string
	FeatureLoss            string
	Epochs, Batch          int
	LR                     float64
	Optimizer              string
	Momentum, WeightDecay  float64
	AdamBeta2              float64
	Schedule               string
	Warmup                 int64
	Seed                   uint64
	Threads, ShuffleWindow int
	Input                  string
	Resume                 bool
	Data, ValData          string
	// --student transformer
	Dim, Heads, KVHeads, FFN int
	Untied                   bool
	Norm, MLP, Pos           string
	Divergence               string
	Beta                     float64
	InitFrom, InitLayers     string
	Attentions               []string
	AttentionLoss, LayerMap  string
	ensembleFlags            // --teacher-weights, --ensemble (ensemble.go)
}

// AddFlags registers the flags on fs.
func (o *trainOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Cache, "cache", nil, "training cache directory (several: the shards of one cache, or the caches of several teachers over the same dataset: an ensemble) (required)")
	fs.Float64SliceVar(&o.TeacherWeights, "teacher-weights", nil, "ensemble: one weight ≥ 0 per teacher, in --cache order, e.g. 0.5,0.3,0.2 (normalized to sum 1; default: equal)")
	fs.BoolVar(&o.Calibrate, "calibrate-teachers", false, "ensemble: divide each teacher's log-probabilities by its own temperature, fitted to the labels, before combining them")
	fs.StringVar(&o.Ensemble, "ensemble", "probs", "ensemble target: probs (the mean of the teachers' probabilities at --temperature) or logits (the mean of their logits)")
	fs.StringVar(&o.Out, "out", "", "checkpoint directory or location to write, e.g. student.ckpt or s3://bucket/runs/student.ckpt (required)")
	fs.StringVar(&o.Student, "student", "mlp", "student architecture: mlp, cnn (image inputs; --arch) or transformer (a per-token cache)")
	fs.StringVar(&o.Arch, "arch", "", "cnn: the layers, a preset (lenet5, tiny, dws) or a spec such as conv3x3:8,bn,relu,maxpool2,flatten,fc:10 (torch_kd_train.py's --arch cnn:SPEC grammar)")
	fs.StringVar(&o.Layers, "layers", "", "mlp: hidden layer widths, comma-separated, e.g. 800,800 (\"none\" for a linear student); transformer: the number of blocks")
	fs.IntVar(&o.Dim, "dim", 0, "transformer: model width (default: --init-from's)")
	fs.IntVar(&o.Heads, "heads", 0, "transformer: query heads, dividing --dim (into an even head size with --pos rope) (default: --init-from's)")
	fs.IntVar(&o.KVHeads, "kv-heads", 0, "transformer: key/value heads, dividing --heads (default: --heads, or --init-from's)")
	fs.IntVar(&o.FFN, "ffn", 0, "transformer: MLP hidden size (default: --init-from's)")
	fs.BoolVar(&o.Untied, "untied", false, "transformer: a classifier of its own instead of the embedding")
	fs.StringVar(&o.Norm, "norm", "", "transformer: rmsnorm (Llama) or layernorm (GPT-2's: gain and bias, eps 1e-5) (default: rmsnorm, or --init-from's)")
	fs.StringVar(&o.MLP, "mlp", "", "transformer: swiglu (Llama's gate, up, down) or gelu (GPT-2's up, GELU in its tanh form, down; no biases) (default: swiglu, or --init-from's)")
	fs.StringVar(&o.Pos, "pos", "", "transformer: rope (rotary, theta 10000) or learned (GPT-2's: a learned vector per window position added to the token embedding) (default: rope, or --init-from's)")
	fs.StringVar(&o.Divergence, "divergence", "kl", "transformer: the divergence of the KD term: kl (teacher to student), reverse-kl or jsd")
	fs.Float64Var(&o.Beta, "beta", 0.5, "transformer: JSD's beta, in (0, 1)")
	fs.StringVar(&o.InitFrom, "init-from", "", "transformer: a Hugging Face Llama directory (config.json, model.safetensors; a path or an s3:// / gs:// location) to start from")
	fs.StringVar(&o.InitLayers, "init-layers", "", "transformer: the --init-from layers to copy, one per student block, e.g. 0,2,4")
	fs.StringArrayVar(&o.Attentions, "attention", nil, "transformer: attention distillation pair TEACHER_ATTENTION=STUDENT_BLOCK[:WEIGHT], e.g. attentions.4=3 (blocks 0-based; repeatable)")
	fs.StringVar(&o.AttentionLoss, "attention-loss", "kl", "transformer: attention loss: kl (MiniLM) or mse (TinyBERT)")
	fs.StringVar(&o.LayerMap, "layer-map", "", "transformer: uniform[:WEIGHT] adds a --feature pair for every block, TinyBERT's uniform layer map")
	fs.StringVar(&o.Activation, "activation", "relu", "hidden activation: relu, gelu (exact erf form) or tanh")
	fs.Float64Var(&o.Dropout, "dropout", 0, "dropout probability after every hidden block")
	fs.BoolVar(&o.LayerNorm, "layernorm", false, "LayerNorm in every hidden block, before the activation")
	fs.StringVar(&o.Standardize, "standardize", "auto", "input standardization from the cache: auto (per channel for image inputs, per feature otherwise), feature, channel or none")
	fs.Float64Var(&o.Temperature, "temperature", 4, "distillation temperature T, 0.001..1000")
	fs.Float64Var(&o.Alpha, "alpha", 0.9, "weight of the KL term, 0..1; 1-alpha weights the cross-entropy with the labels")
	fs.StringArrayVar(&o.Features, "feature", nil, "feature distillation pair TEACHER_HIDDEN=STUDENT_LAYER[:WEIGHT] (repeatable)")
	fs.StringVar(&o.FeatureLoss, "feature-loss", "mse", "feature loss: mse or cosine (through a learned projection), or at (attention transfer; --student cnn)")
	fs.IntVar(&o.Epochs, "epochs", 10, fmt.Sprintf("passes over the cache, 1..%d", maxEpochs))
	fs.IntVar(&o.Batch, "batch", 128, fmt.Sprintf("rows per optimizer step, 1..%d", maxBatch))
	fs.Float64Var(&o.LR, "lr", 1e-3, "peak learning rate, in (0, 10]")
	fs.StringVar(&o.Optimizer, "optimizer", "adamw", "optimizer: adamw or sgd")
	fs.Float64Var(&o.Momentum, "momentum", 0.9, "SGD momentum, 0..0.999")
	fs.Float64Var(&o.WeightDecay, "weight-decay", 0, "weight decay, 0..10 (AdamW: decoupled; SGD: L2)")
	fs.Float64Var(&o.AdamBeta2, "adam-beta2", 0.999, "AdamW's beta2, the second-moment decay, 0.5..0.9999 (language-model recipes use 0.95)")
	fs.StringVar(&o.Schedule, "schedule", "constant", "learning-rate schedule after warmup: constant or cosine")
	fs.Int64Var(&o.Warmup, "warmup", 0, "linear warmup steps")
	fs.StringSliceVar(&o.Val, "val", nil, "held-out cache evaluated after every epoch")
	fs.StringVar(&o.Data, "data", "", "the dataset (a token dataset for a per-token cache) of a --cache extracted without --keep-input, if it moved (default: the path in its manifest)")
	fs.StringVar(&o.ValData, "val-data", "", "the dataset of a --val cache extracted without --keep-input, if it moved")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of initialization, shuffling and dropout")
	fs.IntVar(&o.Threads, "threads", 0, "threads for matrix products and elementwise work (0 = all cores; at most 4 per core)")
	fs.StringVar(&o.Input, "input", "", "cached input to train on, when the cache has several")
	fs.IntVar(&o.ShuffleWindow, "shuffle-window", 0, "cache units whose rows (transformer: windows) are shuffled together (0 = as many as fit in 256 MiB)")
	fs.BoolVar(&o.Resume, "resume", false, "continue the run checkpointed in --out (start one if there is none)")
}

// maxEpochs bounds --epochs.
const maxEpochs = 1 << 20

// parseLayers parses --layers: positive widths separated by commas, or
// "none" for no hidden layer.
func parseLayers(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return nil, nil
	}
	if s == "" {
		return nil, errors.New("--layers is required (e.g. 800,800, or none)")
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1<<20 {
			return nil, fmt.Errorf("--layers %q: %q is not a width in 1..%d", s, f, 1<<20)
		}
		out = append(out, n)
	}
	return out, nil
}

// config turns the flags into the student Config and training Options.
func (o *trainOptions) config() (train.Config, train.Options, error) {
	var cfg train.Config
	var to train.Options
	if len(o.Cache) == 0 {
		return cfg, to, usageError("--cache is required")
	}
	if o.Out == "" {
		return cfg, to, usageError("--out is required")
	}
	if o.Student != "mlp" && o.Student != "cnn" && o.Student != "transformer" {
		return cfg, to, usageError("--student %q: want mlp, cnn or transformer", o.Student)
	}
	if o.Student == "cnn" {
		switch {
		case strings.TrimSpace(strings.TrimPrefix(o.Arch, "cnn:")) == "":
			return cfg, to, usageError("--student cnn needs --arch: a preset (lenet5, tiny, dws) or a layer list such as conv3x3:8,bn,relu,maxpool2,flatten,fc:10")
		case o.Layers != "":
			return cfg, to, usageError("--layers is an mlp or transformer flag; a cnn student's layers are its --arch")
		case o.Activation != "relu" || o.Dropout != 0 || o.LayerNorm:
			return cfg, to, usageError("--activation, --dropout and --layernorm are mlp flags; a cnn student's activations are in its --arch")
		}
	} else if o.Arch != "" {
		return cfg, to, usageError("--arch is a --student cnn flag (--student %s)", o.Student)
	}
	for _, f := range []struct {
		name  string
		v, hi int
	}{{"--dim", o.Dim, 1 << 16}, {"--heads", o.Heads, 1 << 10}, {"--kv-heads", o.KVHeads, 1 << 10}, {"--ffn", o.FFN, 1 << 20}} {
		if err := checkRange(f.name, f.v, 0, f.hi); err != nil {
			return cfg, to, err
		}
		if f.v != 0 && o.Student != "transformer" {
			return cfg, to, usageError("%s is a --student transformer flag", f.name)
		}
	}
	if err := checkFloat("--beta", o.Beta, 0, 1); err != nil {
		return cfg, to, err
	}
	if o.Student != "transformer" && (o.Divergence != "kl" || o.InitFrom != "" || o.InitLayers != "" || o.Untied || o.Norm != "" || o.MLP != "" || o.Pos != "") {
		return cfg, to, usageError("--divergence, --init-from, --init-layers, --untied, --norm, --mlp and --pos are --student transformer flags")
	}
	if o.Student != "transformer" && (len(o.Attentions) > 0 || o.AttentionLoss != "kl" || o.LayerMap != "") {
		return cfg, to, usageError("--attention, --attention-loss and --layer-map are --student transformer flags")
	}
	var hidden []int
	if o.Student == "mlp" {
		var err error
		if hidden, err = parseLayers(o.Layers); err != nil {
			return cfg, to, usageError("%v", err)
		}
	}
	act, err := train.ParseActivation(o.Activation)
	if err != nil || act == train.Identity {
		return cfg, to, usageError("--activation %q: want relu, gelu or tanh", o.Activation)
	}
	if !(o.Dropout >= 0 && o.Dropout < 1) {
		return cfg, to, usageError("--dropout %v: want a probability in [0, 1)", o.Dropout)
	}
	for _, f := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"--temperature", o.Temperature, 1e-3, 1e3},
		{"--alpha", o.Alpha, 0, 1},
		{"--lr", o.LR, 0, 10},
		{"--momentum", o.Momentum, 0, 0.999},
		{"--weight-decay", o.WeightDecay, 0, 10},
		{"--adam-beta2", o.AdamBeta2, 0.5, 0.9999},
	} {
		if err := checkFloat(f.name, f.v, f.lo, f.hi); err != nil {
			return cfg, to, err
		}
	}
	if o.LR == 0 {
		return cfg, to, usageError("--lr 0: want a positive learning rate")
	}
	if err := checkRange("--epochs", o.Epochs, 1, maxEpochs); err != nil {
		return cfg, to, err
	}
	if err := checkRange("--batch", o.Batch, 1, maxBatch); err != nil {
		return cfg, to, err
	}
	if err := checkRange("--shuffle-window", o.ShuffleWindow, 0, maxBatch); err != nil {
		return cfg, to, err
	}
	if o.Warmup < 0 || o.Warmup > 1<<32 {
		return cfg, to, usageError("--warmup %d: want 0..%d steps", o.Warmup, int64(1)<<32)
	}
	if err := checkThreads(o.Threads); err != nil {
		return cfg, to, err
	}
	inputs := []guard.Path{{Flag: "--data", Path: o.Data}, {Flag: "--val-data", Path: o.ValData}, {Flag: "--init-from", Path: o.InitFrom}}
	for _, c := range o.Cache {
		inputs = append(inputs, guard.Path{Flag: "--cache", Path: c})
	}
	for _, c := range o.Val {
		inputs = append(inputs, guard.Path{Flag: "--val", Path: c})
	}
	if err := checkPaths(inputs, []guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.Checkpoint}}); err != nil {
		return cfg, to, err
	}
	fl, err := train.ParseFeatureLoss(o.FeatureLoss)
	if err != nil {
		return cfg, to, usageError("--feature-loss %q: want mse, cosine or at", o.FeatureLoss)
	}
	if fl == train.AT && o.Student != "cnn" {
		return cfg, to, usageError("--feature-loss at (attention transfer) compares convolutional maps: it needs --student cnn; use mse or cosine with --student %s", o.Student)
	}
	switch o.Optimizer {
	case train.AdamW, train.SGD:
	default:
		return cfg, to, usageError("--optimizer %q: want adamw or sgd", o.Optimizer)
	}
	switch o.Schedule {
	case train.ScheduleConstant, train.ScheduleCosine:
	default:
		return cfg, to, usageError("--schedule %q: want constant or cosine", o.Schedule)
	}
	if _, err := train.ParseStandardize(o.Standardize); err != nil {
		return cfg, to, usageError("--standardize %q: want auto, feature, channel or none", o.Standardize)
	}
	cfg = train.Config{Type: o.Student, Hidden: hidden, Activation: act, Dropout: o.Dropout, LayerNorm: o.LayerNorm}
	if o.Student == "cnn" {
		cfg = train.Config{Type: "cnn", Arch: o.Arch}
	}
	to = train.Options{Epochs: o.Epochs, BatchSize: o.Batch, LR: o.LR, Optimizer: o.Optimizer, WeightDecay: o.WeightDecay,
		AdamBeta2: adamBeta2(o.AdamBeta2),
		Schedule:  o.Schedule, Warmup: o.Warmup, Temperature: o.Temperature, Alpha: o.Alpha, FeatureLoss: fl,
		Seed: o.Seed, Threads: o.Threads, Input: o.Input, ShuffleWindow: o.ShuffleWindow, Out: o.Out, Resume: o.Resume,
		Standardize: o.Standardize}
	if o.Optimizer == train.SGD {
		to.Momentum = o.Momentum
		if to.AdamBeta2 != 0 {
			return cfg, to, usageError("--adam-beta2 is an adamw flag (--optimizer sgd)")
		}
	}
	for _, f := range o.Features {
		if o.Student == "transformer" {
			break // parsed by lmConfig, which knows the layer count
		}
		p, err := train.ParseFeature(f, len(hidden))
		if o.Student == "cnn" {
			p, err = train.ParseCNNFeature(f, o.Arch)
		}
		if err != nil {
			return cfg, to, usageError("--feature: %v", strings.TrimPrefix(err.Error(), "train: "))
		}
		to.Features = append(to.Features, p)
	}
	return cfg, to, nil
}

func runTrain(ctx context.Context, stdout, stderr io.Writer, o trainOptions) error {
	cfg, to, err := o.config()
	if err != nil {
		return err
	}
	if o.Student == "transformer" {
		return runTrainLM(ctx, stdout, stderr, o, to)
	}
	data, _, closeData, err := openTrainData(stderr, o, &to)
	if err != nil {
		return err
	}
	defer closeData()
	pr := progress.New(cmdErr, "train", "samples")
	to.OnStep = stepProgress(pr, data.NumRows(), to.Epochs)
	to.OnEpoch = func(e train.Epoch) error {
		pr.Println(epochLine(e, to.Epochs))
		return nil
	}
	resumeNote(stderr, o)
	res, err := train.Train(ctx, cfg, data, &to)
	pr.Done()
	if err != nil {
		return interrupted(stderr, o, err)
	}
	abs := store.Abs(o.Out)
	fmt.Fprintf(stdout, "train: %d epochs, %d steps → %s\n", res.Info.Epoch, res.Info.Step, abs)
	if n := len(res.Info.Metrics); n > 0 {
		if v := res.Info.Metrics[n-1].Val; v != nil {
			fmt.Fprintf(stdout, "  val: %s\n", valSummary(v))
		}
	}
	return nil
}

// openTrainData opens --cache, and --val into to.Val, as training
// sources (trainSource: inputs from the dataset a cache names when it
// holds none, --data and --val-data if it moved), and returns the
// training source, the --cache it reads (its manifest names the teacher's
// outputs) and a func that releases them.
func openTrainData(stderr io.Writer, o trainOptions, to *train.Options) (data train.Source, _ *formats.Cache, _ func(), err error) {
	var closers releasers
	defer closers.onError(&err)
	data, cache, closeData, err := openTrainCaches(stderr, o, to.Temperature)
	if err != nil {
		return nil, nil, nil, err
	}
	closers.add(closeData)
	if len(o.Val) == 0 {
		if o.ValData != "" {
			return nil, nil, nil, usageError("--val-data needs --val")
		}
		return data, cache, closers.release, nil
	}
	vc, err := formats.Open(o.Val...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--val: %w", err)
	}
	closers.add(func() { vc.Close() })
	if err := checkEnsembleVal(data, vc); err != nil {
		return nil, nil, nil, err
	}
	val, closeVal, err := trainSource(stderr, vc, o.ValData, "--val-data")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--val: %w", err)
	}
	closers.add(closeVal)
	to.Val = val
	return data, cache, closers.release, nil
}

// releasers are the release funcs of what a function opened, run in
// reverse order by release (the func it returns on success) or, through
// a deferred onError, when it fails.
type releasers []func()

func (r *releasers) add(f func()) { *r = append(*r, f) }

func (r *releasers) release() {
	for i := len(*r) - 1; i >= 0; i-- {
		(*r)[i]()
	}
}

// onError releases everything when *err is not nil; defer it.
func (r *releasers) onError(err *error) {
	if *err != nil {
		r.release()
	}
}

// stepProgress returns an OnStep that reports the progress of epochs
// passes over rows rows (samples or windows) to pr, counting the rate
// from the first step: loading the data and a resumed run's earlier
// epochs are not part of it.
func stepProgress(pr *progress.Reporter, rows int64, epochs int) func(train.Step) error {
	first, base := true, int64(0)
	return func(s train.Step) error {
		if first {
			first, base = false, int64(s.Epoch-1)*rows
			pr.Restart()
		}
		pr.Update(int64(s.Epoch-1)*rows+s.Rows-base, int64(epochs)*rows-base)
		return nil
	}
}

// resumeNote says when --resume finds no checkpoint to continue.
func resumeNote(stderr io.Writer, o trainOptions) {
	if o.Resume && !train.Exists(o.Out) {
		fmt.Fprintf(stderr, "train: %s holds no checkpoint yet; starting from epoch 1\n", o.Out)
	}
}

// interrupted returns err, after printing the command that resumes the
// run when err is a cancellation (Ctrl-C).
func interrupted(stderr io.Writer, o trainOptions, err error) error {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "train: interrupted; %s holds the last completed epoch. Resume with:\n  %s\n", o.Out, resumeCommand())
		return fmt.Errorf("%w", context.Canceled)
	}
	return err
}

// trainSource returns the cache c as a training source when it holds its
// inputs, else a train.DatasetSource reading them from the dataset its
// manifest names, or from data (flag) when given. The returned func
// releases what it opened.
func trainSource(stderr io.Writer, c *formats.Cache, data, flag string) (train.Source, func(), error) {
	if len(c.Config().Inputs) > 0 {
		if data != "" {
			fmt.Fprintf(stderr, "train: %s %s ignored: the cache holds its inputs (extracted with --keep-input)\n", flag, data)
		}
		return c, func() {}, nil
	}
	s, err := train.NewDatasetSource(c, data)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "train: reading the inputs from the dataset %s (the cache has no input.* columns)\n", s.Path())
	return s, func() { s.Close() }, nil
}

// epochLine formats one epoch's metrics for the progress output.
func epochLine(e train.Epoch, epochs int) string {
	s := fmt.Sprintf("epoch %d/%d: loss %.4f", e.Epoch, epochs, e.TrainLoss)
	if e.TrainFeature != 0 {
		s += fmt.Sprintf(" (feature %.4f)", e.TrainFeature)
	}
	if e.Val != nil {
		s += ", " + valSummary(e.Val)
	}
	return s + fmt.Sprintf(", %.0f samples/s (%.0f GFLOP/s)", e.SamplesPerSec, e.GFLOPS)
}

func valSummary(v *train.Metrics) string {
	acc := "n/a (no labels)"
	if v.Accuracy != nil {
		acc = fmt.Sprintf("%.2f%%", 100**v.Accuracy)
	}
	return fmt.Sprintf("val acc %s, agreement %.2f%%, KL %.4f, ECE %.4f", acc, 100*v.Agreement, v.KL, v.ECE)
}

// lmConfig returns the transformer student of the flags (Vocab and T
// left 0: from the cache) and its initialization hook.
func (o *trainOptions) lmConfig(to *train.Options) (train.TransformerConfig, func(*train.Transformer) error, error) {
	var c train.TransformerConfig
	if o.LayerNorm || o.Dropout != 0 {
		return c, nil, usageError("--layernorm and --dropout are mlp flags; a transformer student's norm is --norm, and it has no dropout")
	}
	layers, err := strconv.Atoi(strings.TrimSpace(o.Layers))
	if o.Layers != "" && (err != nil || layers < 1 || layers > 1<<10) {
		return c, nil, usageError("--layers %q: a transformer student takes the number of blocks, 1..%d", o.Layers, 1<<10)
	}
	c = train.TransformerConfig{Dim: o.Dim, Layers: layers, Heads: o.Heads, KVHeads: o.KVHeads, FFN: o.FFN, Untied: o.Untied, Norm: o.Norm, MLP: o.MLP, Pos: o.Pos}
	for _, f := range []struct{ flag, v, a, b string }{
		{"--norm", o.Norm, train.NormRMS, train.NormLayer}, {"--mlp", o.MLP, train.MLPSwiGLU, train.MLPGELU}, {"--pos", o.Pos, train.PosRoPE, train.PosLearned},
	} {
		if f.v != "" && f.v != f.a && f.v != f.b {
			return c, nil, usageError("%s %q: want %s or %s", f.flag, f.v, f.a, f.b)
		}
	}
	switch train.Divergence(o.Divergence) {
	case train.ForwardKL, train.ReverseKL:
	case train.JSD:
		if !(o.Beta > 0 && o.Beta < 1) {
			return c, nil, usageError("--beta %v: jsd wants 0 < beta < 1", o.Beta)
		}
	default:
		return c, nil, usageError("--divergence %q: want kl, reverse-kl or jsd", o.Divergence)
	}
	var init func(*train.Transformer) error
	if o.InitFrom != "" {
		// T is the cache's, checked by TrainLM; 1 here reads the sizes.
		dir, cleanup, err := store.FetchDir(context.Background(), o.InitFrom)
		if err != nil {
			return c, nil, fmt.Errorf("--init-from: %w", err)
		}
		tc, tensors, err := train.ReadHFLlama(dir, 1)
		cleanup() // the tensors are in memory
		if err != nil {
			return c, nil, fmt.Errorf("--init-from: %w", err)
		}
		var idx []int
		for _, f := range strings.Split(o.InitLayers, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 || n >= tc.Layers {
				return c, nil, usageError("--init-layers %q: want layers of --init-from, 0..%d, comma-separated", o.InitLayers, tc.Layers-1)
			}
			idx = append(idx, n)
		}
		if c.Layers == 0 {
			c.Layers = len(idx)
		}
		if c.Dim == 0 {
			c.Dim, c.Heads, c.KVHeads, c.FFN = tc.Dim, tc.Heads, tc.KVHeads, tc.FFN
		}
		for _, f := range []struct {
			flag string
			v    *string
			from string
		}{{"--norm", &c.Norm, tc.Norm}, {"--mlp", &c.MLP, tc.MLP}, {"--pos", &c.Pos, tc.Pos}} {
			if *f.v == "" {
				*f.v = f.from
			} else if *f.v != f.from {
				return c, nil, usageError("%s %s: --init-from %s has %s %s; a student initialized from it needs the same", f.flag, *f.v, o.InitFrom, f.flag, f.from)
			}
		}
		init = func(m *train.Transformer) error { return m.InitFromLayers(tc, tensors, idx) }
	} else if o.InitLayers != "" {
		return c, nil, usageError("--init-layers needs --init-from")
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.Layers == 0 || c.Dim == 0 || c.Heads == 0 || c.FFN == 0 {
		return c, nil, usageError("--student transformer needs --layers, --dim, --heads and --ffn (or --init-from)")
	}
	for _, f := range o.Features {
		p, err := train.ParseFeature(f, c.Layers)
		if err != nil {
			return c, nil, usageError("--feature: %v", strings.TrimPrefix(err.Error(), "train: "))
		}
		to.Features = append(to.Features, p)
	}
	if _, _, err := parseLayerMap(o.LayerMap); err != nil { // its pairs need the cache: runTrainLM
		return c, nil, err
	}
	if err := o.attentionOptions(to, c.Layers); err != nil {
		return c, nil, err
	}
	to.Divergence, to.Beta = train.Divergence(o.Divergence), o.Beta
	return c, init, nil
}

// runTrainLM trains a transformer student (--student transformer).
func runTrainLM(ctx context.Context, stdout, stderr io.Writer, o trainOptions, to train.Options) error {
	cfg, init, err := o.lmConfig(&to)
	if err != nil {
		return err
	}
	data, cache, closeData, err := openTrainData(stderr, o, &to)
	if err != nil {
		return err
	}
	defer closeData()
	if err := o.uniformFeatures(&to, cache.Manifest(), cache.Config().Hidden, cfg.Layers); err != nil {
		return err
	}
	pr := progress.New(cmdErr, "train", "windows")
	to.OnStep = stepProgress(pr, data.NumRows(), to.Epochs)
	hooks := &train.LMHooks{Init: init, OnEpoch: func(e train.LMEpoch) error {
		line := fmt.Sprintf("epoch %d/%d: loss %.4f", e.Epoch, to.Epochs, e.TrainLoss)
		if len(to.Attentions) > 0 {
			line += fmt.Sprintf(" (attention %.4f)", e.TrainAttention)
		}
		if to.Val != nil {
			line += fmt.Sprintf(", val NLL %.4f (perplexity %.2f), agreement %.2f%%, KL %.4f", e.ValNLL, math.Exp(e.ValNLL), 100*e.ValAgreement, e.ValKL)
		}
		pr.Println(line + fmt.Sprintf(", %.0f tokens/s", e.TokensPerSec))
		return nil
	}}
	resumeNote(stderr, o)
	res, err := train.TrainLM(ctx, cfg, data, &to, hooks)
	pr.Done()
	if err != nil {
		return interrupted(stderr, o, err)
	}
	abs := store.Abs(o.Out)
	fmt.Fprintf(stdout, "train: %d epochs, %d steps → %s\n", len(res.Epochs), res.Epochs[len(res.Epochs)-1].Step, abs)
	return nil
}

// attentionOptions parses --attention and --attention-loss into to, for
// a student of layers blocks.
func (o *trainOptions) attentionOptions(to *train.Options, layers int) error {
	al, err := train.ParseAttentionLoss(o.AttentionLoss)
	if err != nil || o.AttentionLoss == "" {
		return usageError("--attention-loss %q: want kl or mse", o.AttentionLoss)
	}
	if len(o.Attentions) == 0 && al != train.AttentionLossKL {
		return usageError("--attention-loss %s needs --attention pairs", al)
	}
	for _, a := range o.Attentions {
		p, err := train.ParseAttentionPair(a, layers)
		if err != nil {
			return usageError("--attention: %v", strings.TrimPrefix(err.Error(), "train: "))
		}
		to.Attentions = append(to.Attentions, p)
	}
	if len(to.Attentions) > 0 {
		to.AttentionLoss = al
	}
	return nil
}

// parseLayerMap parses --layer-map: "" (none) or uniform[:WEIGHT], and
// returns whether it is on and the pairs' weight.
func parseLayerMap(s string) (on bool, weight float64, err error) {
	if s == "" {
		return false, 0, nil
	}
	name, w, hasWeight := strings.Cut(s, ":")
	weight = 1
	if hasWeight {
		weight, err = strconv.ParseFloat(w, 64)
	}
	if name != "uniform" || err != nil || !(weight > 0) || weight > 1e30 {
		return false, 0, usageError("--layer-map %q: want uniform or uniform:WEIGHT with a positive weight", s)
	}
	return true, weight, nil
}

// uniformFeatures adds the hidden-state pairs of --layer-map uniform to
// to: student block m of layers learns the teacher's hidden_states.J,
// J = m·N/layers (train.UniformLayerMap), N the teacher's layers, the
// highest J of its hidden_states.J outputs in the cache's manifest m.
// Every such hidden state must be cached (hidden lists those that are).
func (o *trainOptions) uniformFeatures(to *train.Options, m formats.Manifest, hidden []formats.TensorSpec, layers int) error {
	on, weight, err := parseLayerMap(o.LayerMap)
	if !on || err != nil {
		return err
	}
	N := 0
	for _, out := range m.Teacher.Outputs {
		if j, err := strconv.Atoi(strings.TrimPrefix(out.Name, "hidden_states.")); err == nil && strings.HasPrefix(out.Name, "hidden_states.") {
			N = max(N, j)
		}
	}
	if N == 0 {
		return fmt.Errorf("--layer-map uniform: the cache's manifest lists no hidden_states.J outputs of the teacher %s to count its layers by; pair layers with --feature instead", m.Teacher.File)
	}
	cached := map[string]bool{}
	for _, h := range hidden {
		cached[h.Name] = true
	}
	var need, missing []string
	for i, j := range train.UniformLayerMap(layers, N) {
		name := fmt.Sprintf("hidden_states.%d", j)
		need = append(need, name)
		if !cached[name] {
			missing = append(missing, name)
		}
		for _, f := range to.Features {
			if f.Teacher == name && f.Layer == i+1 {
				return usageError("--feature %s=%d is one of --layer-map uniform's pairs already", name, i+1)
			}
		}
		to.Features = append(to.Features, train.FeaturePair{Teacher: name, Layer: i + 1, Weight: weight})
	}
	if len(missing) > 0 {
		return fmt.Errorf("--layer-map uniform pairs student blocks 1..%d with the teacher's %s (of its %d layers), and the cache lacks %s: extract with --hidden %s",
			layers, strings.Join(need, ", "), N, strings.Join(missing, ", "), strings.Join(need, ","))
	}
	return nil
}

// adamBeta2 returns train.Options.AdamBeta2 for --adam-beta2: 0 (the
// default, not recorded in checkpoints) for torch's 0.999.
func adamBeta2(b float64) float64 {
	if b == 0.999 {
		return 0
	}
	return b
}

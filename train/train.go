package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/store"
)

// FeaturePair is one feature-distillation term: the teacher hidden state
// Teacher (a cache hidden.* column, flattened) is regressed from student
// hidden block Layer (1-based, after its activation) through a learned
// linear projection "feature.J" (J the pair's index), with weight β.
type FeaturePair struct {
	Teacher string  `json:"teacher"`
	Layer   int     `json:"layer"`
	Weight  float64 `json:"weight"` // β; 0 means 1
}

// Options configure Train. The zero value trains 10 epochs with AdamW,
// batch 128, lr 1e-3, T = 1 and α = 0 (labels only); nil means the zero
// value. JSON holds the settings recorded in a checkpoint.
type Options struct {
	Epochs      int     `json:"epochs"`       // passes over the data; default 10
	BatchSize   int     `json:"batch_size"`   // rows per step; default 128
	LR          float64 `json:"lr"`           // peak learning rate; default 1e-3
	Optimizer   string  `json:"optimizer"`    // AdamW (default) or SGD
	Momentum    float64 `json:"momentum"`     // SGD momentum; default 0
	WeightDecay float64 `json:"weight_decay"` // AdamW decoupled decay, SGD L2; default 0
	// AdamBeta2 is AdamW's β₂ (the second-moment decay); 0 means
	// torch's default 0.999. Small-data language-model recipes (and the
	// PyTorch peer torch_seq_kd_train.py) use 0.95.
	AdamBeta2 float64 `json:"adam_beta2,omitempty"`
	Schedule  string  `json:"schedule"` // ScheduleConstant (default) or ScheduleCosine
	Warmup    int64   `json:"warmup"`   // linear warmup steps; default 0

	Temperature float64 `json:"temperature"` // T > 0; default 1
	// Alpha weights the KL term: L = α·T²·KL + (1−α)·CE. 0 (the zero
	// value) trains on labels only; 1 needs no labels.
	Alpha float64 `json:"alpha"`
	// Divergence and Beta choose the D of the KD term (KD.Divergence);
	// TrainLM only, for now.
	Divergence  Divergence    `json:"divergence,omitempty"`
	Beta        float64       `json:"beta,omitempty"`
	Features    []FeaturePair `json:"features,omitempty"`
	FeatureLoss FeatureLoss   `json:"feature_loss,omitempty"` // MSE (default) or Cosine
	// Attentions are TrainLM's attention-distillation pairs, with
	// AttentionLoss (KL, the default with pairs, or MSE).
	Attentions    []AttentionPair `json:"attentions,omitempty"`
	AttentionLoss AttentionLoss   `json:"attention_loss,omitempty"`

	Seed    uint64 `json:"seed"`    // initialization, shuffling and dropout; default 0
	Threads int    `json:"threads"` // see SetThreads; 0 means all cores
	Input   string `json:"input,omitempty"`
	// ShuffleWindow is the number of cache units whose rows are shuffled
	// together; 0 picks it from WindowBytes. It changes the row order, so
	// it is part of the recorded settings.
	ShuffleWindow int `json:"shuffle_window,omitempty"`
	// WindowBytes bounds the decoded cache units held at once (the window
	// and the one being prefetched); default 256 MiB. If the whole cache
	// fits, it is read once and kept.
	WindowBytes int64 `json:"window_bytes,omitempty"`

	// Standardize is how the input standardization is computed from the
	// training data when InputMean and InputStd are not given: auto (the
	// default), feature, channel or none (see StandardizeAuto).
	Standardize string `json:"standardize,omitempty"`
	// InputMean and InputStd, if set, are the input standardization;
	// otherwise it is computed from the training data (one pass).
	InputMean []float32 `json:"-"`
	InputStd  []float32 `json:"-"`

	Val    Source `json:"-"` // held-out data evaluated after every epoch; nil for none
	Out    string `json:"-"` // checkpoint directory written after every epoch; "" for none
	Resume bool   `json:"-"` // continue the run checkpointed in Out; start afresh if Out holds none

	// OnStep is called after every optimizer step, OnEpoch after every
	// epoch (and its checkpoint); an error stops training and is returned.
	OnStep  func(Step) error  `json:"-"`
	OnEpoch func(Epoch) error `json:"-"`
}

// Step reports one optimizer step to Options.OnStep.
type Step struct {
	Epoch int     // 1-based
	Step  int64   // global step count, 1-based
	Loss  float64 // mean loss of the batch
	LR    float64
	Rows  int64 // rows done in this epoch
	Total int64 // rows per epoch
}

// EpochMetrics are the per-epoch results recorded in the checkpoint.
type EpochMetrics struct {
	Epoch     int      `json:"epoch"`
	Step      int64    `json:"step"`
	TrainLoss float64  `json:"train_loss"` // mean over the epoch's rows
	LR        float64  `json:"lr"`         // learning rate of the epoch's last step
	Val       *Metrics `json:"val,omitempty"`
}

// Epoch reports a finished epoch to Options.OnEpoch. Timing is not
// recorded in the checkpoint, which stays reproducible.
type Epoch struct {
	EpochMetrics
	Seconds       float64 // training loop only (not evaluation or checkpoint)
	SamplesPerSec float64
	// GFLOPS is the matrix-product work done per second: SamplesPerSec
	// times the student's Student.TrainFlops (feature projections not
	// counted).
	GFLOPS float64
}

// Result is what Train returns.
type Result struct {
	Student *Student
	Info    CheckpointInfo // as written to the checkpoint (also without Out)
}

// resolve fills defaults and validates.
func (o Options) resolve() (Options, error) {
	if o.Epochs == 0 {
		o.Epochs = 10
	}
	if o.BatchSize == 0 {
		o.BatchSize = 128
	}
	if o.LR == 0 {
		o.LR = 1e-3
	}
	if o.Optimizer == "" {
		o.Optimizer = AdamW
	}
	if o.Schedule == "" {
		o.Schedule = ScheduleConstant
	}
	if o.Temperature == 0 {
		o.Temperature = 1
	}
	if o.FeatureLoss == "" {
		o.FeatureLoss = MSE
	}
	var err error
	if o.Standardize, err = ParseStandardize(o.Standardize); err != nil {
		return o, err
	}
	o.Features = slices.Clone(o.Features)
	for i := range o.Features {
		if o.Features[i].Weight == 0 {
			o.Features[i].Weight = 1
		}
	}
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("train: "+format, args...)
	}
	switch {
	case o.Epochs < 0:
		return bad("epochs %d < 0", o.Epochs)
	case o.BatchSize < 1 || o.BatchSize > 1<<20:
		return bad("batch size %d", o.BatchSize)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return bad("learning rate %v", o.LR)
	case !(o.Temperature > 0) || math.IsInf(o.Temperature, 0):
		return bad("temperature %v, want > 0", o.Temperature)
	case !(o.Alpha >= 0 && o.Alpha <= 1):
		return bad("alpha %v not in [0, 1]", o.Alpha)
	case !(o.WeightDecay >= 0) || !(o.Momentum >= 0 && o.Momentum < 1):
		return bad("weight decay %v, momentum %v", o.WeightDecay, o.Momentum)
	case !(o.AdamBeta2 >= 0 && o.AdamBeta2 < 1):
		return bad("AdamW beta2 %v, want 0 < β₂ < 1 (0: the default 0.999)", o.AdamBeta2)
	case o.Warmup < 0 || o.ShuffleWindow < 0 || o.WindowBytes < 0:
		return bad("warmup %d, shuffle window %d, window bytes %d", o.Warmup, o.ShuffleWindow, o.WindowBytes)
	}
	if o.Optimizer != AdamW && o.Optimizer != SGD {
		return bad("unknown optimizer %q, want adamw or sgd", o.Optimizer)
	}
	if err := checkSchedule(o.Schedule); err != nil {
		return o, err
	}
	if _, err := ParseFeatureLoss(string(o.FeatureLoss)); err != nil {
		return o, err
	}
	for _, f := range o.Features {
		if !(f.Weight > 0) || math.IsInf(f.Weight, 0) {
			return bad("feature %s weight %v, want > 0", f.Teacher, f.Weight)
		}
	}
	if err := resolveAttention(&o); err != nil {
		return o, err
	}
	return o, nil
}

// recorded returns the options as compared on resume (Threads may change).
func (o Options) recorded() map[string]string {
	o.Threads = 0
	data, _ := json.Marshal(o)
	var m map[string]json.RawMessage
	json.Unmarshal(data, &m)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// provenance describes src; caches (formats.Cache) give their digest, an
// Ensemble its teachers.
func provenance(src Source) Provenance {
	cfg := src.Config()
	p := Provenance{Rows: src.NumRows(), Classes: cfg.Classes, TopK: cfg.TopK}
	if c, ok := src.(interface {
		Digest() string
		Manifest() formats.Manifest
	}); ok {
		m := c.Manifest()
		p.Digest, p.TeacherSHA256, p.ScoreKind, p.Dataset = c.Digest(), m.Teacher.SHA256, string(m.ScoreKind), m.Dataset.Path
	}
	if c, ok := src.(interface{ Dir() string }); ok {
		p.Path = c.Dir()
	}
	if e, ok := src.(*Ensemble); ok {
		p.TeacherSHA256, p.Ensemble = e.TeacherSHA256(), e.Provenance()
	}
	return p
}

// checkShape checks that src can feed student s: its classes and the size
// of its input. what names the source in errors.
func checkShape(s *Student, src Source, input, what string) error {
	if what == "" {
		what = "cache"
	}
	cfg := src.Config()
	if err := perSample(cfg, what); err != nil {
		return err
	}
	spec, err := chooseInput(src, input)
	if err != nil {
		return err
	}
	if spec.Size() != s.Config.Inputs {
		return fmt.Errorf("train: shape mismatch: the student takes %d input values, %s input %q has %d (shape %v)", s.Config.Inputs, what, spec.Name, spec.Size(), spec.Shape)
	}
	if cfg.Classes != s.Config.Classes {
		return fmt.Errorf("train: shape mismatch: the student has %d classes, the %s's teacher %d", s.Config.Classes, what, cfg.Classes)
	}
	return nil
}

// trainer is the state of one Train call.
type trainer struct {
	o       Options
	s       *Student
	heads   []*Linear
	headPs  *Params
	opt     Optimizer
	kd      KD
	ld, vld *loader
	info    CheckpointInfo

	// per-step buffers, sized for BatchSize
	dlogits  []float32
	rowLoss  []float64
	pred     [][]float32 // per pair: projection output [B, D]
	dpred    [][]float32
	dtap     [][]float32 // per pair: gradient into the student block [B, W]
	tapGrads []Mat       // per hidden block, summed dtap
	tapBuf   [][]float32
}

// Train trains a student of architecture cfg on data with opts and returns
// it. cfg.Inputs, InputShape and Classes may be left 0 to take them from
// the data. Every epoch it evaluates on opts.Val and, if opts.Out is set,
// writes a checkpoint; with opts.Resume it continues from that checkpoint
// (which must have been made with the same options, architecture and
// data, Threads excepted; without one it starts afresh, so a preempted
// job can rerun one command line), bit-identically to an uninterrupted run with
// the same thread count. Errors name what is wrong with the data or the
// options; a NaN or infinite loss stops training with a *NonFiniteError.
// On cancellation of ctx it returns ctx.Err(); the last checkpoint stays.
// While it runs it holds the lock of opts.Out (see WriteCheckpoint): a
// second Train into the same Out, from this process or another, fails at
// once with an error wrapping ErrLocked.
func Train(ctx context.Context, cfg Config, data Source, opts *Options) (*Result, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if len(o.Attentions) > 0 {
		return nil, errors.New("train: attention pairs need a transformer student (TrainLM); an MLP has no attention")
	}
	SetThreads(o.Threads)
	dcfg := data.Config()
	if err := perSample(dcfg, "cache"); err != nil {
		return nil, err
	}
	if o.Val != nil {
		if err := perSample(o.Val.Config(), "validation cache"); err != nil {
			return nil, err
		}
	}
	spec, err := chooseInput(data, o.Input)
	if err != nil {
		return nil, err
	}
	if cfg.Inputs == 0 {
		cfg.Inputs = spec.Size()
	}
	if cfg.InputShape == nil && cfg.Inputs == spec.Size() {
		for _, d := range spec.Shape {
			cfg.InputShape = append(cfg.InputShape, int(d))
		}
	}
	if cfg.Classes == 0 {
		cfg.Classes = dcfg.Classes
	}
	if cfg, err = cfg.normalize(); err != nil {
		return nil, err
	}
	if o.Alpha < 1 && !dcfg.HasLabel {
		return nil, fmt.Errorf("train: alpha %v < 1 needs labels, and the cache has none; use alpha 1 (teacher only) or extract from a dataset with labels", o.Alpha)
	}
	if cfg.Type == "cnn" && len(o.Features) > 0 {
		return nil, errors.New("train: --feature pairs on a cnn student's maps are not supported yet")
	}
	var hidden []string
	for i, f := range o.Features {
		if _, err := hiddenSpec(dcfg, f.Teacher); err != nil {
			return nil, err
		}
		if f.Layer < 1 || f.Layer > len(cfg.Hidden) {
			return nil, fmt.Errorf("train: feature %d (%s): student layer %d, the student has hidden blocks 1..%d", i+1, f.Teacher, f.Layer, len(cfg.Hidden))
		}
		hidden = append(hidden, f.Teacher)
	}
	if data.NumRows() == 0 {
		return nil, fmt.Errorf("train: the training data has no rows")
	}

	t := &trainer{o: o, kd: KD{Temperature: o.Temperature, Alpha: o.Alpha}}
	t.info = CheckpointInfo{Input: spec.Name, Training: o, Cache: provenance(data)}
	if o.Val != nil {
		p := provenance(o.Val)
		t.info.Val = &p
	}
	var resumed *Checkpoint
	release, resume, err := claimOut(&o)
	if err != nil {
		return nil, err
	}
	defer release()
	if resume {
		if resumed, err = Load(o.Out); err != nil {
			return nil, fmt.Errorf("train: resume: %w", err)
		}
	}

	if t.s, err = NewStudent(cfg, o.Seed); err != nil {
		return nil, err
	}
	t.info.Student = t.s.Config
	if err := checkShape(t.s, data, spec.Name, "cache"); err != nil {
		return nil, err
	}
	if o.Val != nil {
		if err := checkShape(t.s, o.Val, spec.Name, "--val cache"); err != nil {
			return nil, err
		}
	}
	if err := t.buildHeads(dcfg); err != nil {
		return nil, err
	}
	if t.opt, err = newOptimizer(&o, t.s.Params, t.headPs); err != nil {
		return nil, err
	}
	if resumed != nil {
		if err := t.restore(resumed); err != nil {
			return nil, err
		}
	}
	if t.ld, err = newLoader(data, spec.Name, hidden, o.Alpha < 1, o.Alpha > 0, o.BatchSize, o.ShuffleWindow, o.WindowBytes); err != nil {
		return nil, err
	}
	if resumed == nil {
		mean, std := o.InputMean, o.InputStd
		if mean == nil || std == nil {
			if mean, std, err = t.ld.moments(ctx, o.Standardize); err != nil {
				return nil, err
			}
		}
		if err := t.s.Standardize.Set(mean, std); err != nil {
			return nil, err
		}
	}
	if o.Val != nil {
		if t.vld, err = newLoader(o.Val, spec.Name, nil, o.Val.Config().HasLabel, true, o.BatchSize, 0, o.WindowBytes); err != nil {
			return nil, fmt.Errorf("%w (--val cache)", err)
		}
	}
	t.alloc()
	for e := t.info.Epoch + 1; e <= o.Epochs; e++ {
		if err := t.epoch(ctx, e, data.NumRows()); err != nil {
			return nil, err
		}
	}
	return &Result{Student: t.s, Info: t.info}, nil
}

// claimOut takes the lock of the checkpoint directory o.Out, if set, for
// the whole run (release drops it; a second run into Out fails here), and
// reports whether to resume the checkpoint Out holds: with o.Resume and a
// checkpoint. Out holding a checkpoint without o.Resume is an error, so
// are o.Resume without Out and an Out that holds other files.
func claimOut(o *Options) (release func() error, resume bool, err error) {
	if o.Out == "" {
		if o.Resume {
			return nil, false, fmt.Errorf("train: resume needs the checkpoint directory (Options.Out)")
		}
		return func() error { return nil }, false, nil
	}
	if store.IsRemote(o.Out) {
		return claimRemote(o)
	}
	if release, err = lockCheckpoint(o.Out); err != nil {
		return nil, false, err
	}
	if Exists(o.Out) && !o.Resume {
		err = fmt.Errorf("train: %s already holds a checkpoint; continue it with resume (--resume) or choose another --out", o.Out)
	} else if !Exists(o.Out) {
		err = replaceable(o.Out) // fail now, not after the first epoch
	}
	if err != nil {
		release()
		return nil, false, err
	}
	return release, o.Resume && Exists(o.Out), nil
}

// buildHeads creates the feature projections, initialized from the
// stream of each pair.
func (t *trainer) buildHeads(dcfg formats.Config) error {
	var list []*Param
	for j, f := range t.o.Features {
		hs, _ := hiddenSpec(dcfg, f.Teacher)
		h := NewLinear(fmt.Sprintf("feature.%d", j), t.s.HiddenWidth(f.Layer), hs.Size(), Identity)
		t.heads = append(t.heads, h)
		list = append(list, h.Params()...)
	}
	t.headPs = NewParams(list...)
	for j, h := range t.heads {
		h.Init(rand.New(rand.NewPCG(t.o.Seed, headStream+uint64(j))))
	}
	return nil
}

// headStream is the first PCG stream of the feature projections.
const headStream = 0x68656164 << 8 // "head"

// restore loads a checkpoint into the trainer after checking that it was
// made by the same run.
func (t *trainer) restore(c *Checkpoint) error {
	diffs := resumeDiffs(c.Info.Student, t.s.Config, c.Info.Training, t.o, c.Info.Cache, t.info.Cache, c.Info.Val, t.info.Val)
	if c.Info.Input != t.info.Input {
		diffs = append(diffs, fmt.Sprintf("input: %q in the checkpoint, now %q", c.Info.Input, t.info.Input))
	}
	if err := resumeMismatch(diffs); err != nil {
		return err
	}
	if err := assign(t.s.Tensors(), byName(c.Student.Tensors()), ModelFile, true); err != nil {
		return err
	}
	if c.State == nil {
		return fmt.Errorf("train: resume: %w: no %s", ErrCheckpoint, StateFile)
	}
	want := append(t.opt.State(), t.headPs.List...)
	if err := assign(want, byName(c.State), StateFile, true); err != nil {
		return err
	}
	if c.Info.Epoch < 0 || c.Info.Epoch > t.o.Epochs || c.Info.Step < 0 || len(c.Info.Metrics) != c.Info.Epoch {
		return fmt.Errorf("train: resume: %w: epoch %d, step %d, %d epochs of metrics", ErrCheckpoint, c.Info.Epoch, c.Info.Step, len(c.Info.Metrics))
	}
	t.opt.SetSteps(c.Info.Step)
	t.info.Epoch, t.info.Step, t.info.Metrics = c.Info.Epoch, c.Info.Step, c.Info.Metrics
	return nil
}

// resumeDiffs lists how a run resuming a checkpoint differs from the run
// that wrote it: the student architecture (compared as JSON), each
// recorded option (Options.recorded: Threads may change) and the digests
// of the training and validation caches, "NAME: OLD in the checkpoint,
// now NEW" each.
func resumeDiffs(oldStudent, student any, old, cur Options, oldCache, cache Provenance, oldVal, val *Provenance) []string {
	var diffs []string
	if a, b := jsonString(oldStudent), jsonString(student); a != b {
		diffs = append(diffs, fmt.Sprintf("student: %s in the checkpoint, now %s", a, b))
	}
	was, now := old.recorded(), cur.recorded()
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	for k := range was {
		if _, ok := now[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if was[k] != now[k] {
			diffs = append(diffs, fmt.Sprintf("%s: %s in the checkpoint, now %s", k, orNone(was[k]), orNone(now[k])))
		}
	}
	if a, b := oldCache.Digest, cache.Digest; a != b {
		diffs = append(diffs, fmt.Sprintf("training cache digest: %s in the checkpoint, now %s", orNone(a), orNone(b)))
	}
	if a, b := digestOf(oldVal), digestOf(val); a != b {
		diffs = append(diffs, fmt.Sprintf("validation cache digest: %s in the checkpoint, now %s", orNone(a), orNone(b)))
	}
	return diffs
}

// resumeMismatch is the error of a resume whose options differ from the
// checkpoint's (resumeDiffs), or nil without differences.
func resumeMismatch(diffs []string) error {
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("train: resume: the options differ from the checkpoint's:\n  %s", strings.Join(diffs, "\n  "))
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func digestOf(p *Provenance) string {
	if p == nil {
		return ""
	}
	return p.Digest
}

// alloc sizes the per-step buffers.
func (t *trainer) alloc() {
	B, C := t.o.BatchSize, t.s.Config.Classes
	t.dlogits = make([]float32, B*C)
	t.rowLoss = make([]float64, B)
	for _, h := range t.heads {
		t.pred = append(t.pred, make([]float32, B*h.Out))
		t.dpred = append(t.dpred, make([]float32, B*h.Out))
		t.dtap = append(t.dtap, make([]float32, B*h.In))
	}
	t.tapGrads = make([]Mat, len(t.s.Config.Hidden))
	t.tapBuf = make([][]float32, len(t.s.Config.Hidden))
	for _, f := range t.o.Features {
		if t.tapBuf[f.Layer-1] == nil {
			t.tapBuf[f.Layer-1] = make([]float32, B*t.s.HiddenWidth(f.Layer))
		}
	}
}

// perSample refuses a per-token cache (a language-model teacher's): the
// students here score one vector per row.
func perSample(cfg formats.Config, what string) error {
	if cfg.Positions > 0 {
		return fmt.Errorf("train: the %s is per-token (%d positions per row, a language-model teacher's); the MLP student trains on per-sample caches; train a transformer student on it (TrainLM, distill train --student transformer)", what, cfg.Positions)
	}
	return nil
}

// errNonFinite is returned by step for a NaN or infinite loss.
var errNonFinite = errors.New("train: non-finite loss")

// NonFiniteError reports a NaN or infinite loss. Training stops before
// that step's update.
type NonFiniteError struct {
	Epoch int
	Step  int64   // global step, 1-based
	Loss  float64 // the batch loss
	Rows  []int64 // cache row ids whose loss is not finite
}

func (e *NonFiniteError) Error() string {
	rows := make([]string, 0, min(len(e.Rows), 20))
	for _, r := range e.Rows[:min(len(e.Rows), 20)] {
		rows = append(rows, fmt.Sprint(r))
	}
	more := ""
	if len(e.Rows) > 20 {
		more = fmt.Sprintf(" and %d more", len(e.Rows)-20)
	}
	return fmt.Sprintf("train: loss is %v at epoch %d, step %d; cache rows with a non-finite loss: %s%s (check their inputs and teacher scores, or lower the learning rate)",
		e.Loss, e.Epoch, e.Step, strings.Join(rows, ", "), more)
}

// epoch runs epoch e (1-based), evaluates and checkpoints.
func (t *trainer) epoch(ctx context.Context, e int, rows int64) error {
	o := &t.o
	shuffle := rand.New(rand.NewPCG(o.Seed, shuffleStream(e)))
	t.s.SetTraining(true, rand.New(rand.NewPCG(o.Seed, dropoutStream(e))))
	stepsPerEpoch := (rows + int64(o.BatchSize) - 1) / int64(o.BatchSize)
	total := stepsPerEpoch * int64(o.Epochs)
	var lossSum float64
	var done int64
	var lr float64
	start := time.Now()
	err := t.ld.run(ctx, shuffle, func(b *batch) error {
		lr = ScheduleLR(o.Schedule, o.LR, t.info.Step, total, o.Warmup)
		loss, err := t.step(b, lr)
		if err == errNonFinite {
			ne := &NonFiniteError{Epoch: e, Step: t.info.Step + 1, Loss: loss}
			for i, l := range t.rowLoss[:b.n] {
				if math.IsNaN(l) || math.IsInf(l, 0) {
					ne.Rows = append(ne.Rows, b.rows[i])
				}
			}
			return ne
		}
		if err != nil {
			return err
		}
		t.info.Step++
		lossSum += loss * float64(b.n)
		done += int64(b.n)
		if o.OnStep != nil {
			return o.OnStep(Step{Epoch: e, Step: t.info.Step, Loss: loss, LR: lr, Rows: done, Total: rows})
		}
		return nil
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	m := EpochMetrics{Epoch: e, Step: t.info.Step, TrainLoss: lossSum / float64(max(done, 1)), LR: lr}
	if t.vld != nil {
		t.s.SetTraining(false, nil)
		e := &evaluator{kd: KD{Temperature: 1, Alpha: 1}, labels: t.vld.labels}
		err := t.vld.run(ctx, nil, func(b *batch) error {
			return e.add(t.s.Forward(Mat{Rows: b.n, Cols: t.vld.inSize, Data: b.x}), b)
		})
		if err != nil {
			return fmt.Errorf("train: evaluating --val: %w", err)
		}
		vm := e.result()
		m.Val = &vm
	}
	t.info.Epoch = e
	t.info.Metrics = append(t.info.Metrics, m)
	if o.Out != "" {
		c := &Checkpoint{Info: t.info, Student: t.s,
			State:     append(t.opt.State(), t.headPs.List...),
			StateMeta: map[string]string{"epoch": fmt.Sprint(e), "step": fmt.Sprint(t.info.Step), "optimizer": o.Optimizer},
		}
		if err := WriteCheckpoint(o.Out, c); err != nil {
			return err
		}
	}
	if o.OnEpoch != nil {
		rate := float64(done) / max(secs, 1e-9)
		return o.OnEpoch(Epoch{EpochMetrics: m, Seconds: secs, SamplesPerSec: rate, GFLOPS: rate * t.s.TrainFlops() / 1e9})
	}
	return nil
}

// step runs forward, loss, backward and the optimizer on one batch and
// returns the batch loss.
func (t *trainer) step(b *batch, lr float64) (float64, error) {
	n, C := b.n, t.s.Config.Classes
	logits := t.s.Forward(Mat{Rows: n, Cols: t.s.Config.Inputs, Data: b.x})
	grad := Mat{Rows: n, Cols: C, Data: t.dlogits}
	loss, err := t.kd.Loss(grad, logits, &b.t, t.rowLoss)
	if err != nil {
		return 0, err
	}
	var tap []Mat
	if len(t.heads) > 0 {
		tap = t.tapGrads
		for h, buf := range t.tapBuf {
			tap[h] = Mat{}
			if buf != nil {
				tap[h] = Mat{Rows: n, Cols: t.s.Config.Hidden[h], Data: buf}
				clear(buf[:n*tap[h].Cols])
			}
		}
		for j, h := range t.heads {
			f := t.o.Features[j]
			x := t.s.Hidden(f.Layer)
			pred := Mat{Rows: n, Cols: h.Out, Data: t.pred[j]}
			dpred := Mat{Rows: n, Cols: h.Out, Data: t.dpred[j]}
			h.Forward(pred, x)
			loss += t.o.FeatureLoss.Loss(dpred, pred, Mat{Rows: n, Cols: h.Out, Data: b.hidden[j]}, f.Weight, t.rowLoss)
			dx := Mat{Rows: n, Cols: h.In, Data: t.dtap[j]}
			h.Backward(dx, dpred)
			g := tap[f.Layer-1].Data
			for i, v := range dx.Data[:n*h.In] {
				g[i] += v
			}
		}
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, errNonFinite // before the update: the weights stay finite
	}
	t.s.Backward(grad, tap)
	t.opt.Step(lr)
	return loss, nil
}

package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/distill-ml/distill/formats"
)

// LMEpoch is one epoch of TrainLM.
type LMEpoch struct {
	Epoch     int     `json:"epoch"`
	Step      int64   `json:"step"`
	TrainLoss float64 `json:"train_loss"` // mean per-token loss over the epoch
	// TrainAttention is the attention pairs' share of TrainLoss (their
	// weighted terms, mean per token); 0 without pairs.
	TrainAttention float64 `json:"train_attention,omitempty"`
	// On the validation cache, when given: the student's mean next-token
	// NLL (nats/token), its top-1 agreement with the teacher's most
	// probable token and KL(teacher ‖ student) at T = 1, per token.
	ValNLL       float64 `json:"val_nll,omitempty"`
	ValAgreement float64 `json:"val_agreement,omitempty"`
	ValKL        float64 `json:"val_kl,omitempty"`
	// Not recorded: the training loop's wall time and rate.
	Seconds      float64 `json:"-"`
	TokensPerSec float64 `json:"-"`
}

// LMHooks customize TrainLM; nil means none.
type LMHooks struct {
	// Init prepares the freshly initialized model (e.g. InitFromLayers).
	Init func(*Transformer) error
	// OnEpoch is called after every epoch (and its checkpoint); an error
	// stops training and is returned.
	OnEpoch func(LMEpoch) error
}

// LMResult is what TrainLM returns.
type LMResult struct {
	Model  *Transformer
	Epochs []LMEpoch
}

// lmInput is the cached column of token ids a per-token cache keeps with
// extract --keep-input.
const lmInput = "input_ids"

// TrainLM trains a transformer student of cfg on a per-token cache (one
// row per window of T tokens, formats.Config.Positions): per token the
// loss of KD (dense, top-k or sampled targets; Options.Temperature,
// Alpha with the next-token labels), averaged over the batch's tokens,
// AdamW (or SGD) with Options' schedule. The windows' token ids are the
// cache's input.input_ids column (extract --keep-input), or, for a cache
// extracted without it, read from the token dataset its manifest names
// (pass a DatasetSource: NewDatasetSource). Windows are shuffled per
// epoch as for MLP students: the cache units in a random order, read
// Options.ShuffleWindow units at a time (default: as many as fit in half
// of Options.WindowBytes, 256 MiB, the other half prefetching the next;
// the whole cache, read once and kept, if it fits), the windows of those
// units shuffled together, so memory stays flat in the cache's size; all
// from Options.Seed, which also seeds the initialization
// (Transformer.Init, then hooks.Init if set, e.g. InitFromLayers).
// Options.OnStep reports every step (Rows and Total count windows).
// BatchSize counts windows (default 32). cfg.Vocab and cfg.T may be 0 to
// take them from the cache. With Options.Val it reports the held-out NLL
// and agreement each epoch.
//
// With Options.Out it writes a checkpoint directory there after every
// epoch, replaced atomically (see TrainingFile): the model in the Hugging
// Face layout (model.safetensors, config.json), the optimizer state
// (state.safetensors) and the run's record (training.json). While it runs
// it holds the lock of Out, as Train does; Out holding a checkpoint is an
// error unless Options.Resume is set, which continues that run from its
// last epoch — bit-identically to an uninterrupted run with the same
// thread count — after checking that it was made with the same
// architecture, options (Threads excepted) and caches (each difference
// listed); without a checkpoint in Out it starts afresh, and a finished
// run has nothing left to do (the result holds its model and epochs).
// hooks.Init is not called on resume: the weights come from the
// checkpoint. On cancellation of ctx it returns ctx.Err() (at the next
// step); the last checkpoint stays.
//
// Options.Features pairs a student layer's output (Transformer.Hidden:
// 0 the embeddings, l the l-th block's) with a cached teacher hidden
// state of the same tokens ([T, D] per window, e.g. hidden_states.5):
// FeatureLoss between them, through a learned projection when D is not
// the student's width (TinyBERT's hidden-state loss; UniformLayerMap
// gives its layer map). The projections are training-only: Out keeps
// them in state.safetensors, for resuming, not in the model.
//
// Options.Attentions pairs a student block's attention probabilities
// with a cached teacher attention map of the same windows ([heads, T, T]
// per window, e.g. attentions.3): Options.AttentionLoss between them
// (MiniLM's KL or TinyBERT's MSE; teacher heads averaged in groups onto
// the student's, see AttentionLoss), its gradient given to the block's
// Attention.DProbs.
func TrainLM(ctx context.Context, cfg TransformerConfig, data Source, opts *Options, hooks *LMHooks) (*LMResult, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	o, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if o.FeatureLoss == AT {
		return nil, fmt.Errorf("train: feature loss at (attention transfer) compares convolutional maps, and a transformer has none; use mse or cosine (or --attention pairs)")
	}
	SetThreads(o.Threads)
	dcfg := data.Config()
	if err := lmData(data, "cache", o.Alpha); err != nil {
		return nil, err
	}
	if cfg.T == 0 {
		cfg.T = dcfg.Positions
	}
	if cfg.Vocab == 0 {
		cfg.Vocab = dcfg.Classes
	}
	if cfg.T != dcfg.Positions || cfg.Vocab != dcfg.Classes {
		return nil, fmt.Errorf("train: the student takes %d tokens of a %d-token vocabulary, the cache holds windows of %d over %d", cfg.T, cfg.Vocab, dcfg.Positions, dcfg.Classes)
	}
	if o.Val != nil {
		if err := lmData(o.Val, "validation cache", 1); err != nil {
			return nil, err
		}
		if v := o.Val.Config(); v.Positions != cfg.T || v.Classes != cfg.Vocab || !v.HasLabel {
			return nil, fmt.Errorf("train: the validation cache holds windows of %d over %d (labels %v); want %d over %d with labels", v.Positions, v.Classes, v.HasLabel, cfg.T, cfg.Vocab)
		}
	}
	m, err := NewTransformer(cfg)
	if err != nil {
		return nil, err
	}
	ps := NewParams(m.Params()...)
	release, resume, err := claimOut(&o)
	if err != nil {
		return nil, err
	}
	defer release()
	var resumed *LMCheckpoint
	if resume {
		if resumed, err = LoadLMCheckpoint(o.Out); err != nil {
			return nil, fmt.Errorf("train: resume: %w", err)
		}
	}
	m.Init(rand.New(rand.NewPCG(o.Seed, 0x1a)))
	if hooks == nil {
		hooks = &LMHooks{}
	}
	if hooks.Init != nil && resumed == nil {
		if err := hooks.Init(m); err != nil {
			return nil, err
		}
	}
	r := &lmRun{o: o, m: m, kd: KD{Temperature: o.Temperature, Alpha: o.Alpha, Divergence: o.Divergence, Beta: o.Beta}, T: cfg.T, V: cfg.Vocab}
	heads, err := r.featureHeads(dcfg)
	if err != nil {
		return nil, err
	}
	if err := r.at.setup(dcfg, o, m, cfg.T); err != nil {
		return nil, err
	}
	sets := []*Params{ps}
	if heads != nil {
		sets = append(sets, heads)
	}
	if r.opt, err = newOptimizer(&o, sets...); err != nil {
		return nil, err
	}
	info := LMCheckpointInfo{Student: m.Cfg, Training: o, Cache: provenance(data)}
	if o.Val != nil {
		p := provenance(o.Val)
		info.Val = &p
	}
	state := r.opt.State()
	if heads != nil {
		state = append(state, heads.List...)
	}
	if resumed != nil {
		if err := r.restore(resumed, &info, state); err != nil {
			return nil, err
		}
	}
	res := &LMResult{Model: m, Epochs: slices.Clone(info.Epochs)}
	r.units = newUnitRows(data, dcfg, o.ShuffleWindow, o.WindowBytes)
	windows := data.NumRows()
	stepsPerEpoch := (windows + int64(o.BatchSize) - 1) / int64(o.BatchSize)
	for e := info.Epoch + 1; e <= o.Epochs; e++ {
		start := time.Now()
		ep, err := r.epoch(ctx, data, e, stepsPerEpoch*int64(o.Epochs))
		if err != nil {
			return nil, err
		}
		ep.Seconds = time.Since(start).Seconds()
		ep.TrainAttention = r.at.epochMean()
		ep.TokensPerSec = float64(windows*int64(cfg.T)) / max(ep.Seconds, 1e-9)
		if o.Val != nil {
			var vm Metrics
			if ep.ValNLL, vm, err = r.evaluate(ctx, o.Val); err != nil {
				return nil, fmt.Errorf("train: evaluating --val: %w", err)
			}
			ep.ValAgreement, ep.ValKL = vm.Agreement, vm.KL
		}
		res.Epochs = append(res.Epochs, ep)
		info.Epoch, info.Step, info.Epochs = e, r.step, append(info.Epochs, ep)
		if o.Out != "" {
			if err := writeLMCheckpoint(o.Out, m, state, info); err != nil {
				return nil, err
			}
		}
		if hooks.OnEpoch != nil {
			if err := hooks.OnEpoch(ep); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// lmData checks that a cache can train a transformer student.
func lmData(src Source, what string, alpha float64) error {
	c := src.Config()
	if c.Positions == 0 {
		return fmt.Errorf("train: the %s holds one score vector per row, not per token: a transformer student needs a per-token cache (a sequence teacher's)", what)
	}
	if !slices.ContainsFunc(c.Inputs, func(s formats.TensorSpec) bool {
		return s.Name == lmInput && len(s.Shape) == 1 && s.Shape[0] == int64(c.Positions)
	}) {
		if m, ok := src.(interface{ Manifest() formats.Manifest }); ok && len(m.Manifest().Dataset.Inputs) > 0 {
			return fmt.Errorf("train: the %s has no %s%s column; read the token ids from its dataset %s (NewDatasetSource; distill train does)",
				what, formats.InputPrefix, lmInput, m.Manifest().Dataset.Path)
		}
		return fmt.Errorf("train: the %s has no %s%s column of %d token ids per window, and records no dataset to read them from; extract it with --keep-input",
			what, formats.InputPrefix, lmInput, c.Positions)
	}
	if alpha < 1 && !c.HasLabel {
		return fmt.Errorf("train: alpha %v < 1 needs the next-token labels, and the %s has none", alpha, what)
	}
	return nil
}

// lmRun holds a TrainLM run's model, optimizer and step buffers.
type lmRun struct {
	o     Options
	m     *Transformer
	opt   Optimizer
	units *unitRows // the training cache's shuffle window
	kd    KD
	T, V  int
	step  int64
	ids   []int32
	tg    Targets
	logit Mat
	grad  Mat

	// Hidden-state pairs (Options.Features): per pair the teacher's width,
	// its projection (nil when the widths agree), and buffers.
	fw                []int
	proj              []*Linear
	hid               [][]float32 // the batch's teacher hidden states
	pred, dpred, dtap [][]float32
	dHidden           []Mat

	at lmAttention // attention pairs (Options.Attentions; lmattn.go)
}

// featureHeads checks the feature pairs against the cache and the model
// and creates a learned projection "feature.J" (J the pair's 1-based
// index; FitNets, Romero et al. 2015) from the student width to the
// teacher's for each pair whose widths differ, PyTorch's Linear init from
// the seed. It returns their parameters (nil without projections).
func (r *lmRun) featureHeads(dcfg formats.Config) (*Params, error) {
	var list []*Param
	rng := rand.New(rand.NewPCG(r.o.Seed, 0xfea))
	for j, f := range r.o.Features {
		spec, err := hiddenSpec(dcfg, f.Teacher)
		if err != nil {
			return nil, err
		}
		if len(spec.Shape) != 2 || spec.Shape[0] != int64(r.T) {
			return nil, fmt.Errorf("train: feature %d: teacher tensor %s has shape %v per window, not [%d, width]: pair a hidden state", j+1, f.Teacher, spec.Shape, r.T)
		}
		if f.Layer < 0 || f.Layer > r.m.Cfg.Layers {
			return nil, fmt.Errorf("train: feature %d (%s): student layer %d, the student has layers 0 (embeddings) to %d", j+1, f.Teacher, f.Layer, r.m.Cfg.Layers)
		}
		D := int(spec.Shape[1])
		r.fw = append(r.fw, D)
		var p *Linear
		if D != r.m.Cfg.Dim {
			p = NewLinear(fmt.Sprintf("feature.%d", j+1), r.m.Cfg.Dim, D, Identity)
			list = append(list, p.Params()...)
		}
		r.proj = append(r.proj, p)
	}
	r.hid = make([][]float32, len(r.fw))
	r.pred, r.dpred, r.dtap = make([][]float32, len(r.fw)), make([][]float32, len(r.fw)), make([][]float32, len(r.fw))
	r.dHidden = make([]Mat, r.m.Cfg.Layers+1)
	if len(list) == 0 {
		return nil, nil
	}
	ps := NewParams(list...)
	for _, p := range r.proj {
		if p != nil {
			p.Init(rng)
		}
	}
	return ps, nil
}

// reset empties the step buffers for windows of a cache of cfg (the
// training and the validation cache may hold different kinds of targets).
func (r *lmRun) reset(cfg formats.Config) {
	r.ids = r.ids[:0]
	t := &r.tg
	t.Labels, t.Logits, t.TopKIndex, t.TopKLogit, t.LogSumExp = t.Labels[:0], t.Logits[:0], t.TopKIndex[:0], t.TopKLogit[:0], t.LogSumExp[:0]
	t.TopK, t.SampleTemperature = cfg.TopK, cfg.SampleTemperature
	for j := range r.hid {
		r.hid[j] = r.hid[j][:0]
	}
	r.at.reset()
	if cfg.Samples == 0 {
		t.SampleCount = nil // nil: not a sampled cache
	} else if t.SampleCount == nil {
		t.SampleCount = []int32{}
	} else {
		t.SampleCount = t.SampleCount[:0]
	}
}

// add appends window i of b to the step buffers.
func (r *lmRun) add(b *formats.Batch, cfg formats.Config, i int) {
	T := r.T
	for _, v := range b.Inputs[lmInput][i*T : (i+1)*T] {
		r.ids = append(r.ids, int32(v))
	}
	if cfg.HasLabel {
		r.tg.Labels = append(r.tg.Labels, b.Labels[i*T:(i+1)*T]...)
	}
	for j, f := range r.o.Features { // the feature pairs' targets (training batches)
		if h, ok := b.Hidden[f.Teacher]; ok {
			w := T * r.fw[j]
			r.hid[j] = append(r.hid[j], h[i*w:(i+1)*w]...)
		}
	}
	r.at.add(b, i, T)
	if k := cfg.TopK; k == 0 {
		r.tg.Logits = append(r.tg.Logits, b.Logits[i*T*r.V:(i+1)*T*r.V]...)
	} else {
		r.tg.TopKIndex = append(r.tg.TopKIndex, b.TopKIndex[i*T*k:(i+1)*T*k]...)
		r.tg.TopKLogit = append(r.tg.TopKLogit, b.TopKLogit[i*T*k:(i+1)*T*k]...)
		r.tg.LogSumExp = append(r.tg.LogSumExp, b.LogSumExp[i*T:(i+1)*T]...)
		if cfg.Samples > 0 {
			r.tg.SampleCount = append(r.tg.SampleCount, b.SampleCount[i*T*k:(i+1)*T*k]...)
		}
	}
}

// forward runs the model on the buffered windows.
func (r *lmRun) forward() Mat {
	n := len(r.ids)
	r.logit = Mat{Rows: n, Cols: r.V, Data: grow(r.logit.Data, n*r.V)}
	r.m.Forward(r.logit, r.ids)
	return r.logit
}

// train runs one optimizer step on the buffered windows and returns the
// mean per-token loss.
func (r *lmRun) train(total int64) (float64, error) {
	logits := r.forward()
	r.grad = Mat{Rows: logits.Rows, Cols: r.V, Data: grow(r.grad.Data, logits.Rows*r.V)}
	loss, err := r.kd.Loss(r.grad, logits, &r.tg, nil)
	if err != nil {
		return 0, err
	}
	loss += r.features(logits.Rows)
	al, err := r.at.terms(r.m, logits.Rows/r.T, r.T)
	if err != nil {
		return 0, err
	}
	loss += al
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("train: step %d: the loss is %v: NaN or infinite teacher targets in the batch (a cache extracted with --allow-nonfinite), or a learning rate too high", r.step+1, loss)
	}
	r.m.Backward(r.grad, r.dHidden)
	r.opt.Step(ScheduleLR(r.o.Schedule, r.o.LR, r.step, total, r.o.Warmup))
	r.step++
	return loss, nil
}

// features adds each pair's FeatureLoss between the projected student
// hidden state and the teacher's, over the n tokens of the step, and sets
// r.dHidden to their gradients on the student's hidden states; it
// returns the sum of the pairs' losses.
func (r *lmRun) features(n int) float64 {
	for l := range r.dHidden {
		if r.dHidden[l].Data != nil {
			clear(r.dHidden[l].Data)
		}
	}
	var total float64
	D := r.m.Cfg.Dim
	for j, f := range r.o.Features {
		x := r.m.Hidden(f.Layer)
		w := r.fw[j]
		pred := x
		if p := r.proj[j]; p != nil {
			r.pred[j] = grow(r.pred[j], n*w)
			pred = Mat{Rows: n, Cols: w, Data: r.pred[j]}
			p.Forward(pred, x)
		}
		r.dpred[j] = grow(r.dpred[j], n*w)
		dpred := Mat{Rows: n, Cols: w, Data: r.dpred[j]}
		total += r.o.FeatureLoss.Loss(dpred, pred, Mat{Rows: n, Cols: w, Data: r.hid[j]}, f.Weight, nil)
		dx := dpred
		if p := r.proj[j]; p != nil {
			r.dtap[j] = grow(r.dtap[j], n*D)
			dx = Mat{Rows: n, Cols: D, Data: r.dtap[j]}
			p.Backward(dx, dpred)
		}
		if r.dHidden[f.Layer].Data == nil || len(r.dHidden[f.Layer].Data) < n*D {
			r.dHidden[f.Layer] = Mat{Rows: n, Cols: D, Data: make([]float32, n*D)}
		}
		r.dHidden[f.Layer].Rows = n
		g := r.dHidden[f.Layer].Data[:n*D]
		for i, v := range dx.Data[:n*D] {
			g[i] += v
		}
	}
	return total
}

// restore loads checkpoint c into the run after checking that it was made
// by the same run (info: this run's record, which takes c's epochs;
// state: the optimizer's and projections' tensors).
func (r *lmRun) restore(c *LMCheckpoint, info *LMCheckpointInfo, state []*Param) error {
	diffs := resumeDiffs(c.Info.Student, info.Student, c.Info.Training, info.Training, c.Info.Cache, info.Cache, c.Info.Val, info.Val)
	if err := resumeMismatch(diffs); err != nil {
		return err
	}
	if err := assign(r.m.Params(), byName(c.Tensors), ModelFile, true); err != nil {
		return err
	}
	if err := assign(state, byName(c.State), StateFile, true); err != nil {
		return err
	}
	if e := c.Info.Epoch; e < 0 || e > r.o.Epochs || c.Info.Step < 0 || len(c.Info.Epochs) != e {
		return fmt.Errorf("train: resume: %w: epoch %d, step %d, %d epochs of metrics", ErrCheckpoint, e, c.Info.Step, len(c.Info.Epochs))
	}
	r.opt.SetSteps(c.Info.Step)
	r.step = c.Info.Step
	info.Epoch, info.Step, info.Epochs = c.Info.Epoch, c.Info.Step, c.Info.Epochs
	return nil
}

// epoch runs one pass over data (r.units: the cache units in a shuffled
// order, the windows of ShuffleWindow units shuffled together),
// BatchSize windows per step.
func (r *lmRun) epoch(ctx context.Context, data Source, e int, total int64) (LMEpoch, error) {
	rng := rand.New(rand.NewPCG(r.o.Seed, shuffleStream(e)))
	cfg := data.Config()
	var lossSum float64
	var tokens int
	var windows int64
	r.reset(cfg)
	flush := func() error {
		if len(r.ids) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(r.ids)
		loss, err := r.train(total)
		if err != nil {
			return err
		}
		lossSum += loss * float64(n)
		tokens += n
		windows += int64(n / r.T)
		r.reset(cfg)
		if r.o.OnStep != nil {
			return r.o.OnStep(Step{Epoch: e, Step: r.step, Loss: loss, Rows: windows, Total: data.NumRows(),
				LR: ScheduleLR(r.o.Schedule, r.o.LR, r.step-1, total, r.o.Warmup)})
		}
		return nil
	}
	err := r.units.each(ctx, rng, nil, func(b *formats.Batch, i int) error {
		r.add(b, cfg, i)
		if len(r.ids) < r.o.BatchSize*r.T {
			return nil
		}
		return flush()
	})
	if err != nil {
		return LMEpoch{}, err
	}
	if err := flush(); err != nil {
		return LMEpoch{}, err
	}
	return LMEpoch{Epoch: e, Step: r.step, TrainLoss: lossSum / float64(max(tokens, 1))}, nil
}

// evaluate returns the model's mean next-token NLL on val's labels and
// the evaluator's Metrics over val's tokens (each position a row): top-1
// agreement with the teacher, KL(teacher ‖ student) at T = 1, accuracy
// and ECE against the labels.
func (r *lmRun) evaluate(ctx context.Context, val Source) (nll float64, m Metrics, err error) {
	cfg := val.Config()
	e := &evaluator{kd: KD{Temperature: 1, Alpha: 1}, labels: true}
	var b formats.Batch
	var rows []int64
	var n int
	for u := range val.NumBatches() {
		if err := ctx.Err(); err != nil {
			return 0, m, err
		}
		if err := val.ReadBatch(u, &b); err != nil {
			return 0, m, err
		}
		for i := 0; i < b.Len(); i += r.o.BatchSize {
			r.reset(cfg)
			rows = rows[:0]
			for w := i; w < min(i+r.o.BatchSize, b.Len()); w++ {
				r.add(&b, cfg, w)
				for range r.T {
					rows = append(rows, b.Rows[w]) // the window, in the evaluator's errors
				}
			}
			logits := r.forward()
			for q, y := range r.tg.Labels {
				row := logits.Data[q*r.V : (q+1)*r.V]
				nll += formats.LogSumExp(row) - float64(row[y])
				n++
			}
			if err := e.add(logits, &batch{n: logits.Rows, rows: rows, t: r.tg}); err != nil {
				return 0, m, err
			}
		}
	}
	return nll / float64(max(n, 1)), e.result(), nil
}

//go:build cgo

package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/store"
)

// outDir is the directory this run writes: Out itself, or for shard i of
// N > 1 the subdirectory shard-IIIII-of-NNNNN of Out, so shards never
// collide and Out as a whole reads as one cache.
func (p *plan) outDir() string { return outDir(p.o) }

func outDir(o Options) string {
	if o.ShardCount > 1 {
		return store.Join(o.Out, formats.ShardDirName(o.ShardIndex, o.ShardCount))
	}
	return o.Out
}

// manifest describes what this run writes.
func (p *plan) manifest(rows int64) (formats.Manifest, formats.Config, error) {
	o := p.o
	var m formats.Manifest
	m.Tool = "distill " + o.ToolVersion
	m.Teacher = formats.Teacher{
		File: store.Base(o.Teacher), SHA256: p.model.SHA256, Opset: int(p.model.Opset),
		Producer:        p.model.Proto.GetProducerName(),
		ProducerVersion: p.model.Proto.GetProducerVersion(),
		ScoreTensor:     p.src.Tensor,
		ScoreNote:       p.src.Why,
	}
	for _, in := range p.model.Inputs() {
		m.Teacher.Inputs = append(m.Teacher.Inputs, formats.TensorInfo{Name: in.Name, Shape: in.Shape, Dtype: dtypeName(in.Elem)})
	}
	for _, out := range p.model.Outputs() {
		dt := out.Kind
		if out.Kind == "tensor" {
			dt = dtypeName(out.Elem)
		}
		m.Teacher.Outputs = append(m.Teacher.Outputs, formats.TensorInfo{Name: out.Name, Shape: out.Shape, Dtype: dt})
	}
	switch p.kind {
	case Logits:
		m.ScoreKind = formats.ScoreLogits
	case Probs:
		m.ScoreKind = formats.ScoreLogProbs
	case LogProbs:
		m.ScoreKind = formats.ScoreLogSoftmax
	}
	var sums []string
	for _, f := range p.ds.Files() {
		sum, err := dataset.FileSHA256(f)
		if err != nil {
			return m, formats.Config{}, fmt.Errorf("dataset: %w", err)
		}
		sums = append(sums, sum)
	}
	m.Dataset = formats.Dataset{Path: store.Abs(o.Data), SHA256: strings.Join(sums, ","), Rows: rows, Preprocessing: o.Preprocess.Describe()}
	// The recipe that recomputes the inputs from the dataset (train reads
	// it when the cache holds no input.* columns).
	if d := o.Dataset; d != nil && (d.Format != "" || d.Label != "" || d.Labels != "" || len(d.Features) > 0 || d.FeatureName != "") {
		m.Dataset.Options = &formats.DatasetOptions{Format: d.Format, Label: d.Label, Features: d.Features, FeatureName: d.FeatureName}
		if d.Labels != "" {
			m.Dataset.Options.Labels = store.Abs(d.Labels)
		}
	}
	for i, in := range p.inputs {
		m.Dataset.Inputs = append(m.Dataset.Inputs, formats.DatasetInput{Name: in.Name, Column: p.columns[i], Shape: p.shapes[i]})
	}
	if !o.Preprocess.IsZero() {
		pre := o.Preprocess
		m.Dataset.Preprocess = &pre
	}
	m.Settings = formats.Settings{BatchSize: o.Batch, ShardIndex: o.ShardIndex, ShardCount: o.ShardCount}
	cfg := formats.Config{Classes: p.classes, TopK: o.TopK, HasLabel: p.ds.Label(), Hidden: p.hidden}
	if p.positions > 0 {
		// Per token: the label of each position is the next token.
		cfg.Positions, cfg.HasLabel = p.positions, true
		// float16 top-k scores as log-probabilities keep the cached mass
		// exact (formats.Config.TopKLogProbs).
		cfg.TopKLogProbs = (o.TopK > 0 || o.Samples > 0) && o.Dtype == "f16"
	}
	if o.Samples > 0 {
		cfg.Samples, cfg.SampleTemperature, cfg.SampleSeed = o.Samples, o.SampleTemperature, o.SampleSeed
	}
	if o.Dtype == "f16" {
		cfg.ScoreDtype = formats.Float16
	}
	if o.KeepInput {
		cfg.Inputs = p.inputSpecs()
	}
	return m, cfg, nil
}

// inputSpecs returns the model inputs as cache columns.
func (p *plan) inputSpecs() []formats.TensorSpec {
	var specs []formats.TensorSpec
	for i, in := range p.inputs {
		specs = append(specs, formats.TensorSpec{Name: in.Name, Shape: p.shapes[i]})
	}
	return specs
}

func dtypeName(e ElemType) string {
	switch e {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Float16:
		return "float16"
	case 0:
		return "unknown"
	}
	return strings.ToLower(e.String())
}

// openCache creates the output cache, or with --resume continues the
// furthest uncommitted attempt at it after checking it was made by the
// same teacher, dataset and settings. A local CacheWriter locks the
// directory for the run; while another process holds it, openCache fails
// at once saying so, with or without --resume. With --resume, a shard that
// is already committed with the same settings is done: openCache returns
// errDone.
func (p *plan) openCache(rows int64) (*formats.CacheWriter, error) {
	cw, err := p.createOrAppend(rows)
	if errors.Is(err, formats.ErrLocked) {
		return nil, lockedError(p.outDir())
	}
	return cw, err
}

// errDone is openCache's answer for a shard committed before this run.
var errDone = errors.New("extract: shard already committed")

// lockedError is the error of a run whose --out another run is writing.
func lockedError(dir string) error {
	return fmt.Errorf("--out %s: another distill process is writing this cache; wait for it to finish, or choose another --out (%w)", dir, formats.ErrLocked)
}

// busy reports whether another CacheWriter holds the local cache
// directory dir, by taking its lock for a moment (CacheWriter takes it
// for good). A remote directory has no lock: never busy.
func busy(dir string) bool {
	if store.IsRemote(dir) {
		return false
	}
	release, err := lock.Dir(dir)
	if err != nil {
		return errors.Is(err, lock.ErrLocked)
	}
	release()
	return false
}

func (p *plan) createOrAppend(rows int64) (*formats.CacheWriter, error) {
	o := p.o
	dir := p.outDir()
	// Before judging the directory by its contents (a journal with a few
	// parts, a temporary file): if a run is writing it, say that. (Run
	// checked before loading the teacher; one may have started since.)
	if busy(dir) {
		return nil, lockedError(dir)
	}
	m, cfg, err := p.manifest(rows)
	if err != nil {
		return nil, err
	}
	p.want, p.wantCfg = m, cfg
	wo := &formats.WriterOptions{Format: formats.Format(o.Format), Compression: formats.Compression(o.Compression)}
	old, err := formats.ReadManifest(dir)
	switch {
	case err == nil: // committed
		if !o.Resume {
			return nil, fmt.Errorf("--out %s already holds a cache (%d rows); choose another --out (with --resume, a complete shard is left as it is)", dir, old.Rows)
		}
		if diffs := compareManifests(old, m, cfg); len(diffs) > 0 {
			return nil, fmt.Errorf("%w: --out %s holds a committed cache of other settings: %s; start a new --out or repeat the original command",
				ErrSettings, dir, strings.Join(diffs, "; "))
		}
		p.committed = old
		return nil, errDone
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	attempts, err := formats.Attempts(dir)
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	if len(attempts) == 0 {
		if !o.Resume && o.ShardCount == 1 {
			if d, err := store.OpenDir(context.Background(), o.Out); err != nil {
				return nil, fmt.Errorf("--out %s: %w", o.Out, err)
			} else if entries, err := d.List(context.Background()); err != nil {
				return nil, fmt.Errorf("--out %s: %w", o.Out, err)
			} else if len(entries) > 0 {
				return nil, fmt.Errorf("--out %s exists and is not empty; choose a new directory", o.Out)
			}
		}
		// Batches are cut as if the inputs were kept (on resume the cache's
		// own size holds), so a cache without them has the units of one
		// with them, and training from the dataset (train.DatasetSource)
		// shuffles exactly as from the cached inputs.
		full := cfg
		full.Inputs = p.inputSpecs()
		wo.RowsPerBatch = formats.DefaultRowsPerBatchFor(full)
		return formats.CreateCache(dir, m, cfg, wo)
	}
	if !o.Resume {
		var rows int64
		for _, a := range attempts {
			rows = max(rows, a.Manifest.Rows)
		}
		return nil, fmt.Errorf("--out %s holds an extraction that has not committed (%d attempt(s), up to %d rows): it is running, or was interrupted; pass --resume to continue it, or choose another --out",
			dir, len(attempts), rows)
	}
	cw, err := formats.OpenCacheForAppend(dir, wo)
	if err != nil {
		return nil, err
	}
	if diffs := compareManifests(cw.Manifest(), m, cfg); len(diffs) > 0 {
		cw.Discard()
		return nil, fmt.Errorf("%w: cannot resume %s: %s; start a new --out or repeat the original command",
			ErrSettings, dir, strings.Join(diffs, "; "))
	}
	if d := cw.Dropped(); len(d) > 0 {
		o.Log("dropped incomplete or unlisted part files: %s", strings.Join(d, ", "))
	}
	return cw, nil
}

// compareManifests lists what differs between a cache on disk and what this
// run would write.
func compareManifests(old, m formats.Manifest, cfg formats.Config) []string {
	var d []string
	diff := func(what string, a, b any) {
		if fmt.Sprint(a) != fmt.Sprint(b) {
			d = append(d, fmt.Sprintf("%s is %v in the cache but %v now", what, a, b))
		}
	}
	diff("teacher sha256", old.Teacher.SHA256, m.Teacher.SHA256)
	diff("score tensor", old.Teacher.ScoreTensor, m.Teacher.ScoreTensor)
	diff("score kind", old.ScoreKind, m.ScoreKind)
	diff("dataset sha256", old.Dataset.SHA256, m.Dataset.SHA256)
	diff("dataset rows", old.Dataset.Rows, m.Dataset.Rows)
	diff("preprocessing", old.Dataset.Preprocessing, m.Dataset.Preprocessing)
	if old.Dataset.Inputs != nil { // recorded since format 1.1
		diff("dataset options", jsonText(old.Dataset.Options), jsonText(m.Dataset.Options))
		diff("dataset inputs (model input, column, shape)", jsonText(old.Dataset.Inputs), jsonText(m.Dataset.Inputs))
		diff("preprocess", jsonText(old.Dataset.Preprocess), jsonText(m.Dataset.Preprocess))
	}
	diff("shard", fmt.Sprintf("%d/%d", old.Settings.ShardIndex, old.Settings.ShardCount), fmt.Sprintf("%d/%d", m.Settings.ShardIndex, m.Settings.ShardCount))
	oc := old.Config()
	diff("classes", oc.Classes, cfg.Classes)
	if cfg.Samples == 0 {
		diff("--topk", oc.TopK, cfg.TopK)
	}
	diff("--samples", oc.Samples, cfg.Samples)
	diff("--sample-temperature", oc.SampleTemperature, cfg.SampleTemperature)
	diff("--seed", oc.SampleSeed, cfg.SampleSeed)
	diff("tokens per row", oc.Positions, cfg.Positions)
	diff("--dtype", orF32(oc.ScoreDtype), orF32(cfg.ScoreDtype))
	diff("labels", oc.HasLabel, cfg.HasLabel)
	diff("--hidden", oc.Hidden, cfg.Hidden)
	diff("--keep-input", oc.Inputs, cfg.Inputs)
	return d
}

// jsonText is v as JSON, for comparing and printing manifest fields.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func orF32(d formats.Dtype) formats.Dtype {
	if d == "" {
		return formats.Float32
	}
	return d
}

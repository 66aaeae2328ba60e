package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"

	"github.com/distill-ml/distill/formats"
)

// Source is random access to training rows in units (record batches),
// exactly the reading side of *formats.Cache, which satisfies it. A
// source whose inputs come from elsewhere — a dataset joined on
// formats.Batch.Rows, like DatasetSource — wraps a cache and fills
// Batch.Inputs (and reports them in Config().Inputs) in ReadBatch.
type Source interface {
	// Config describes what ReadBatch fills: classes, top-k, labels,
	// hidden states and inputs.
	Config() formats.Config
	NumRows() int64
	NumBatches() int
	// ReadBatch fills dst with unit u; it may be called from another
	// goroutine than the other methods, one call at a time.
	ReadBatch(u int, dst *formats.Batch) error
}

var _ Source = (*formats.Cache)(nil)

// ErrNoInput reports a cache without the input columns a student trains on
// and without the dataset recipe (format 1.1) to read them from the dataset.
var ErrNoInput = errors.New("train: the cache has no input columns (input.*) and records no dataset to read them from; " +
	"re-extract it with --keep-input, or with this version of distill extract so that training reads the inputs from the dataset")

// recipeError is returned for a Source without inputs whose manifest does
// record the dataset recipe: the caller should have wrapped it in a
// DatasetSource. It matches ErrNoInput.
type recipeError struct{ path string }

func (e recipeError) Error() string {
	return fmt.Sprintf("train: the cache has no input columns (input.*); read them from its dataset %s with NewDatasetSource", e.path)
}

func (e recipeError) Is(target error) bool { return target == ErrNoInput }

// chooseInput returns the spec of the student's input in src: the input
// named name, or the only one.
func chooseInput(src Source, name string) (formats.TensorSpec, error) {
	cfg := src.Config()
	if len(cfg.Inputs) == 0 {
		if c, ok := src.(interface{ Manifest() formats.Manifest }); ok {
			if d := c.Manifest().Dataset; len(d.Inputs) > 0 {
				return formats.TensorSpec{}, recipeError{d.Path}
			}
		}
		return formats.TensorSpec{}, ErrNoInput
	}
	var names []string
	for _, in := range cfg.Inputs {
		if in.Name == name || (name == "" && len(cfg.Inputs) == 1) {
			return in, nil
		}
		names = append(names, in.Name)
	}
	if name == "" {
		return formats.TensorSpec{}, fmt.Errorf("train: the cache has %d inputs (%s); choose one with Options.Input (--input)", len(names), strings.Join(names, ", "))
	}
	return formats.TensorSpec{}, fmt.Errorf("train: the cache has no input %q; it has %s", name, strings.Join(names, ", "))
}

// hiddenSpec returns the cached hidden state named name, or an error
// listing the cached ones.
func hiddenSpec(cfg formats.Config, name string) (formats.TensorSpec, error) {
	var names []string
	for _, h := range cfg.Hidden {
		if h.Name == name {
			return h, nil
		}
		names = append(names, h.Name)
	}
	have := "none (extract with --hidden NAME)"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return formats.TensorSpec{}, fmt.Errorf("train: teacher hidden state %q was not cached; cached hidden states: %s", name, have)
}

// ComputeMoments streams every row of src once and returns the mean and
// standard deviation of the input named input, per feature, as mode
// computes them (see Moments.ResultMode; "" is StandardizeAuto).
func ComputeMoments(ctx context.Context, src Source, input, mode string) (mean, std []float32, err error) {
	spec, err := chooseInput(src, input)
	if err != nil {
		return nil, nil, err
	}
	m := NewMoments(spec.Size())
	var b formats.Batch
	for u := range src.NumBatches() {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := src.ReadBatch(u, &b); err != nil {
			return nil, nil, err
		}
		m.Add(b.Inputs[spec.Name], b.Len())
	}
	mean, std = m.ResultMode(mode, shapeInts(spec.Shape))
	return mean, std, nil
}

func shapeInts(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// batch is one gathered training batch.
type batch struct {
	n      int
	rows   []int64   // cache row ids
	x      []float32 // [n, in] raw inputs
	t      Targets
	hidden [][]float32 // per feature pair, [n, D]
}

// loader streams batches from a Source. Per epoch it shuffles the order
// of the units, reads them window by window (a few units, prefetched in
// the background), shuffles the rows of each window and gathers them into
// batches; batches continue across windows, so only the last batch of an
// epoch may be short. If all units fit in the memory budget they are read
// once and kept (the window is the whole source).
type loader struct {
	src       Source
	cfg       formats.Config
	input     string
	inSize    int
	hidden    []string // cached hidden state per feature pair
	hidSize   []int
	labels    bool
	teacher   bool
	batchSize int
	window    int // units per window
	slots     int // decoded units held at once
	resident  []*formats.Batch
	out       batch
	pairs     []uint64 // slot<<32 | row of the current window
}

// defaultWindowBytes bounds the decoded units a loader holds.
const defaultWindowBytes = 256 << 20

func newLoader(src Source, input string, hidden []string, labels, teacher bool, batchSize int, windowUnits int, windowBytes int64) (*loader, error) {
	cfg := src.Config()
	spec, err := chooseInput(src, input)
	if err != nil {
		return nil, err
	}
	l := &loader{src: src, cfg: cfg, input: spec.Name, inSize: spec.Size(), labels: labels, teacher: teacher, batchSize: batchSize}
	for _, h := range hidden {
		hs, err := hiddenSpec(cfg, h)
		if err != nil {
			return nil, err
		}
		l.hidden = append(l.hidden, h)
		l.hidSize = append(l.hidSize, hs.Size())
	}
	if labels && !cfg.HasLabel {
		return nil, errors.New("train: the cache has no labels")
	}
	nu := src.NumBatches()
	if windowBytes <= 0 {
		windowBytes = defaultWindowBytes
	}
	unitBytes := max(rowBytes(cfg)*((src.NumRows()+int64(nu)-1)/int64(max(nu, 1))), 1)
	switch {
	case windowUnits > 0:
		l.window, l.slots = windowUnits, 2*windowUnits
	case int64(nu)*unitBytes <= windowBytes:
		l.window, l.slots = nu, nu
	default:
		l.window = int(max(1, windowBytes/2/unitBytes))
		l.slots = 2 * l.window
	}
	if l.window >= nu {
		l.window, l.slots = nu, nu
		l.resident = make([]*formats.Batch, 0, nu)
	}
	b := &l.out
	b.rows = make([]int64, batchSize)
	b.x = make([]float32, batchSize*l.inSize)
	if labels {
		b.t.Labels = make([]int64, batchSize)
	}
	if teacher {
		if k := cfg.TopK; k > 0 {
			b.t.TopK = k
			b.t.TopKIndex = make([]int32, batchSize*k)
			b.t.TopKLogit = make([]float32, batchSize*k)
			b.t.LogSumExp = make([]float32, batchSize)
		} else {
			b.t.Logits = make([]float32, batchSize*cfg.Classes)
		}
	}
	for _, d := range l.hidSize {
		b.hidden = append(b.hidden, make([]float32, batchSize*d))
	}
	return l, nil
}

// rowBytes is the decoded size of one cache row.
func rowBytes(cfg formats.Config) int64 {
	n := int64(8)
	if cfg.HasLabel {
		n += 8
	}
	if cfg.TopK > 0 {
		n += int64(8*cfg.TopK + 4)
	} else {
		n += int64(4 * cfg.Classes)
	}
	for _, t := range append(slices.Clone(cfg.Hidden), cfg.Inputs...) {
		n += int64(4 * t.Size())
	}
	return n
}

// load reads every unit into l.resident, keeping only the columns the
// loader uses, in exactly sized slices (decoding reuses one batch).
func (l *loader) load(ctx context.Context) error {
	var tmp formats.Batch
	for len(l.resident) < l.src.NumBatches() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.src.ReadBatch(len(l.resident), &tmp); err != nil {
			return err
		}
		if err := l.check(&tmp); err != nil {
			return err
		}
		b := &formats.Batch{Rows: slices.Clone(tmp.Rows), Inputs: map[string][]float32{l.input: slices.Clone(tmp.Inputs[l.input])}}
		if l.labels {
			b.Labels = slices.Clone(tmp.Labels)
		}
		if l.teacher {
			b.Logits, b.TopKIndex = slices.Clone(tmp.Logits), slices.Clone(tmp.TopKIndex)
			b.TopKLogit, b.LogSumExp = slices.Clone(tmp.TopKLogit), slices.Clone(tmp.LogSumExp)
		}
		if len(l.hidden) > 0 {
			b.Hidden = map[string][]float32{}
			for _, h := range l.hidden {
				if _, ok := b.Hidden[h]; !ok {
					b.Hidden[h] = slices.Clone(tmp.Hidden[h])
				}
			}
		}
		l.resident = append(l.resident, b)
		// Collect the decoding garbage now: it is as large as the unit,
		// and letting it pile up while the resident set grows would
		// double the peak memory.
		runtime.GC()
	}
	return nil
}

// moments returns the input standardization of mode over all rows: from
// the resident units (loading them), or in one streaming pass.
func (l *loader) moments(ctx context.Context, mode string) (mean, std []float32, err error) {
	if l.resident == nil {
		return ComputeMoments(ctx, l.src, l.input, mode)
	}
	if err := l.load(ctx); err != nil {
		return nil, nil, err
	}
	m := NewMoments(l.inSize)
	for _, b := range l.resident {
		m.Add(b.Inputs[l.input], b.Len())
	}
	spec, err := chooseInput(l.src, l.input)
	if err != nil {
		return nil, nil, err
	}
	mean, std = m.ResultMode(mode, shapeInts(spec.Shape))
	return mean, std, nil
}

type loaded struct {
	b   *formats.Batch
	err error
}

// run calls fn for every batch of one pass over the source: shuffled with
// rng, or in cache order if rng is nil. The *batch is reused.
func (l *loader) run(ctx context.Context, rng *rand.Rand, fn func(*batch) error) error {
	nu := l.src.NumBatches()
	order := make([]int, nu)
	for i := range order {
		order[i] = i
	}
	if rng != nil {
		rng.Shuffle(nu, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	l.out.n = 0
	if l.resident != nil {
		if err := l.load(ctx); err != nil {
			return err
		}
		win := make([]*formats.Batch, nu)
		for i, u := range order {
			win[i] = l.resident[u]
		}
		if err := l.window1(ctx, win, rng, fn); err != nil {
			return err
		}
		return l.flush(fn)
	}

	// Streaming: a reader goroutine fills free slots in unit order.
	stop := make(chan struct{})
	free := make(chan *formats.Batch, l.slots)
	ready := make(chan loaded, l.slots)
	for range l.slots {
		free <- new(formats.Batch)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, u := range order {
			var b *formats.Batch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			err := l.src.ReadBatch(u, b)
			ready <- loaded{b, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	win := make([]*formats.Batch, 0, l.window)
	for i := 0; i < nu; i += l.window {
		win = win[:0]
		for range min(l.window, nu-i) {
			var ld loaded
			select {
			case ld = <-ready:
			case <-ctx.Done():
				return ctx.Err()
			}
			if ld.err != nil {
				return ld.err
			}
			win = append(win, ld.b)
		}
		if err := l.window1(ctx, win, rng, fn); err != nil {
			return err
		}
		for _, b := range win {
			free <- b
		}
	}
	return l.flush(fn)
}

// window1 gathers the rows of the units in win, shuffled if rng is set,
// into batches, calling fn for every full one.
func (l *loader) window1(ctx context.Context, win []*formats.Batch, rng *rand.Rand, fn func(*batch) error) error {
	l.pairs = l.pairs[:0]
	for s, b := range win {
		if err := l.check(b); err != nil {
			return err
		}
		for r := range b.Len() {
			l.pairs = append(l.pairs, uint64(s)<<32|uint64(r))
		}
	}
	if rng != nil {
		rng.Shuffle(len(l.pairs), func(i, j int) { l.pairs[i], l.pairs[j] = l.pairs[j], l.pairs[i] })
	}
	out := &l.out
	for _, p := range l.pairs {
		l.gather(out.n, win[p>>32], int(p&0xffffffff))
		out.n++
		if out.n == l.batchSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(out); err != nil {
				return err
			}
			out.n = 0
		}
	}
	return nil
}

func (l *loader) flush(fn func(*batch) error) error {
	if l.out.n == 0 {
		return nil
	}
	err := fn(&l.out)
	l.out.n = 0
	return err
}

// check verifies that a decoded unit has the columns the loader reads.
func (l *loader) check(b *formats.Batch) error {
	n := b.Len()
	if len(b.Inputs[l.input]) != n*l.inSize {
		return fmt.Errorf("train: unit with %d rows has %d values of input %q, want %d per row", n, len(b.Inputs[l.input]), l.input, l.inSize)
	}
	for i, h := range l.hidden {
		if len(b.Hidden[h]) != n*l.hidSize[i] {
			return fmt.Errorf("train: unit with %d rows has %d values of hidden state %q, want %d per row", n, len(b.Hidden[h]), h, l.hidSize[i])
		}
	}
	if l.labels && len(b.Labels) != n {
		return fmt.Errorf("train: unit with %d rows has %d labels", n, len(b.Labels))
	}
	if l.teacher {
		if k := l.cfg.TopK; k > 0 {
			if len(b.TopKIndex) != n*k || len(b.TopKLogit) != n*k || len(b.LogSumExp) != n {
				return fmt.Errorf("train: unit with %d rows lacks top-%d columns", n, k)
			}
		} else if len(b.Logits) != n*l.cfg.Classes {
			return fmt.Errorf("train: unit with %d rows has %d logits, want %d per row", n, len(b.Logits), l.cfg.Classes)
		}
	}
	return nil
}

// gather copies row r of b into row i of the output batch.
func (l *loader) gather(i int, b *formats.Batch, r int) {
	out := &l.out
	out.rows[i] = b.Rows[r]
	d := l.inSize
	copy(out.x[i*d:(i+1)*d], b.Inputs[l.input][r*d:(r+1)*d])
	if l.labels {
		out.t.Labels[i] = b.Labels[r]
	}
	if l.teacher {
		if k := l.cfg.TopK; k > 0 {
			copy(out.t.TopKIndex[i*k:(i+1)*k], b.TopKIndex[r*k:(r+1)*k])
			copy(out.t.TopKLogit[i*k:(i+1)*k], b.TopKLogit[r*k:(r+1)*k])
			out.t.LogSumExp[i] = b.LogSumExp[r]
		} else {
			c := l.cfg.Classes
			copy(out.t.Logits[i*c:(i+1)*c], b.Logits[r*c:(r+1)*c])
		}
	}
	for j, h := range l.hidden {
		d := l.hidSize[j]
		copy(out.hidden[j][i*d:(i+1)*d], b.Hidden[h][r*d:(r+1)*d])
	}
}

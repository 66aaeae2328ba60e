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

// unitRows visits the rows of a Source in a bounded shuffle window, for
// the MLP loader and for TrainLM. Per pass it shuffles the order of the
// units, reads them window units at a time (prefetched in the background:
// at most slots decoded units are held at once, the window and the next)
// and visits the rows of each window in a shuffled order, so the rows of
// different units mix. If all units fit in the memory budget they are
// read once and kept (resident; the window is the whole source).
type unitRows struct {
	src      Source
	window   int              // units per window
	slots    int              // decoded units held at once
	resident []*formats.Batch // the whole source, kept (nil when streaming)
	// keep returns what to keep of a decoded unit (which is reused for
	// the next) when resident; nil keeps each unit whole, decoded into a
	// batch of its own.
	keep  func(*formats.Batch) (*formats.Batch, error)
	bufs  []*formats.Batch // the slots' decoded units when streaming, reused by every pass
	pairs []uint64         // slot<<32 | row of the current window
}

// defaultWindowBytes bounds the decoded units a loader holds.
const defaultWindowBytes = 256 << 20

// newUnitRows sizes the window over src: windowUnits units if > 0, else
// as many as fit in half of windowBytes (default defaultWindowBytes: the
// window and the one prefetched), a unit estimated at rowBytes(cfg) per
// row; the whole source, resident, if it fits in windowBytes.
func newUnitRows(src Source, cfg formats.Config, windowUnits int, windowBytes int64) *unitRows {
	u := &unitRows{src: src}
	nu := src.NumBatches()
	if windowBytes <= 0 {
		windowBytes = defaultWindowBytes
	}
	unitBytes := max(rowBytes(cfg)*((src.NumRows()+int64(nu)-1)/int64(max(nu, 1))), 1)
	switch {
	case windowUnits > 0:
		u.window, u.slots = windowUnits, 2*windowUnits
	case int64(nu)*unitBytes <= windowBytes:
		u.window, u.slots = nu, nu
	default:
		u.window = int(max(1, windowBytes/2/unitBytes))
		u.slots = 2 * u.window
	}
	if u.window >= nu {
		u.window, u.slots = nu, nu
		u.resident = make([]*formats.Batch, 0, nu)
	}
	return u
}

// rowBytes is the decoded size of one cache row (of a per-token cache, one
// window of Positions tokens).
func rowBytes(cfg formats.Config) int64 {
	P := int64(max(cfg.Positions, 1))
	n := int64(8)
	if cfg.HasLabel {
		n += 8 * P
	}
	if k := int64(cfg.TopK); k > 0 {
		n += P * (8*k + 4)
		if cfg.Samples > 0 {
			n += P * 4 * k
		}
	} else {
		n += P * int64(4*cfg.Classes)
	}
	for _, t := range append(slices.Clone(cfg.Hidden), cfg.Inputs...) {
		n += int64(4 * t.Size())
	}
	return n
}

// load reads every unit into u.resident (see unitRows.keep).
func (u *unitRows) load(ctx context.Context) error {
	var tmp formats.Batch
	for len(u.resident) < u.src.NumBatches() {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := &tmp
		if u.keep == nil {
			b = new(formats.Batch)
		}
		if err := u.src.ReadBatch(len(u.resident), b); err != nil {
			return err
		}
		if u.keep != nil {
			var err error
			if b, err = u.keep(b); err != nil {
				return err
			}
		}
		u.resident = append(u.resident, b)
		// Collect the decoding garbage now: it is as large as the unit,
		// and letting it pile up while the resident set grows would
		// double the peak memory.
		runtime.GC()
	}
	return nil
}

type loaded struct {
	b   *formats.Batch
	err error
}

// each calls fn(b, r) for every row r of every unit b of one pass over the
// source: the units in an order shuffled with rng, the rows shuffled
// within each window, or all in cache order if rng is nil. check, if not
// nil, is called on every unit of a window before its rows. A resident
// source is loaded on the first pass. b is valid during fn only.
func (u *unitRows) each(ctx context.Context, rng *rand.Rand, check func(*formats.Batch) error, fn func(b *formats.Batch, r int) error) error {
	nu := u.src.NumBatches()
	order := make([]int, nu)
	for i := range order {
		order[i] = i
	}
	if rng != nil {
		rng.Shuffle(nu, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	if u.resident != nil {
		if err := u.load(ctx); err != nil {
			return err
		}
		win := make([]*formats.Batch, nu)
		for i, k := range order {
			win[i] = u.resident[k]
		}
		return u.window1(win, rng, check, fn)
	}

	// Streaming: a reader goroutine fills free slots in unit order.
	stop := make(chan struct{})
	free := make(chan *formats.Batch, u.slots)
	ready := make(chan loaded, u.slots)
	for len(u.bufs) < u.slots {
		u.bufs = append(u.bufs, new(formats.Batch))
	}
	for _, b := range u.bufs {
		free <- b
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, k := range order {
			var b *formats.Batch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			err := u.src.ReadBatch(k, b)
			ready <- loaded{b, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	win := make([]*formats.Batch, 0, u.window)
	for i := 0; i < nu; i += u.window {
		win = win[:0]
		for range min(u.window, nu-i) {
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
		if err := u.window1(win, rng, check, fn); err != nil {
			return err
		}
		for _, b := range win {
			free <- b
		}
	}
	return nil
}

// window1 calls fn for the rows of the units in win, shuffled if rng is
// set, after check on every unit.
func (u *unitRows) window1(win []*formats.Batch, rng *rand.Rand, check func(*formats.Batch) error, fn func(*formats.Batch, int) error) error {
	u.pairs = u.pairs[:0]
	for s, b := range win {
		if check != nil {
			if err := check(b); err != nil {
				return err
			}
		}
		for r := range b.Len() {
			u.pairs = append(u.pairs, uint64(s)<<32|uint64(r))
		}
	}
	if rng != nil {
		rng.Shuffle(len(u.pairs), func(i, j int) { u.pairs[i], u.pairs[j] = u.pairs[j], u.pairs[i] })
	}
	for _, p := range u.pairs {
		if err := fn(win[p>>32], int(p&0xffffffff)); err != nil {
			return err
		}
	}
	return nil
}

// loader streams batches from a Source: the rows of unitRows (a bounded
// shuffle window over the units) gathered into batches that continue
// across windows, so only the last batch of an epoch may be short.
type loader struct {
	*unitRows
	cfg       formats.Config
	input     string
	inSize    int
	hidden    []string // cached hidden state per feature pair
	hidSize   []int
	labels    bool
	teacher   bool
	batchSize int
	out       batch
}

func newLoader(src Source, input string, hidden []string, labels, teacher bool, batchSize int, windowUnits int, windowBytes int64) (*loader, error) {
	cfg := src.Config()
	spec, err := chooseInput(src, input)
	if err != nil {
		return nil, err
	}
	l := &loader{cfg: cfg, input: spec.Name, inSize: spec.Size(), labels: labels, teacher: teacher, batchSize: batchSize}
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
	l.unitRows = newUnitRows(src, cfg, windowUnits, windowBytes)
	l.keep = l.trim
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

// trim checks a decoded unit and returns a copy of the columns the loader
// uses, in exactly sized slices (the resident units).
func (l *loader) trim(tmp *formats.Batch) (*formats.Batch, error) {
	if err := l.check(tmp); err != nil {
		return nil, err
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
	return b, nil
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

// run calls fn for every batch of one pass over the source: shuffled with
// rng, or in cache order if rng is nil. The *batch is reused.
func (l *loader) run(ctx context.Context, rng *rand.Rand, fn func(*batch) error) error {
	out := &l.out
	out.n = 0
	err := l.each(ctx, rng, l.check, func(b *formats.Batch, r int) error {
		l.gather(out.n, b, r)
		out.n++
		if out.n < l.batchSize {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(out)
		out.n = 0
		return err
	})
	if err != nil || out.n == 0 {
		return err
	}
	err = fn(out)
	out.n = 0
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

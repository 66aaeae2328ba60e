package eval

import (
	"fmt"
	"iter"
	"strings"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/human"
)

// Data is where an evaluation's rows come from: a cache directory with an
// input.* column (distill extract --keep-input), whose labels and teacher
// scores come along, or a dataset file with the preprocessing applied as
// extract applies it.
type Data struct {
	Info  DataInfo
	cache *formats.Cache  // a cache, or
	ds    dataset.Dataset // a dataset file
	pre   formats.Preprocess

	column   string  // the chosen input column (cache: without "input.")
	colShape []int64 // its per-sample shape
	shape    []int64 // the per-sample shape fed to the model (set by Fit)
	labels   bool
	// The cache's teacher scores, when the data is a cache that has them.
	scores        bool
	classes, topK int

	buf []float32
}

// Chunk is up to a batch of rows of Data: their row ids, labels (nil
// without), model inputs [n, width] and the teacher's scores (nil
// without).
type Chunk struct {
	Rows, Labels []int64
	X            []float32
	Teacher      *TeacherScores
}

// OpenData opens path as a cache if it is a directory, else as a dataset
// file read with dso and preprocessed with pre. Preprocessing a cache is
// an ErrOption error: its cached inputs are already preprocessed.
func OpenData(path string, dso *dataset.Options, pre formats.Preprocess) (*Data, error) {
	isDir, err := IsDirLocation(path)
	if err != nil {
		return nil, err
	}
	d := &Data{pre: pre, Info: DataInfo{Path: path}}
	if isDir {
		if !pre.IsZero() {
			return nil, optionErrorf("--scale, --mean, --std and --reshape apply to dataset files; the inputs cached by extract --keep-input are already preprocessed")
		}
		c, err := formats.Open(path)
		if err != nil {
			return nil, err
		}
		cfg := c.Config()
		if cfg.Positions > 0 {
			c.Close()
			return nil, fmt.Errorf("%s is a per-token cache (%d positions per row); eval measures classifiers on per-sample caches", path, cfg.Positions)
		}
		d.cache, d.labels = c, cfg.HasLabel
		d.scores, d.classes, d.topK = true, cfg.Classes, cfg.TopK
		d.Info.Kind, d.Info.Rows, d.Info.Digest = "cache", c.NumRows(), c.Digest()
		d.Info.Preprocessing = c.Manifest().Dataset.Preprocessing
		return d, nil
	}
	ds, err := dataset.Open(path, dso)
	if err != nil {
		return nil, err
	}
	d.ds, d.labels = ds, ds.Label()
	d.Info.Kind, d.Info.Rows = "dataset", int64(ds.Len())
	d.Info.Preprocessing = pre.Describe()
	return d, nil
}

// Close releases the cache or dataset.
func (d *Data) Close() error {
	if d.cache != nil {
		return d.cache.Close()
	}
	return d.ds.Close()
}

// HasLabels reports whether the rows have labels.
func (d *Data) HasLabels() bool { return d.labels }

// Teacher returns the data's own teacher: the scores of a cache, with the
// number of classes; ok is false for a dataset file.
func (d *Data) Teacher() (info TeacherInfo, classes int, ok bool) {
	if !d.scores {
		return TeacherInfo{}, 0, false
	}
	return cacheTeacherInfo(d.Info.Path, d.cache), d.classes, true
}

// Shape returns the per-sample shape fed to the model, set by Fit.
func (d *Data) Shape() []int64 { return d.shape }

// ChooseColumn picks the input column: explicit if set (an ErrOption error
// if there is no such column), else the one named preferred (the model's
// input), else the only one.
func (d *Data) ChooseColumn(explicit, preferred string) error {
	type col struct {
		name  string
		shape []int64
	}
	var cols []col
	if d.cache != nil {
		for _, t := range d.cache.Config().Inputs {
			cols = append(cols, col{t.Name, t.Shape})
		}
		if len(cols) == 0 {
			return fmt.Errorf("cache %s has no input columns: extract it with --keep-input, or pass the dataset file as --data", d.Info.Path)
		}
	} else {
		for _, c := range d.ds.Columns() {
			s := make([]int64, len(c.Shape))
			for i, v := range c.Shape {
				s[i] = int64(v)
			}
			cols = append(cols, col{c.Name, s})
		}
	}
	var names []string
	for _, c := range cols {
		names = append(names, fmt.Sprintf("%s%v", c.name, c.shape))
	}
	pick := func(name string) bool {
		for _, c := range cols {
			if c.name == name {
				d.column, d.colShape = c.name, c.shape
				return true
			}
		}
		return false
	}
	switch {
	case explicit != "":
		if !pick(strings.TrimPrefix(explicit, formats.InputPrefix)) {
			return optionErrorf("--input %q: %s has no such input column (columns: %s)", explicit, d.Info.Path, strings.Join(names, ", "))
		}
	case pick(preferred):
	case len(cols) == 1:
		d.column, d.colShape = cols[0].name, cols[0].shape
	default:
		return fmt.Errorf("%s has several input columns (%s) and none is named %q: choose one with --input", d.Info.Path, strings.Join(names, ", "), preferred)
	}
	d.Info.Column = d.column
	return nil
}

// Width returns the values per row of the chosen column, -1 if unknown.
func (d *Data) Width() int64 {
	w := int64(1)
	for _, v := range d.colShape {
		if v < 0 {
			return -1
		}
		w *= v
	}
	return w
}

// Fit sets the per-sample shape fed to the model: want (the shape asked
// for, or the model's declared per-sample shape, -1 for unknown
// dimensions; nil = the column's shape) with one unknown dimension solved
// from the column's width (formats.SolveShape), and checks the
// preprocessing against its channels (the first axis of a shape of rank
// > 1). model names the model in messages.
func (d *Data) Fit(want []int64, model string) error {
	width := d.Width()
	if want == nil {
		want = d.colShape
		if len(want) == 0 {
			want = []int64{1}
		}
	}
	want, known, several := formats.SolveShape(want, width)
	if several {
		return fmt.Errorf("%s takes a per-sample shape %s with several unknown dimensions; give it with --reshape", model, human.Shape(want))
	}
	if known != width {
		return fmt.Errorf("column %q of %s has %d values per row (shape %s) but %s takes %s (%d values per sample); pass --reshape or another --input",
			d.column, d.Info.Path, width, human.Shape(d.colShape), model, human.Shape(want), known)
	}
	d.shape = want
	channels := 1
	if len(want) > 1 {
		channels = int(want[0])
	}
	return d.pre.Validate(channels)
}

// Chunks streams the data in chunks of up to batch rows. The chunk and its
// slices are reused: valid until the next iteration.
func (d *Data) Chunks(batch int) iter.Seq2[*Chunk, error] {
	return func(yield func(*Chunk, error) bool) {
		var ch Chunk
		if d.cache != nil {
			col := d.column
			w := int(d.Width())
			var ts TeacherScores
			for b, err := range d.cache.All() {
				if err != nil {
					yield(nil, err)
					return
				}
				x := b.Inputs[col]
				for lo := 0; lo < b.Len(); lo += batch {
					hi := min(lo+batch, b.Len())
					ch.Rows, ch.X = b.Rows[lo:hi], x[lo*w:hi*w]
					ch.Labels = nil
					if d.labels {
						ch.Labels = b.Labels[lo:hi]
					}
					batchTeacher(&ts, b, lo, hi, d.classes, d.topK)
					ch.Teacher = &ts
					if !yield(&ch, nil) {
						return
					}
				}
			}
			return
		}
		channels := 1
		if len(d.shape) > 1 {
			channels = int(d.shape[0])
		}
		for b, err := range dataset.All(d.ds, 0, batch) {
			if err != nil {
				yield(nil, fmt.Errorf("reading %s: %w", d.Info.Path, err))
				return
			}
			d.buf = append(d.buf[:0], b.Cols[d.column]...)
			d.pre.Apply(d.buf, b.Len(), channels)
			ch.Rows, ch.Labels, ch.X, ch.Teacher = b.Rows, b.Labels, d.buf, nil
			if !yield(&ch, nil) {
				return
			}
		}
	}
}

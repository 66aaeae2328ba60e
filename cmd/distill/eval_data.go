package main

import (
	"fmt"
	"iter"
	"os"
	"strings"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// evalData is where eval's rows come from: a cache directory with an
// input.* column (from distill extract --keep-input), or a dataset file
// with preprocessing applied as extract applies it.
type evalData struct {
	info  evalDataInfo
	cache *formats.Cache  // a cache, or
	ds    dataset.Dataset // a dataset file
	pre   extract.Preprocess

	column   string  // the chosen input column (cache: without "input.")
	colShape []int64 // its per-sample shape
	shape    []int64 // the per-sample shape fed to the model (set by fit)
	labels   bool
	// The cache's teacher scores, when the data is a cache that has them.
	scores        bool
	classes, topK int

	buf []float32
}

// evalChunk is up to --batch rows of data: their row ids, labels (nil
// without), model inputs [n, width] and the teacher's scores (nil without).
type evalChunk struct {
	rows, labels []int64
	x            []float32
	teacher      *teacherScores
}

// openEvalData opens path as a cache if it is a directory, else as a
// dataset file with dso.
func openEvalData(path string, dso *dataset.Options, pre extract.Preprocess) (*evalData, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	d := &evalData{pre: pre, info: evalDataInfo{Path: path}}
	if st.IsDir() {
		if !pre.IsZero() {
			return nil, usageError("--scale, --mean, --std and --reshape apply to dataset files; the inputs cached by extract --keep-input are already preprocessed")
		}
		c, err := formats.Open(path)
		if err != nil {
			return nil, err
		}
		cfg := c.Config()
		d.cache, d.labels = c, cfg.HasLabel
		d.scores, d.classes, d.topK = true, cfg.Classes, cfg.TopK
		d.info.Kind, d.info.Rows, d.info.Digest = "cache", c.NumRows(), c.Digest()
		d.info.Preprocessing = c.Manifest().Dataset.Preprocessing
		return d, nil
	}
	ds, err := dataset.Open(path, dso)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	d.ds, d.labels = ds, ds.Label()
	d.info.Kind, d.info.Rows = "dataset", int64(ds.Len())
	d.info.Preprocessing = pre.Describe()
	return d, nil
}

// Close releases the cache or dataset.
func (d *evalData) Close() error {
	if d.cache != nil {
		return d.cache.Close()
	}
	return d.ds.Close()
}

// chooseColumn picks the input column: explicit (--input) if set, else the
// one named preferred (the model's input), else the only one.
func (d *evalData) chooseColumn(explicit, preferred string) error {
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
			return fmt.Errorf("cache %s has no input columns: extract it with --keep-input, or pass the dataset file as --data", d.info.Path)
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
			return usageError("--input %q: %s has no such input column (columns: %s)", explicit, d.info.Path, strings.Join(names, ", "))
		}
	case pick(preferred):
	case len(cols) == 1:
		d.column, d.colShape = cols[0].name, cols[0].shape
	default:
		return fmt.Errorf("%s has several input columns (%s) and none is named %q: choose one with --input", d.info.Path, strings.Join(names, ", "), preferred)
	}
	d.info.Column = d.column
	return nil
}

// width returns the values per row of the chosen column, -1 if unknown.
func (d *evalData) width() int64 {
	w := int64(1)
	for _, v := range d.colShape {
		if v < 0 {
			return -1
		}
		w *= v
	}
	return w
}

// fit sets the per-sample shape fed to the model: want (the --reshape
// shape, or the model's declared per-sample shape, -1 for unknown
// dimensions; nil = the column's shape) with one unknown dimension solved
// from the column's width, and checks the preprocessing against its
// channels (the first axis of a shape of rank > 1).
func (d *evalData) fit(want []int64, model string) error {
	width := d.width()
	if want == nil {
		want = d.colShape
		if len(want) == 0 {
			want = []int64{1}
		}
	}
	want, known, several := extract.SolveShape(want, width)
	if several {
		return fmt.Errorf("%s takes a per-sample shape %s with several unknown dimensions; give it with --reshape", model, fmtShape(want))
	}
	if known != width {
		return fmt.Errorf("column %q of %s has %d values per row (shape %s) but %s takes %s (%d values per sample); pass --reshape or another --input",
			d.column, d.info.Path, width, fmtShape(d.colShape), model, fmtShape(want), known)
	}
	d.shape = want
	channels := 1
	if len(want) > 1 {
		channels = int(want[0])
	}
	return d.pre.Validate(channels)
}

// chunks streams the data in chunks of up to batch rows. The chunk and its
// slices are reused: valid until the next iteration.
func (d *evalData) chunks(batch int) iter.Seq2[*evalChunk, error] {
	return func(yield func(*evalChunk, error) bool) {
		var ch evalChunk
		if d.cache != nil {
			col := d.column
			w := int(d.width())
			var ts teacherScores
			for b, err := range d.cache.All() {
				if err != nil {
					yield(nil, err)
					return
				}
				x := b.Inputs[col]
				for lo := 0; lo < b.Len(); lo += batch {
					hi := min(lo+batch, b.Len())
					ch.rows, ch.x = b.Rows[lo:hi], x[lo*w:hi*w]
					ch.labels = nil
					if d.labels {
						ch.labels = b.Labels[lo:hi]
					}
					ts = teacherScores{n: hi - lo, classes: d.classes, topK: d.topK}
					if k := d.topK; k > 0 {
						ts.topIdx, ts.topVal, ts.lse = b.TopKIndex[lo*k:hi*k], b.TopKLogit[lo*k:hi*k], b.LogSumExp[lo:hi]
					} else {
						ts.logits = b.Logits[lo*d.classes : hi*d.classes]
					}
					ch.teacher = &ts
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
				yield(nil, fmt.Errorf("reading %s: %w", d.info.Path, err))
				return
			}
			d.buf = append(d.buf[:0], b.Cols[d.column]...)
			d.pre.Apply(d.buf, b.Len(), channels)
			ch.rows, ch.labels, ch.x, ch.teacher = b.Rows, b.Labels, d.buf, nil
			if !yield(&ch, nil) {
				return
			}
		}
	}
}

// teacherTable holds a teacher cache's scores by row id, for --teacher-cache.
type teacherTable struct {
	classes, topK int
	pos           map[int64]int
	logits        []float32
	topIdx        []int32
	topVal, lse   []float32
	info          evalTeacherInfo
}

// loadTeacherTable reads every row's scores of the cache at path into
// memory (rows × classes float32, or rows × k for a top-k cache).
func loadTeacherTable(path string) (*teacherTable, error) {
	c, err := formats.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--teacher-cache: %w", err)
	}
	defer c.Close()
	cfg := c.Config()
	m := c.Manifest()
	t := &teacherTable{classes: cfg.Classes, topK: cfg.TopK, pos: make(map[int64]int, c.NumRows()),
		info: evalTeacherInfo{Path: path, File: m.Teacher.File, SHA256: m.Teacher.SHA256, ScoreKind: string(m.ScoreKind), Rows: c.NumRows()}}
	for b, err := range c.All() {
		if err != nil {
			return nil, fmt.Errorf("--teacher-cache: %w", err)
		}
		for _, r := range b.Rows {
			if _, dup := t.pos[r]; dup {
				return nil, fmt.Errorf("--teacher-cache %s: row id %d appears twice", path, r)
			}
			t.pos[r] = len(t.pos)
		}
		t.logits = append(t.logits, b.Logits...)
		t.topIdx = append(t.topIdx, b.TopKIndex...)
		t.topVal = append(t.topVal, b.TopKLogit...)
		t.lse = append(t.lse, b.LogSumExp...)
	}
	return t, nil
}

// gather fills dst with the teacher's scores of rows (present[i] false for
// rows the table lacks), reusing dst's slices.
func (t *teacherTable) gather(rows []int64, dst *teacherScores) {
	n, C, k := len(rows), t.classes, t.topK
	dst.n, dst.classes, dst.topK = n, C, k
	dst.present = dst.present[:0]
	dst.logits, dst.topIdx, dst.topVal, dst.lse = dst.logits[:0], dst.topIdx[:0], dst.topVal[:0], dst.lse[:0]
	for _, r := range rows {
		p, ok := t.pos[r]
		dst.present = append(dst.present, ok)
		if k == 0 {
			if ok {
				dst.logits = append(dst.logits, t.logits[p*C:(p+1)*C]...)
			} else {
				dst.logits = append(dst.logits, make([]float32, C)...)
			}
			continue
		}
		if ok {
			dst.topIdx = append(dst.topIdx, t.topIdx[p*k:(p+1)*k]...)
			dst.topVal = append(dst.topVal, t.topVal[p*k:(p+1)*k]...)
			dst.lse = append(dst.lse, t.lse[p])
		} else {
			dst.topIdx = append(dst.topIdx, make([]int32, k)...)
			dst.topVal = append(dst.topVal, make([]float32, k)...)
			dst.lse = append(dst.lse, 0)
		}
	}
}

package eval

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/train"
)

// LMData is where a language-model evaluation's windows come from: a
// token dataset (distill data text: windows of T+1 ids, the first T fed,
// the last T the next-token labels), or a per-token teacher cache (distill
// extract over such a dataset), whose labels and teacher scores come
// along, its token ids read from its input.input_ids column or, for a
// cache extracted without --keep-input, from the token dataset its
// manifest names (train.NewDatasetSource, sha256 checked).
type LMData struct {
	Info DataInfo
	// T is the tokens fed per window; Vocab the data's vocabulary (0 when
	// the token dataset records none).
	T, Vocab int

	ds    dataset.Dataset // a token dataset, or
	src   train.Source    // a per-token cache (possibly reading ids from its dataset)
	cache *formats.Cache
	cfg   formats.Config
	// The token dataset's windows to read (nil = all of them).
	keep []int64
	rows int64 // windows to evaluate (after LMDataOptions.Rows)
}

// LMDataOptions say which windows OpenLMData reads.
type LMDataOptions struct {
	// Dataset is the token dataset a per-token cache's ids are read from
	// when it has no input.input_ids column; "" = the one its manifest
	// names.
	Dataset string
	// Split chooses a token dataset's windows when it marks validation
	// windows in its "val" column: "val" (default) the held-out ones,
	// "train" the others, "all" every window. A file without that column
	// has only "all" (and "" means it).
	Split string
	// Rows bounds the windows evaluated (the first Rows); 0 = all.
	Rows int64
}

// LMChunk is up to a batch of windows: their row ids, input ids [n, T],
// next-token labels [n, T] and the teacher's scores of their n·T
// positions (nil without).
type LMChunk struct {
	Rows, IDs, Labels []int64
	Teacher           *TeacherScores
}

// OpenLMData opens path as a per-token cache if it is a directory, else
// as a token dataset. Give teacherCache (a per-token cache) to compare
// against a teacher while reading the windows from the token dataset
// path: the windows are then the cache's, their ids read from path.
func OpenLMData(path, teacherCache string, o *LMDataOptions) (*LMData, error) {
	var opts LMDataOptions
	if o != nil {
		opts = *o
	}
	if opts.Rows < 0 {
		return nil, optionErrorf("--rows %d: want 0 (all) or more", opts.Rows)
	}
	isDir, err := IsDirLocation(path)
	if err != nil {
		return nil, err
	}
	if teacherCache != "" {
		if isDir {
			return nil, optionErrorf("--teacher-cache with a cache as --data: a per-token cache brings its own teacher scores; give the token dataset as --data, or drop --teacher-cache")
		}
		opts.Dataset = path
		return openLMCache(teacherCache, opts)
	}
	if isDir {
		return openLMCache(path, opts)
	}
	return openLMTokens(path, opts)
}

// openLMTokens opens a token dataset.
func openLMTokens(path string, o LMDataOptions) (*LMData, error) {
	meta, err := dataset.ReadTokensMeta(path)
	if err != nil {
		return nil, fmt.Errorf("%w (a language model is evaluated on a token dataset written by distill data text, or on a per-token cache)", err)
	}
	ds, err := dataset.Open(path, &dataset.Options{Label: dataset.NoLabel})
	if err != nil {
		return nil, err
	}
	d := &LMData{ds: ds, T: meta.SeqLen, Vocab: meta.VocabSize,
		Info: DataInfo{Path: path, Kind: "tokens", Column: dataset.ColInputIDs}}
	if err := d.chooseWindows(meta, o.Split); err != nil {
		ds.Close()
		return nil, err
	}
	d.rows = int64(ds.Len())
	if d.keep != nil {
		d.rows = int64(len(d.keep))
	}
	d.limit(o.Rows)
	return d, nil
}

// chooseWindows checks the dataset's column of windows and picks the
// windows of split (the "val" column, when meta says it has one).
func (d *LMData) chooseWindows(meta *dataset.TokensMeta, split string) error {
	path := d.Info.Path
	i := slices.IndexFunc(d.ds.Columns(), func(c dataset.Column) bool { return c.Name == dataset.ColInputIDs })
	if i < 0 || d.ds.Columns()[i].Width() != meta.SeqLen+1 {
		return fmt.Errorf("%s: no %s column of %d ids per window (its metadata says windows of %d); re-make it with distill data text",
			path, dataset.ColInputIDs, meta.SeqLen+1, meta.SeqLen+1)
	}
	hasVal := meta.Val == "column"
	switch {
	case split == "all" || split == "" && !hasVal:
		d.Info.Split = "all"
		return nil
	case split != "val" && split != "train" && split != "":
		return optionErrorf("--split %q: want val, train or all", split)
	case !hasVal:
		return optionErrorf("--split %s: %s marks no validation windows (no %q column; it holds the %q windows); use --split all", split, path, dataset.ColVal, meta.Part)
	}
	if split == "" {
		split = "val"
	}
	d.Info.Split = split
	// The bool column, read as a one-value feature column.
	vs, err := dataset.Open(path, &dataset.Options{Label: dataset.NoLabel, Features: []string{dataset.ColVal}, FeatureName: dataset.ColVal})
	if err != nil {
		return err
	}
	defer vs.Close()
	d.keep = []int64{}
	for b, err := range dataset.All(vs, 0, 4096) {
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		for i, v := range b.Cols[dataset.ColVal] {
			if (v != 0) == (split == "val") {
				d.keep = append(d.keep, b.Rows[i])
			}
		}
	}
	if len(d.keep) == 0 {
		return fmt.Errorf("%s has no %s windows", path, split)
	}
	return nil
}

// openLMCache opens a per-token cache.
func openLMCache(path string, o LMDataOptions) (*LMData, error) {
	if o.Split != "" && o.Split != "all" {
		return nil, optionErrorf("--split %s applies to a token dataset's windows; a cache is evaluated whole (use --rows to bound it)", o.Split)
	}
	c, err := formats.Open(path)
	if err != nil {
		return nil, err
	}
	cfg := c.Config()
	if cfg.Positions == 0 {
		c.Close()
		return nil, fmt.Errorf("%s is a per-sample cache (one score vector per row), not a language model's per-token cache", path)
	}
	d := &LMData{cache: c, src: c, cfg: cfg, T: cfg.Positions, Vocab: cfg.Classes,
		Info: DataInfo{Path: path, Kind: "cache", Column: "input_ids", Digest: c.Digest(), Split: "all"}}
	hasIDs := slices.ContainsFunc(cfg.Inputs, func(s formats.TensorSpec) bool {
		return s.Name == "input_ids" && s.Size() == cfg.Positions
	})
	if !hasIDs || o.Dataset != "" {
		ds, err := train.NewDatasetSource(c, o.Dataset)
		if errors.Is(err, train.ErrNoInput) {
			err = fmt.Errorf("%s has no input.input_ids column and records no token dataset to read the ids from; extract it with --keep-input", path)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		d.src, d.Info.TokensFrom = ds, ds.Path()
	}
	if !cfg.HasLabel {
		d.Close()
		return nil, fmt.Errorf("%s has no next-token labels (label column); extract it from a token dataset (distill data text)", path)
	}
	d.rows = c.NumRows()
	d.limit(o.Rows)
	return d, nil
}

// limit bounds the windows to the first rows (0 = all).
func (d *LMData) limit(rows int64) {
	if rows > 0 {
		d.rows = min(d.rows, rows)
	}
	d.Info.Rows = d.rows
}

// Close releases the dataset or cache.
func (d *LMData) Close() error {
	if d.ds != nil {
		return d.ds.Close()
	}
	var err error
	if d.src != train.Source(d.cache) {
		err = d.src.(io.Closer).Close()
	}
	return errors.Join(err, d.cache.Close())
}

// Windows returns the number of windows Chunks yields.
func (d *LMData) Windows() int64 { return d.rows }

// Teacher returns the cache's teacher, with its vocabulary; ok is false
// for a token dataset.
func (d *LMData) Teacher() (info TeacherInfo, classes int, ok bool) {
	if d.cache == nil {
		return TeacherInfo{}, 0, false
	}
	return cacheTeacherInfo(d.Info.Path, d.cache), d.cfg.Classes, true
}

// Chunks streams the windows in chunks of up to batch. The chunk and its
// slices are reused: valid until the next iteration. A token id outside
// [0, Vocab) is an error naming its window.
func (d *LMData) Chunks(batch int) iter.Seq2[*LMChunk, error] {
	return func(yield func(*LMChunk, error) bool) {
		var ch LMChunk
		T := d.T
		left := d.rows
		emit := func(rows []int64, window func(i int) (ids, labels []float32)) bool {
			n := int(min(int64(len(rows)), left))
			ch.Rows = rows[:n]
			ch.IDs, ch.Labels = ch.IDs[:0], ch.Labels[:0]
			for i := range n {
				ids, labels := window(i)
				for _, v := range ids {
					ch.IDs = append(ch.IDs, int64(v))
				}
				for _, v := range labels {
					ch.Labels = append(ch.Labels, int64(v))
				}
			}
			if err := d.checkIDs(&ch); err != nil {
				yield(nil, err)
				return false
			}
			left -= int64(n)
			return yield(&ch, nil)
		}
		if d.ds != nil {
			var b dataset.Batch
			var rows []int64
			for lo := int64(0); left > 0; lo += int64(batch) {
				rows = rows[:0]
				if d.keep != nil {
					if lo >= int64(len(d.keep)) {
						return
					}
					rows = append(rows, d.keep[lo:min(lo+int64(batch), int64(len(d.keep)))]...)
				} else {
					for r := lo; r < min(lo+int64(batch), int64(d.ds.Len())); r++ {
						rows = append(rows, r)
					}
				}
				if len(rows) == 0 {
					return
				}
				w := make([]float32, 0, len(rows)*(T+1))
				for i := 0; i < len(rows); {
					j := i + 1
					for j < len(rows) && rows[j] == rows[j-1]+1 {
						j++
					}
					if err := d.ds.Read(int(rows[i]), j-i, &b); err != nil {
						yield(nil, fmt.Errorf("reading %s: %w", d.Info.Path, err))
						return
					}
					w = append(w, b.Cols[dataset.ColInputIDs]...)
					i = j
				}
				if !emit(rows, func(i int) ([]float32, []float32) {
					win := w[i*(T+1) : (i+1)*(T+1)]
					return win[:T], win[1:]
				}) {
					return
				}
			}
			return
		}
		var b formats.Batch
		var ts TeacherScores
		labels := make([]float32, 0, batch*T)
		for u := range d.src.NumBatches() {
			if left <= 0 {
				return
			}
			if err := d.src.ReadBatch(u, &b); err != nil {
				yield(nil, err)
				return
			}
			ids := b.Inputs["input_ids"]
			for lo := 0; lo < b.Len() && left > 0; lo += batch {
				hi := min(lo+batch, b.Len(), lo+int(left))
				batchTeacher(&ts, &b, lo*T, hi*T, d.cfg.Classes, d.cfg.TopK)
				ch.Teacher = &ts
				labels = labels[:0]
				for _, y := range b.Labels[lo*T : hi*T] {
					labels = append(labels, float32(y))
				}
				if !emit(b.Rows[lo:hi], func(i int) ([]float32, []float32) {
					return ids[(lo+i)*T : (lo+i+1)*T], labels[i*T : (i+1)*T]
				}) {
					return
				}
			}
		}
	}
}

// checkIDs checks the chunk's token ids and labels against the
// vocabulary.
func (d *LMData) checkIDs(ch *LMChunk) error {
	V := int64(d.Vocab)
	if V <= 0 {
		V = math.MaxInt32
	}
	for i, v := range ch.IDs {
		if v < 0 || v >= V {
			return fmt.Errorf("%s: window %d holds token id %d, outside the vocabulary of %d", d.Info.Path, ch.Rows[i/d.T], v, V)
		}
	}
	for i, v := range ch.Labels {
		if v < 0 || v >= V {
			return fmt.Errorf("%s: window %d has next-token label %d, outside the vocabulary of %d", d.Info.Path, ch.Rows[i/d.T], v, V)
		}
	}
	return nil
}

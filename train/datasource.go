package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// ErrDatasetMismatch reports a dataset file that is not the one a cache was
// extracted from (its sha256 differs from the manifest's).
var ErrDatasetMismatch = errors.New("train: dataset differs from the one the cache was extracted from")

// datasetChunk bounds the dataset rows read at once, so the buffer stays
// small whatever the size of a cache unit.
const datasetChunk = 4096

// DatasetSource is a Source that reads the teacher scores, labels and
// hidden states of a cache and the model inputs from the cache's source
// dataset, as recorded in its manifest (formats.Dataset: path, sha256,
// Options, Inputs, Preprocess; written by distill extract since format
// 1.1). For every cache row it reads the dataset row of the same id
// (formats.Batch.Rows; contiguous ids in one read) and applies the
// preprocessing exactly as extract did before feeding the teacher, so
// training on it is bit-identical to training on the same cache extracted
// with --keep-input (given the same units). Config reports the inputs as
// if they were cached, replacing any input.* columns the cache has.
//
// For a per-token cache (formats.Config.Positions T > 0, a sequence
// teacher's) it reads the one input a transformer student takes, the
// token ids (input.input_ids [T]), from the column of windows of T+1 ids
// extract read (distill data text writes them): the first T of each, as
// extract fed them; the teacher's other inputs (an attention mask, ...)
// are not read.
//
// Memory stays bounded: the dataset is read unit by unit, at most
// datasetChunk rows at a time. Reads are serialized (the dataset is not safe
// for concurrent use).
type DatasetSource struct {
	c      *formats.Cache
	ds     dataset.Dataset
	path   string
	cfg    formats.Config
	inputs []formats.DatasetInput
	pre    formats.Preprocess
	// window is T+1 for a per-token cache: its token ids are the first T
	// of each window of T+1 in the dataset (distill data text), as
	// extract fed them; 0 for a per-sample cache.
	window int

	mu  sync.Mutex
	buf dataset.Batch
}

var _ Source = (*DatasetSource)(nil)

// NewDatasetSource opens the dataset recorded in c's manifest, or the file
// at path if path is not "" (a dataset that moved), and returns a Source
// that reads c's inputs from it. It returns an error wrapping ErrNoInput if
// the manifest records no recipe (a cache extracted before format 1.1),
// one wrapping ErrDatasetMismatch if the data file's sha256 is not the one
// recorded (a dataset file that changed, or the wrong file), and an error
// if the shards of c record different recipes or the dataset lacks a
// recorded column or its width. Labels are read from the cache, never from
// the dataset, so the recorded labels file (Options.Labels) is not used.
// Close the DatasetSource before c.
func NewDatasetSource(c *formats.Cache, path string) (*DatasetSource, error) {
	rec := c.Manifest().Dataset
	if len(rec.Inputs) == 0 {
		return nil, ErrNoInput
	}
	for _, o := range c.Manifests()[1:] {
		if a, b := recipeText(rec), recipeText(o.Dataset); a != b {
			return nil, fmt.Errorf("train: the shards of the cache record different dataset recipes (%s and %s); re-extract them with the same settings", a, b)
		}
	}
	s := &DatasetSource{c: c, path: path, inputs: rec.Inputs}
	if T := c.Config().Positions; T > 0 {
		i := slices.IndexFunc(rec.Inputs, func(in formats.DatasetInput) bool { return in.Name == lmInput })
		if i < 0 {
			return nil, fmt.Errorf("train: the per-token cache's manifest records no %q input read from its dataset (it records %s); re-extract it with --keep-input",
				lmInput, inputNames(rec.Inputs))
		}
		s.inputs, s.window = rec.Inputs[i:i+1], T+1
	}
	if rec.Preprocess != nil {
		s.pre = *rec.Preprocess
	}
	if s.path == "" {
		s.path = rec.Path
	}
	if s.path == "" {
		return nil, fmt.Errorf("train: the cache manifest names no dataset file; give its path (--data)")
	}
	hint := ""
	if path == "" {
		hint = "; if the dataset moved, give its new path (--data)"
	}
	if err := checkSHA256(s.path, rec); errors.Is(err, ErrDatasetMismatch) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w%s", err, hint)
	}
	var opts dataset.Options
	if o := rec.Options; o != nil {
		opts = dataset.Options{Format: o.Format, Label: o.Label, Features: o.Features, FeatureName: o.FeatureName}
	}
	ds, err := dataset.Open(s.path, &opts)
	if err != nil {
		return nil, fmt.Errorf("train: reading the cache's inputs from its dataset: %w", err)
	}
	s.ds = ds
	if err := s.check(rec); err != nil {
		ds.Close()
		return nil, err
	}
	s.cfg = c.Config()
	s.cfg.Inputs = make([]formats.TensorSpec, len(s.inputs))
	for i, in := range s.inputs {
		s.cfg.Inputs[i] = formats.TensorSpec{Name: in.Name, Shape: append([]int64{}, in.Shape...), Dtype: formats.Float32}
	}
	return s, nil
}

// checkSHA256 checks the data file at path against the manifest's sha256
// (the first of the comma-separated sums; the second, if any, is the
// labels file's, which is not read).
func checkSHA256(path string, rec formats.Dataset) error {
	want, _, _ := strings.Cut(rec.SHA256, ",")
	if want == "" {
		return fmt.Errorf("train: the cache manifest records no sha256 for its dataset %s, so the file cannot be checked; re-extract the cache", rec.Path)
	}
	got, err := dataset.FileSHA256(path)
	if err != nil {
		return fmt.Errorf("train: reading the cache's inputs from its dataset: %w", err)
	}
	if got != want {
		return fmt.Errorf("%w: %s has sha256 %s, but the cache was extracted from %s with sha256 %s; give the original file with --data, or re-extract the cache from this one",
			ErrDatasetMismatch, path, got, rec.Path, want)
	}
	return nil
}

// check verifies the opened dataset against the recipe: the row count and
// every input column and width.
func (s *DatasetSource) check(rec formats.Dataset) error {
	file := s.ds.Files()[0]
	if rec.Rows > 0 && int64(s.ds.Len()) != rec.Rows {
		return fmt.Errorf("%w: %s has %d rows, the cache manifest says %d", ErrDatasetMismatch, file, s.ds.Len(), rec.Rows)
	}
	cols := map[string]dataset.Column{}
	var names []string
	for _, c := range s.ds.Columns() {
		cols[c.Name] = c
		names = append(names, fmt.Sprintf("%s%v", c.Name, c.Shape))
	}
	for _, in := range s.inputs {
		col, ok := cols[in.Column]
		if !ok {
			return fmt.Errorf("train: dataset %s has no column %q for input %q (columns: %s)", file, in.Column, in.Name, strings.Join(names, ", "))
		}
		size := formats.TensorSpec{Shape: in.Shape}.Size()
		if s.window > 0 {
			if !slices.Equal(in.Shape, []int64{int64(s.window - 1)}) || col.Width() != s.window || !s.pre.IsZero() {
				return fmt.Errorf("%w: dataset %s column %q has %d values per row and the manifest records input %q of shape %v (preprocessing %v); a cache of windows of %d tokens reads windows of %d token ids",
					ErrDatasetMismatch, file, in.Column, col.Width(), in.Name, in.Shape, s.pre.Describe(), s.window-1, s.window)
			}
			continue
		}
		if col.Width() != size {
			return fmt.Errorf("train: dataset %s column %q has %d values per row, input %q takes %d (shape %v)", file, in.Column, col.Width(), in.Name, size, in.Shape)
		}
		if err := s.pre.Validate(formats.Channels(in.Shape)); err != nil {
			return fmt.Errorf("train: the cache's preprocessing: %w", err)
		}
	}
	return nil
}

// inputNames lists the model inputs of a dataset recipe.
func inputNames(ins []formats.DatasetInput) string {
	names := make([]string, len(ins))
	for i, in := range ins {
		names[i] = fmt.Sprintf("%q", in.Name)
	}
	return strings.Join(names, ", ")
}

// recipeText is the part of a dataset record that decides the inputs.
func recipeText(d formats.Dataset) string {
	b, _ := json.Marshal(struct {
		O  *formats.DatasetOptions
		In []formats.DatasetInput
		P  *formats.Preprocess
	}{d.Options, d.Inputs, d.Preprocess})
	return string(b)
}

// Config returns the cache's Config with Inputs set to the inputs read from
// the dataset.
func (s *DatasetSource) Config() formats.Config { return s.cfg }

// NumRows returns the cache's row count.
func (s *DatasetSource) NumRows() int64 { return s.c.NumRows() }

// NumBatches returns the cache's unit count.
func (s *DatasetSource) NumBatches() int { return s.c.NumBatches() }

// Manifest returns the cache's manifest, and Digest its digest: the
// provenance a checkpoint records is the cache's.
func (s *DatasetSource) Manifest() formats.Manifest { return s.c.Manifest() }

// Digest returns the cache's Digest.
func (s *DatasetSource) Digest() string { return s.c.Digest() }

// Path returns the path of the dataset file the inputs are read from.
func (s *DatasetSource) Path() string { return s.path }

// ReadBatch reads unit u of the cache into dst and fills dst.Inputs from
// the dataset rows dst.Rows. A row id outside the dataset is an error.
func (s *DatasetSource) ReadBatch(u int, dst *formats.Batch) error {
	if err := s.c.ReadBatch(u, dst); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if dst.Inputs == nil {
		dst.Inputs = make(map[string][]float32, len(s.inputs))
	}
	for k := range dst.Inputs { // cached inputs, if any, are replaced
		if !s.reads(k) {
			delete(dst.Inputs, k)
		}
	}
	for _, in := range s.inputs {
		dst.Inputs[in.Name] = dst.Inputs[in.Name][:0]
	}
	rows, total := dst.Rows, int64(s.ds.Len())
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && j-i < datasetChunk && rows[j] == rows[j-1]+1 {
			j++
		}
		start, n := rows[i], j-i
		if start < 0 || start+int64(n) > total {
			bad := start // the run's first row outside [0, total)
			if start >= 0 {
				bad = max(start, total)
			}
			return fmt.Errorf("train: cache row %d is outside dataset %s (%d rows)", bad, s.path, total)
		}
		if err := s.ds.Read(int(start), n, &s.buf); err != nil {
			return fmt.Errorf("train: reading %s rows %d..%d: %w", s.path, start, start+int64(n), err)
		}
		if s.buf.Len() != n {
			return fmt.Errorf("train: reading %s rows %d..%d: got %d rows", s.path, start, start+int64(n), s.buf.Len())
		}
		for _, in := range s.inputs {
			v := dst.Inputs[in.Name]
			col := s.buf.Cols[in.Column]
			if W := s.window; W > 0 { // the first T of each window of T+1 ids
				for r := range n {
					v = append(v, col[r*W:(r+1)*W-1]...)
				}
				dst.Inputs[in.Name] = v
				continue
			}
			off := len(v)
			v = append(v, col...)
			s.pre.Apply(v[off:], n, formats.Channels(in.Shape))
			dst.Inputs[in.Name] = v
		}
		i = j
	}
	return nil
}

// reads reports whether input name is read from the dataset.
func (s *DatasetSource) reads(name string) bool {
	for _, in := range s.inputs {
		if in.Name == name {
			return true
		}
	}
	return false
}

// Close closes the dataset (not the cache).
func (s *DatasetSource) Close() error { return s.ds.Close() }

package dataset

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/distill-ml/distill/internal/store"
)

// Sentinel errors. Every error returned by this package for bad input wraps
// one of them, so callers can tell a broken file from a missing one with
// errors.Is; the message names the file and the problem.
var (
	// ErrFormat reports a file whose format cannot be recognised.
	ErrFormat = errors.New("dataset: unrecognized format")
	// ErrCorrupt reports a truncated or malformed file.
	ErrCorrupt = errors.New("dataset: corrupt file")
	// ErrUnsupported reports a valid file using a feature the readers do not
	// handle, such as a Fortran-ordered .npy or a string column named as a
	// feature.
	ErrUnsupported = errors.New("dataset: unsupported")
	// ErrShape reports rows whose shapes disagree, or a labels file whose
	// row count differs from the features'.
	ErrShape = errors.New("dataset: shape mismatch")
	// ErrLimit reports input that would need more memory than
	// Options.MaxInMemoryBytes allows.
	ErrLimit = errors.New("dataset: size limit exceeded")
	// ErrColumn reports a column named in Options that is missing or unusable.
	ErrColumn = errors.New("dataset: bad column")
)

// Default option values.
const (
	// DefaultLabel is the label column used when Options.Label is empty and
	// a column of this name exists.
	DefaultLabel = "label"
	// DefaultFeatureName names the column that combines scalar feature
	// columns (CSV, Parquet/Arrow scalars) or holds a bare array (.npy).
	DefaultFeatureName = "input"
	// DefaultMaxInMemoryBytes caps the data held fully in memory; see
	// Options.MaxInMemoryBytes.
	DefaultMaxInMemoryBytes = 1 << 30
	// MetaShape is the Arrow field metadata key holding a tensor column's
	// per-row shape as a JSON array, e.g. "[1,28,28]". Readers use it when
	// its product equals the column's width; WriteMNIST sets it.
	MetaShape = "shape"
)

// NoLabel as Options.Label means the dataset has no label even if a column
// named "label" exists.
const NoLabel = "-"

// Options configures Open. The zero value, and a nil *Options, select the
// documented defaults.
type Options struct {
	// Format forces a format instead of detecting it from the file name and
	// contents: "parquet", "arrow" (IPC file), "arrows" (IPC stream), "npy",
	// "csv" or "idx". Default: detect.
	Format string
	// Label names the label column (Parquet, Arrow, CSV). Default: "label"
	// if such a column exists, otherwise no label. NoLabel disables it. A
	// label column must hold integers (or integral floats).
	Label string
	// Features lists scalar numeric columns (Parquet, Arrow, CSV) combined,
	// in this order, into one column named FeatureName of shape
	// [len(Features)]. Default: every scalar numeric column except the label
	// when the file has no list (tensor) columns, none otherwise.
	Features []string
	// FeatureName names the combined feature column and the column of a
	// .npy array. Default: "input".
	FeatureName string
	// Labels is the location (a path or a URL, as Open takes) of a separate
	// labels file for .npy (a 1-D integer .npy) and idx (an idx1 file). Default for idx images: the sibling
	// file with "images-idx3" replaced by "labels-idx1", if it exists.
	Labels string
	// MaxInMemoryBytes caps what is loaded fully into memory: a CSV file's
	// size, a gzip idx file's decompressed size and any single Arrow buffer
	// (such as a decompressed Parquet page or IPC buffer). Default:
	// DefaultMaxInMemoryBytes.
	MaxInMemoryBytes int64
	// Allocator allocates Arrow memory for Parquet and Arrow IPC reads.
	// Default: memory.DefaultAllocator.
	Allocator memory.Allocator
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.FeatureName == "" {
		v.FeatureName = DefaultFeatureName
	}
	if v.MaxInMemoryBytes <= 0 {
		v.MaxInMemoryBytes = DefaultMaxInMemoryBytes
	}
	if v.Allocator == nil {
		v.Allocator = memory.DefaultAllocator
	}
	v.Allocator = limitAllocator{v.Allocator, v.MaxInMemoryBytes}
	return v
}

// limitAllocator refuses single Arrow allocations above max by panicking
// with an allocLimit, which recovered reports as ErrLimit. It guards
// against sizes read from untrusted input inside arrow-go (such as a
// compressed IPC buffer's claimed uncompressed length).
type limitAllocator struct {
	memory.Allocator
	max int64
}

// allocLimit is the panic value of an over-limit allocation.
type allocLimit struct{ size, max int64 }

func (a limitAllocator) Allocate(size int) []byte {
	if int64(size) > a.max {
		panic(allocLimit{int64(size), a.max})
	}
	return a.Allocator.Allocate(size)
}

func (a limitAllocator) Reallocate(size int, b []byte) []byte {
	if int64(size) > a.max {
		panic(allocLimit{int64(size), a.max})
	}
	return a.Allocator.Reallocate(size, b)
}

// labelName returns the label column to look for and whether it is required.
func (o *Options) labelName() (name string, required bool) {
	switch o.Label {
	case "":
		return DefaultLabel, false
	case NoLabel:
		return "", false
	}
	return o.Label, true
}

// Column describes one model input column of a dataset.
type Column struct {
	// Name is the column name, matched against model input names.
	Name string
	// DType is the element type stored in the file; Read converts to float32.
	DType DType
	// Shape is the per-row shape, e.g. [1,28,28] for MNIST images or [] for
	// a scalar. A dimension is -1 when it cannot be known (a list column
	// in a dataset with no rows).
	Shape []int
}

// Width returns the number of values per row: the product of Shape, 1 for a
// scalar, or -1 if a dimension is unknown.
func (c Column) Width() int {
	w := 1
	for _, d := range c.Shape {
		if d < 0 {
			return -1
		}
		w *= d
	}
	return w
}

// Batch holds a range of rows read from a Dataset. Read reuses its slices,
// so values are valid until the next Read into the same Batch.
type Batch struct {
	// Rows holds the dataset row index of each row.
	Rows []int64
	// Labels holds one label per row, or nil if the dataset has no label.
	Labels []int64
	// Cols maps each column name to its values, row-major:
	// len(Cols[name]) == len(Rows) * Column.Width().
	Cols map[string][]float32
}

// Len returns the number of rows in b.
func (b *Batch) Len() int { return len(b.Rows) }

// reset empties b for cols, keeping capacity.
func (b *Batch) reset(cols []Column, label bool) {
	b.Rows = b.Rows[:0]
	if label {
		if b.Labels == nil {
			b.Labels = make([]int64, 0, 256)
		}
		b.Labels = b.Labels[:0]
	} else {
		b.Labels = nil
	}
	if b.Cols == nil {
		b.Cols = make(map[string][]float32, len(cols))
	}
	for k := range b.Cols {
		keep := false
		for _, c := range cols {
			keep = keep || c.Name == k
		}
		if !keep {
			delete(b.Cols, k)
		}
	}
	for _, c := range cols {
		b.Cols[c.Name] = b.Cols[c.Name][:0]
	}
}

// Dataset is a table of rows read from one input file (plus, for npy and
// idx, an optional labels file). Rows are addressed by index, so a consumer
// can resume at any row or split rows into shards. A Dataset is not safe for
// concurrent use.
type Dataset interface {
	// Len returns the number of rows.
	Len() int
	// Columns returns the feature columns, in file order.
	Columns() []Column
	// Label reports whether rows carry an integer label.
	Label() bool
	// Read reads rows [start, start+n) into dst, fewer if the dataset ends
	// first. It returns io.EOF, with dst empty, when start >= Len(), and an
	// error for negative start or n.
	Read(start, n int, dst *Batch) error
	// Files returns the locations the dataset reads, as given to Open: the
	// data file, then the labels file if any. Hash them with FileSHA256
	// for a manifest.
	Files() []string
	// Close releases the files and memory the dataset holds.
	Close() error
}

// All returns an iterator over d in chunks of up to chunk rows from row
// start on. The yielded Batch is reused: it is valid until the next
// iteration. Iteration stops after the first error.
func All(d Dataset, start, chunk int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		if chunk <= 0 {
			yield(nil, fmt.Errorf("dataset: chunk size %d must be positive", chunk))
			return
		}
		var b Batch
		for r := start; ; r += chunk {
			err := d.Read(r, chunk, &b)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(&b, nil) {
				return
			}
		}
	}
}

// checkRange validates a Read request against the row count and returns
// the number of rows to read.
func checkRange(start, n, rows int) (int, error) {
	if start < 0 || n < 0 {
		return 0, fmt.Errorf("dataset: invalid read of %d rows at row %d", n, start)
	}
	if start >= rows {
		return 0, io.EOF
	}
	return min(n, rows-start), nil
}

var idxName = regexp.MustCompile(`(?i)-idx[0-9]+-u?byte(\.gz)?$|\.idx[0-9]*(\.gz)?$`)

// Open opens the dataset at the location path: a plain path, file://PATH,
// s3://BUCKET/KEY or gs://BUCKET/KEY (see package internal/store; a remote
// Parquet or Arrow IPC file is read with range requests, not downloaded
// whole, and so are npy and raw idx rows). The format comes from opts.Format, else
// the extension (.parquet/.pq, .arrow/.ipc/.feather, .arrows, .npy, .csv,
// *-idx3-ubyte[.gz]), else the file's leading bytes. A nil opts selects the
// defaults. The caller must Close the dataset.
func Open(path string, opts *Options) (Dataset, error) {
	o := opts.withDefaults()
	format := o.Format
	if format == "" {
		var err error
		if format, err = detect(path); err != nil {
			return nil, err
		}
	}
	switch format {
	case "parquet":
		return openParquetFile(path, &o)
	case "arrow":
		return openIPCFile(path, &o, false)
	case "arrows":
		return openIPCFile(path, &o, true)
	case "npy":
		return openNPYFile(path, &o)
	case "csv":
		return openCSVFile(path, &o)
	case "idx":
		return openIDXFile(path, &o)
	}
	return nil, fmt.Errorf("%w: format %q: want parquet, arrow, arrows, npy, csv or idx", ErrFormat, format)
}

// detect guesses the format of path from its name, then its first bytes.
func detect(path string) (string, error) {
	base := strings.ToLower(store.Base(path))
	switch filepath.Ext(base) {
	case ".parquet", ".pq":
		return "parquet", nil
	case ".arrow", ".ipc", ".feather":
		return "arrow", nil
	case ".arrows":
		return "arrows", nil
	case ".npy":
		return "npy", nil
	case ".csv":
		return "csv", nil
	}
	if idxName.MatchString(base) {
		return "idx", nil
	}
	f, _, err := openSized(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := f.ReadAt(head, 0)
	if format := sniff(head[:n]); format != "" {
		return format, nil
	}
	return "", fmt.Errorf("%w: %s: want a .parquet, .arrow/.ipc/.feather, .arrows, .npy, .csv or *-idx3-ubyte[.gz] file, or set the format explicitly", ErrFormat, path)
}

// sniff returns the format whose magic bytes head starts with, or "".
func sniff(head []byte) string {
	switch {
	case len(head) >= 4 && string(head[:4]) == "PAR1":
		return "parquet"
	case len(head) >= 6 && string(head[:6]) == "ARROW1":
		return "arrow"
	case len(head) >= 4 && string(head[:4]) == "\xff\xff\xff\xff":
		return "arrows"
	case len(head) >= 6 && string(head[:6]) == npyMagic:
		return "npy"
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return "idx" // gzip: the only compressed input we read
	case len(head) >= 4 && head[0] == 0 && head[1] == 0 && idxDType(head[2]) != Invalid && head[3] > 0:
		return "idx"
	}
	return ""
}

// corruptf returns an error wrapping ErrCorrupt for the file at path.
func corruptf(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, path, fmt.Sprintf(format, args...))
}

// recovered converts a panic from a decoder (arrow-go panics on some
// malformed input) into an ErrCorrupt error stored in *err. Use it as
// `defer recovered(&err, path)` at each call boundary into arrow-go.
func recovered(err *error, path string) {
	r := recover()
	if l, ok := r.(allocLimit); ok {
		*err = fmt.Errorf("%w: %s: a buffer of %d bytes exceeds Options.MaxInMemoryBytes (%d); raise it if the file is genuine", ErrLimit, path, l.size, l.max)
	} else if r != nil {
		*err = corruptf(path, "decoder failed: %v", r)
	}
}

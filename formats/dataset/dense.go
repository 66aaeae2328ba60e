package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/apache/arrow-go/v18/arrow/float16"
)

// maxReadBytes bounds the scratch buffer of one ReadAt of a dense array.
const maxReadBytes = 4 << 20

// denseArray is a C-ordered array of rows stored contiguously at off in r,
// as in .npy and idx files.
type denseArray struct {
	path  string
	r     io.ReaderAt
	off   int64
	dims  []int // rows first
	rows  int
	width int // elements per row
	dtype DType
	order binary.ByteOrder
	buf   []byte
}

// mulDims returns the product of dims times elemSize, or an error if a
// dimension is negative or the product exceeds limit (which also guards
// against overflow).
func mulDims(dims []int, elemSize int, limit int64) (int64, error) {
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, dims)
		}
		if d == 0 {
			return 0, nil
		}
	}
	total := int64(elemSize)
	for _, d := range dims {
		if total > limit/int64(d) {
			return 0, fmt.Errorf("shape %v of %d-byte elements exceeds %d bytes", dims, elemSize, limit)
		}
		total *= int64(d)
	}
	return total, nil
}

// newDenseArray checks that a shape of dims (rows first) with elements of
// type t fits exactly in the size-off bytes after off.
func newDenseArray(path string, r io.ReaderAt, off, size int64, dims []int, t DType, bo binary.ByteOrder) (*denseArray, error) {
	if len(dims) == 0 {
		return nil, corruptf(path, "array has no dimensions; want rows first")
	}
	avail := size - off
	need, err := mulDims(dims, t.Size(), max(avail, 0))
	if err != nil {
		return nil, corruptf(path, "header %v: file has %d data bytes", err, avail)
	}
	if need != avail {
		return nil, corruptf(path, "header shape %v of %s needs %d data bytes but the file has %d (truncated or wrong header)", dims, t, need, avail)
	}
	w := 1
	for _, d := range dims[1:] {
		w *= d
	}
	return &denseArray{path: path, r: r, off: off, dims: dims, rows: dims[0], width: w, dtype: t, order: bo}, nil
}

// readRows calls fn with the raw bytes of rows [start, start+n) in pieces of
// at most maxReadBytes (at least one row).
func (a *denseArray) readRows(start, n int, fn func([]byte)) error {
	rowBytes := a.width * a.dtype.Size()
	if rowBytes == 0 {
		return nil
	}
	step := max(1, maxReadBytes/rowBytes)
	for done := 0; done < n; {
		k := min(step, n-done)
		nb := k * rowBytes
		if cap(a.buf) < nb {
			a.buf = make([]byte, nb)
		}
		b := a.buf[:nb]
		off := a.off + int64(start+done)*int64(rowBytes)
		if m, err := a.r.ReadAt(b, off); m < nb {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w: %s: reading rows %d..%d: %w", ErrCorrupt, a.path, start+done, start+done+k, err)
		}
		fn(b)
		done += k
	}
	return nil
}

// appendValues appends the float32 values of rows [start, start+n) to dst.
func (a *denseArray) appendValues(dst []float32, start, n int) ([]float32, error) {
	err := a.readRows(start, n, func(b []byte) { dst = decodeDense(dst, b, a.dtype, a.order) })
	return dst, err
}

// appendLabels appends rows [start, start+n) of a one-value-per-row array
// as integer labels.
func (a *denseArray) appendLabels(dst []int64, start, n int) ([]int64, error) {
	var bad error
	err := a.readRows(start, n, func(b []byte) {
		if bad != nil {
			return
		}
		sz := a.dtype.Size()
		for i := 0; i+sz <= len(b); i += sz {
			v, ok := denseInt(b[i:i+sz], a.dtype, a.order)
			if !ok {
				bad = corruptf(a.path, "label of row %d is not an integer", start+len(dst))
				return
			}
			dst = append(dst, v)
		}
	})
	if err == nil {
		err = bad
	}
	return dst, err
}

// denseInt decodes one element of type t as an integer label; ok is false
// for a non-integral float.
func denseInt(b []byte, t DType, bo binary.ByteOrder) (int64, bool) {
	switch t {
	case Bool, Uint8:
		return int64(b[0]), true
	case Int8:
		return int64(int8(b[0])), true
	case Uint16:
		return int64(bo.Uint16(b)), true
	case Int16:
		return int64(int16(bo.Uint16(b))), true
	case Uint32:
		return int64(bo.Uint32(b)), true
	case Int32:
		return int64(int32(bo.Uint32(b))), true
	case Uint64:
		v := bo.Uint64(b)
		return int64(v), v <= math.MaxInt64
	case Int64:
		return int64(bo.Uint64(b)), true
	}
	switch t {
	case Float16:
		return floatLabel(float64(float16.FromBits(bo.Uint16(b)).Float32()))
	case Float32:
		return floatLabel(float64(math.Float32frombits(bo.Uint32(b))))
	case Float64:
		return floatLabel(math.Float64frombits(bo.Uint64(b)))
	}
	return 0, false
}

// floatLabel converts an integral float to an int64 label.
func floatLabel(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// denseDataset is a Dataset over one dense features array and an optional
// dense labels array (npy, idx).
type denseDataset struct {
	files   []string
	col     Column
	x       *denseArray
	y       *denseArray // nil without labels
	closers []io.Closer
}

// newDenseDataset pairs features x with labels y (which may be nil).
func newDenseDataset(col Column, x, y *denseArray) (*denseDataset, error) {
	d := &denseDataset{files: []string{x.path}, col: col, x: x, y: y}
	if y != nil {
		d.files = append(d.files, y.path)
		if y.width != 1 {
			return nil, fmt.Errorf("%w: labels %s have %d values per row, want 1", ErrShape, y.path, y.width)
		}
		if y.rows != x.rows {
			return nil, fmt.Errorf("%w: %s has %d rows but labels %s have %d", ErrShape, x.path, x.rows, y.path, y.rows)
		}
	}
	return d, nil
}

func (d *denseDataset) Len() int          { return d.x.rows }
func (d *denseDataset) Columns() []Column { return []Column{d.col} }
func (d *denseDataset) Label() bool       { return d.y != nil }
func (d *denseDataset) Files() []string   { return d.files }

func (d *denseDataset) Read(start, n int, dst *Batch) error {
	cols := []Column{d.col}
	dst.reset(cols, d.y != nil)
	n, err := checkRange(start, n, d.x.rows)
	if err != nil {
		return err
	}
	for i := range n {
		dst.Rows = append(dst.Rows, int64(start+i))
	}
	if dst.Cols[d.col.Name], err = d.x.appendValues(dst.Cols[d.col.Name], start, n); err != nil {
		return err
	}
	if d.y != nil {
		if dst.Labels, err = d.y.appendLabels(dst.Labels, start, n); err != nil {
			return err
		}
	}
	return nil
}

func (d *denseDataset) Close() error {
	var errs []error
	for _, c := range d.closers {
		errs = append(errs, c.Close())
	}
	d.closers = nil
	return errors.Join(errs...)
}

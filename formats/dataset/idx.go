package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distill-ml/distill/internal/store"
)

// The idx format (http://yann.lecun.com/exdb/mnist/), all big-endian:
//
//	0x00 0x00 type ndims   dim_0 u32 ... dim_{ndims-1} u32   data (C order)
//
// type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
// 0x0E float64. MNIST images are type 0x08 with dims [N, 28, 28] (idx3),
// labels type 0x08 with dims [N] (idx1).

// maxIDXDims bounds ndims; idx files in the wild have 1 to 4.
const maxIDXDims = 16

// gzipMaxRatio bounds the decompressed size of a gzip stream relative to
// its compressed size: deflate cannot exceed about 1032:1.
const gzipMaxRatio = 1032

// idxDType maps an idx type byte to a DType, or Invalid.
func idxDType(b byte) DType {
	switch b {
	case 0x08:
		return Uint8
	case 0x09:
		return Int8
	case 0x0B:
		return Int16
	case 0x0C:
		return Int32
	case 0x0D:
		return Float32
	case 0x0E:
		return Float64
	}
	return Invalid
}

// idxHeader is a parsed idx header.
type idxHeader struct {
	dtype DType
	dims  []int
	size  int // header bytes
}

// readIDXHeader reads the idx header from r.
func readIDXHeader(path string, r io.Reader) (idxHeader, error) {
	var h idxHeader
	var pre [4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return h, corruptf(path, "truncated idx header: %v", err)
	}
	if pre[0] != 0 || pre[1] != 0 {
		return h, fmt.Errorf("%w: %s: not an idx file (magic %x, want 0000 type ndims)", ErrFormat, path, pre)
	}
	if h.dtype = idxDType(pre[2]); h.dtype == Invalid {
		return h, fmt.Errorf("%w: %s: idx element type 0x%02x; want 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E", ErrUnsupported, path, pre[2])
	}
	nd := int(pre[3])
	if nd == 0 || nd > maxIDXDims {
		return h, corruptf(path, "idx header has %d dimensions; want 1 to %d", nd, maxIDXDims)
	}
	raw := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, raw); err != nil {
		return h, corruptf(path, "truncated idx header: %v", err)
	}
	for i := range nd {
		d := binary.BigEndian.Uint32(raw[4*i:])
		if d > 1<<31-1 {
			return h, corruptf(path, "idx dimension %d is %d", i, d)
		}
		h.dims = append(h.dims, int(d))
	}
	h.size = 4 + 4*nd
	return h, nil
}

// openIDXArray validates the idx file in r (size bytes) and returns it as a
// dense array. A gzip-compressed file is decompressed into memory, at most
// limit bytes.
func openIDXArray(path string, r io.ReaderAt, size, limit int64) (*denseArray, error) {
	var head [2]byte
	if n, _ := r.ReadAt(head[:], 0); n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		return openIDXGzip(path, r, size, limit)
	}
	h, err := readIDXHeader(path, io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	return newDenseArray(path, r, int64(h.size), size, h.dims, h.dtype, binary.BigEndian)
}

// openIDXGzip decompresses a gzip idx file. The header's claimed size is
// checked against limit and against gzipMaxRatio times the compressed size
// before the data buffer is allocated.
func openIDXGzip(path string, r io.ReaderAt, size, limit int64) (*denseArray, error) {
	zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, corruptf(path, "gzip: %v", err)
	}
	defer zr.Close()
	h, err := readIDXHeader(path, zr)
	if err != nil {
		return nil, err
	}
	bound := min(limit, size*gzipMaxRatio)
	need, err := mulDims(h.dims, h.dtype.Size(), bound)
	if err != nil {
		if size*gzipMaxRatio > limit {
			return nil, fmt.Errorf("%w: %s: idx header shape %v needs more than %d bytes in memory; raise Options.MaxInMemoryBytes or gunzip the file", ErrLimit, path, h.dims, limit)
		}
		return nil, corruptf(path, "idx header shape %v is larger than the compressed file could hold", h.dims)
	}
	data := make([]byte, need)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, corruptf(path, "idx data shorter than header shape %v (%d bytes): %v", h.dims, need, err)
	}
	// Reading past the end makes gzip verify its checksum.
	if n, err := zr.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, corruptf(path, "idx data longer than header shape %v", h.dims)
		}
		return nil, corruptf(path, "gzip: %v", err)
	}
	return newDenseArray(path, bytes.NewReader(data), 0, need, h.dims, h.dtype, binary.BigEndian)
}

// openIDX builds a dataset from idx images x and labels y (may be nil). A
// 3-d array [N, H, W] becomes column "image" of shape [1, H, W]; other
// shapes become column o.FeatureName of shape dims[1:].
func openIDX(x *denseArray, dims []int, o *Options, y *denseArray) (*denseDataset, error) {
	if len(dims) < 2 {
		return nil, fmt.Errorf("%w: %s is a 1-d idx file (labels?); open the images file and pass this one as Options.Labels", ErrShape, x.path)
	}
	col := Column{Name: o.FeatureName, DType: x.dtype, Shape: append([]int{}, dims[1:]...)}
	if len(dims) == 3 {
		col.Name, col.Shape = "image", []int{1, dims[1], dims[2]}
	}
	return newDenseDataset(col, x, y)
}

// idxLabelsPath returns the labels file conventionally paired with the idx
// images file at path ("...-images-idx3-ubyte[.gz]" → "...-labels-idx1-ubyte[.gz]"),
// or "" if there is none beside it (on disk, or in the same bucket prefix).
func idxLabelsPath(path string) string {
	dir, base := store.Parent(path), store.Base(path)
	if !strings.Contains(base, "images-idx3") {
		return ""
	}
	lb := strings.Replace(base, "images-idx3", "labels-idx1", 1)
	for _, cand := range []string{lb, strings.TrimSuffix(lb, ".gz"), strings.TrimSuffix(lb, ".gz") + ".gz"} {
		p := store.Join(dir, cand)
		if e, err := store.Stat(context.Background(), p); err == nil && !e.IsDir {
			return p
		}
	}
	return ""
}

// openIDXPath opens an idx file (raw or gzip) as a dense array, returning
// the open file to close (nil when the data was decompressed into memory).
func openIDXPath(path string, limit int64) (*denseArray, []int, io.Closer, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := openIDXArray(path, f, size, limit)
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	if _, inMemory := a.r.(*bytes.Reader); inMemory {
		f.Close()
		return a, a.dims, nil, nil
	}
	return a, a.dims, f, nil
}

func openIDXFile(path string, o *Options) (ds Dataset, err error) {
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	x, dims, c, err := openIDXPath(path, o.MaxInMemoryBytes)
	if err != nil {
		return nil, err
	}
	if c != nil {
		closers = append(closers, c)
	}
	lpath := o.Labels
	if lpath == "" {
		lpath = idxLabelsPath(path)
	}
	var y *denseArray
	if lpath != "" {
		var lc io.Closer
		if y, _, lc, err = openIDXPath(lpath, o.MaxInMemoryBytes); err != nil {
			return nil, err
		}
		if lc != nil {
			closers = append(closers, lc)
		}
	}
	d, err := openIDX(x, dims, o, y)
	if err != nil {
		return nil, err
	}
	d.closers = closers
	return d, nil
}

package dataset

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// npyMagic starts every .npy file. The format
// (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
//
//	"\x93NUMPY" major minor  header_len  header (Python dict literal, '\n'-padded)  data
//	            u8    u8     u16 LE (v1) or u32 LE (v2, v3)
//
// The header is e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }.
const npyMagic = "\x93NUMPY"

// maxNPYHeader bounds the header length we accept; numpy writes a few
// hundred bytes.
const maxNPYHeader = 1 << 20

// npyHeader is a parsed .npy header.
type npyHeader struct {
	dtype   DType
	order   binary.ByteOrder
	shape   []int
	dataOff int64
}

// parseNPYHeader reads and validates the header of the size-byte .npy file
// in r; it checks the header length against size before allocating.
func parseNPYHeader(path string, r io.ReaderAt, size int64) (npyHeader, error) {
	var h npyHeader
	pre := make([]byte, 12)
	n, _ := r.ReadAt(pre, 0)
	if n < 10 || string(pre[:6]) != npyMagic {
		return h, fmt.Errorf("%w: %s: not a .npy file (missing \\x93NUMPY magic)", ErrFormat, path)
	}
	var hlen, hoff int64
	switch pre[6] {
	case 1:
		hlen, hoff = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		if n < 12 {
			return h, corruptf(path, "truncated .npy preamble")
		}
		hlen, hoff = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return h, fmt.Errorf("%w: %s: .npy format version %d.%d; want 1, 2 or 3", ErrUnsupported, path, pre[6], pre[7])
	}
	if hlen > maxNPYHeader || hoff+hlen > size {
		return h, corruptf(path, ".npy header length %d exceeds the file (%d bytes) or the %d-byte limit", hlen, size, maxNPYHeader)
	}
	text := make([]byte, hlen)
	if m, _ := r.ReadAt(text, hoff); int64(m) != hlen {
		return h, corruptf(path, "truncated .npy header")
	}
	h.dataOff = hoff + hlen
	dict, err := parsePyDict(string(text))
	if err != nil {
		return h, corruptf(path, ".npy header %q: %v", text, err)
	}
	descr, ok := dict["descr"].(string)
	if !ok {
		if _, isList := dict["descr"].([]any); isList {
			return h, fmt.Errorf("%w: %s: structured .npy dtype; save a plain numeric array", ErrUnsupported, path)
		}
		return h, corruptf(path, ".npy header has no string 'descr'")
	}
	if h.dtype, h.order, err = npyDType(descr); err != nil {
		return h, fmt.Errorf("%w: %s: %v", ErrUnsupported, path, err)
	}
	if fo, _ := dict["fortran_order"].(bool); fo {
		return h, fmt.Errorf("%w: %s: fortran_order .npy; save it in C order (np.save(path, np.ascontiguousarray(a)))", ErrUnsupported, path)
	}
	shape, ok := dict["shape"].([]any)
	if !ok {
		return h, corruptf(path, ".npy header has no 'shape' tuple")
	}
	for _, d := range shape {
		v, ok := d.(int)
		if !ok {
			return h, corruptf(path, ".npy shape %v is not a tuple of integers", shape)
		}
		h.shape = append(h.shape, v)
	}
	if len(h.shape) == 0 {
		return h, fmt.Errorf("%w: %s: 0-d .npy array has no rows; want shape (rows, ...)", ErrShape, path)
	}
	return h, nil
}

// npyDType maps a numpy type string such as "<f4" to a DType and byte order.
func npyDType(descr string) (DType, binary.ByteOrder, error) {
	if len(descr) < 2 {
		return Invalid, nil, fmt.Errorf("dtype %q", descr)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch descr[0] {
	case '<', '|', '=':
	case '>':
		bo = binary.BigEndian
	default:
		descr = "=" + descr
	}
	t := map[string]DType{
		"b1": Bool, "u1": Uint8, "i1": Int8, "u2": Uint16, "i2": Int16, "u4": Uint32, "i4": Int32,
		"u8": Uint64, "i8": Int64, "f2": Float16, "f4": Float32, "f8": Float64,
	}[descr[1:]]
	if t == Invalid {
		return Invalid, nil, fmt.Errorf("dtype %q; want one of b1, u1..u8, i1..i8, f2, f4, f8", descr)
	}
	return t, bo, nil
}

// parsePyDict parses the Python dict literal of a .npy header. Values are
// strings, bools, ints and tuples or lists of those ([]any).
func parsePyDict(s string) (map[string]any, error) {
	p := &pyParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a dict")
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("trailing text at offset %d", p.i)
	}
	return d, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// value parses one value; depth bounds nesting.
func (p *pyParser) value(depth int) (any, error) {
	if depth > 8 {
		return nil, fmt.Errorf("nesting too deep")
	}
	switch c := p.peek(); {
	case c == '{':
		p.i++
		d := map[string]any{}
		for p.peek() != '}' {
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", k)
			}
			if p.peek() != ':' {
				return nil, fmt.Errorf("want ':' at offset %d", p.i)
			}
			p.i++
			if d[ks], err = p.value(depth + 1); err != nil {
				return nil, err
			}
			if p.peek() == ',' {
				p.i++
			} else if p.peek() != '}' {
				return nil, fmt.Errorf("want ',' or '}' at offset %d", p.i)
			}
		}
		p.i++
		return d, nil
	case c == '(' || c == '[':
		end := byte(')')
		if c == '[' {
			end = ']'
		}
		p.i++
		l := []any{}
		for p.peek() != end {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if p.peek() == ',' {
				p.i++
			} else if p.peek() != end {
				return nil, fmt.Errorf("want ',' or '%c' at offset %d", end, p.i)
			}
		}
		p.i++
		return l, nil
	case c == '\'' || c == '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, fmt.Errorf("unterminated string at offset %d", p.i)
		}
		v := p.s[p.i+1 : p.i+1+j]
		p.i += j + 2
		return v, nil
	case c == '-' || c >= '0' && c <= '9':
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		v, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, fmt.Errorf("integer %q: %v", p.s[p.i:j], err)
		}
		p.i = j
		if p.i < len(p.s) && p.s[p.i] == 'L' { // Python 2 long
			p.i++
		}
		return v, nil
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return nil, fmt.Errorf("unexpected text at offset %d", p.i)
}

// openNPYArray validates the .npy file in r and returns it as a dense array.
func openNPYArray(path string, r io.ReaderAt, size int64) (*denseArray, error) {
	h, err := parseNPYHeader(path, r, size)
	if err != nil {
		return nil, err
	}
	return newDenseArray(path, r, h.dataOff, size, h.shape, h.dtype, h.order)
}

// openNPY builds a dataset from the .npy file in r: one column named
// o.FeatureName with the per-row shape shape[1:], plus labels y (may be nil).
func openNPY(path string, r io.ReaderAt, size int64, o *Options, y *denseArray) (*denseDataset, error) {
	x, err := openNPYArray(path, r, size)
	if err != nil {
		return nil, err
	}
	col := Column{Name: o.FeatureName, DType: x.dtype, Shape: append([]int{}, x.dims[1:]...)}
	return newDenseDataset(col, x, y)
}

func openNPYFile(path string, o *Options) (ds Dataset, err error) {
	var closers []io.Closer
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	closers = append(closers, f)
	var y *denseArray
	if o.Labels != "" {
		lf, lsize, err := openSized(o.Labels)
		if err != nil {
			return nil, err
		}
		closers = append(closers, lf)
		if y, err = openNPYArray(o.Labels, lf, lsize); err != nil {
			return nil, err
		}
	}
	d, err := openNPY(path, f, size, o, y)
	if err != nil {
		return nil, err
	}
	d.closers = closers
	return d, nil
}

// WriteNPY writes data as a NumPy format 1.0 array of the given shape,
// little-endian float32 ('<f4') or int32 ('<i4') in C order: the header
// {'descr': '<f4', 'fortran_order': False, 'shape': (...), } padded with
// spaces and a '\n' so the data starts at a multiple of 64 bytes, then the
// values. It panics if the product of shape is not len(data).
func WriteNPY[T float32 | int32](w io.Writer, shape []int, data []T) error {
	n := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		n *= d
		dims[i] = strconv.Itoa(d)
	}
	if n != len(data) {
		panic(fmt.Sprintf("dataset: WriteNPY: shape %v holds %d values, got %d", shape, n, len(data)))
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += "," // a Python 1-tuple
	}
	descr := "<f4"
	if _, ok := any(data).([]int32); ok {
		descr = "<i4"
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	if pad := 64 - (len(npyMagic)+4+len(header)+1)%64; pad < 64 {
		header += strings.Repeat(" ", pad)
	}
	header += "\n"
	if len(header) > 0xffff {
		return fmt.Errorf("dataset: WriteNPY: a %d-dimensional shape does not fit a version 1.0 header", len(shape))
	}
	buf := make([]byte, 0, len(npyMagic)+4+len(header)+4*len(data))
	buf = append(buf, npyMagic+"\x01\x00"...)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	buf = append(buf, header...)
	switch d := any(data).(type) {
	case []float32:
		for _, v := range d {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	case []int32:
		for _, v := range d {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
		}
	}
	_, err := w.Write(buf)
	return err
}

// WriteNPYFile writes data to the location path (a path or a URL, as Open
// takes) with WriteNPY; the file appears whole or not at all (mode 0644),
// and a local folder must exist.
func WriteNPYFile[T float32 | int32](path string, shape []int, data []T) error {
	_, err := writeAtomic(path, func(w io.Writer) error { return WriteNPY(w, shape, data) })
	return err
}

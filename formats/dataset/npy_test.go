package dataset

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestNPYDTypes(t *testing.T) {
	t.Parallel()
	le, be := binary.AppendByteOrder(binary.LittleEndian), binary.AppendByteOrder(binary.BigEndian)
	// Values every dtype represents exactly, including a negative for the
	// signed ones.
	unsigned := []float64{0, 1, 2, 200, 7, 9}
	signed := []float64{0, -1, 2, -100, 7, 9}
	floats := []float64{0.5, -1.25, 2, 1024, float64(math.Inf(1)), 9}
	for _, tc := range []struct {
		descr string
		dt    DType
		bo    binary.AppendByteOrder
		vals  []float64
	}{
		{"|u1", Uint8, le, unsigned},
		{"|i1", Int8, le, signed},
		{"|b1", Bool, le, []float64{0, 1, 1, 0, 1, 0}},
		{"<u2", Uint16, le, unsigned},
		{"<i2", Int16, le, signed},
		{"<u4", Uint32, le, unsigned},
		{"<i4", Int32, le, signed},
		{"<u8", Uint64, le, unsigned},
		{"<i8", Int64, le, signed},
		{"<f2", Float16, le, floats},
		{"<f4", Float32, le, floats},
		{"<f8", Float64, le, floats},
		{">f4", Float32, be, floats},
		{">i8", Int64, be, signed},
		{">f2", Float16, be, floats},
	} {
		for _, version := range []int{1, 2, 3} {
			t.Run(tc.descr+"/v"+string(rune('0'+version)), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				data := encodeDense(tc.dt, tc.bo, tc.vals)
				p := writeFile(t, dir, "x.npy", npyBytes(version, tc.descr, false, []int{3, 2}, data))
				d, err := Open(p, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				want := Column{Name: DefaultFeatureName, DType: tc.dt, Shape: []int{2}}
				if got := d.Columns(); len(got) != 1 || got[0].Name != want.Name || got[0].DType != want.DType || !slices.Equal(got[0].Shape, want.Shape) {
					t.Fatalf("Columns() = %+v, want [%+v]", got, want)
				}
				if d.Len() != 3 || d.Label() {
					t.Fatalf("Len() = %d, Label() = %v; want 3, false", d.Len(), d.Label())
				}
				b := readAll(t, d, 2)
				wantVals := make([]float32, len(tc.vals))
				for i, v := range tc.vals {
					wantVals[i] = float32(v)
				}
				if !eqFloats(b.Cols["input"], wantVals) {
					t.Errorf("values = %v, want %v", b.Cols["input"], wantVals)
				}
				if !slices.Equal(b.Rows, []int64{0, 1, 2}) {
					t.Errorf("rows = %v", b.Rows)
				}
			})
		}
	}
}

func TestNPYShapesAndLabels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vals := make([]float64, 4*2*3)
	for i := range vals {
		vals[i] = float64(i)
	}
	x := writeFile(t, dir, "x.npy", npyBytes(1, "<f4", false, []int{4, 2, 3}, encodeDense(Float32, binary.LittleEndian, vals)))
	y := writeFile(t, dir, "y.npy", npyBytes(1, "<i8", false, []int{4}, encodeDense(Int64, binary.LittleEndian, []float64{3, 1, 4, 1})))
	d, err := Open(x, &Options{Labels: y, FeatureName: "pixels"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := d.Columns()[0]
	if c.Name != "pixels" || !slices.Equal(c.Shape, []int{2, 3}) || c.Width() != 6 {
		t.Fatalf("column = %+v", c)
	}
	if !slices.Equal(d.Files(), []string{x, y}) {
		t.Errorf("Files() = %v", d.Files())
	}
	var b Batch
	if err := d.Read(1, 2, &b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Labels, []int64{1, 4}) || !slices.Equal(b.Rows, []int64{1, 2}) || len(b.Cols["pixels"]) != 12 || b.Cols["pixels"][0] != 6 {
		t.Fatalf("batch = %+v", b)
	}
	if err := d.Read(4, 1, &b); err != io.EOF || b.Len() != 0 {
		t.Errorf("Read past end = %v (len %d), want io.EOF", err, b.Len())
	}
	if err := d.Read(-1, 1, &b); err == nil {
		t.Error("Read(-1) succeeded")
	}
	if err := d.Read(3, 100, &b); err != nil || b.Len() != 1 {
		t.Errorf("Read(3, 100) = %v, %d rows; want 1 row", err, b.Len())
	}

	// A 1-d array is one scalar per row.
	s := writeFile(t, dir, "s.npy", npyBytes(1, "<f8", false, []int{3}, encodeDense(Float64, binary.LittleEndian, []float64{1, 2, 3})))
	d2, err := Open(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if c := d2.Columns()[0]; len(c.Shape) != 0 || c.Width() != 1 {
		t.Errorf("1-d column = %+v, want scalar", c)
	}
	// Float labels must be integral.
	yf := writeFile(t, dir, "yf.npy", npyBytes(1, "<f4", false, []int{4}, encodeDense(Float32, binary.LittleEndian, []float64{1, 2, 2.5, 3})))
	d3, err := Open(x, &Options{Labels: yf})
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	if err := d3.Read(0, 4, &b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("non-integral label: err = %v, want ErrCorrupt", err)
	}
}

func TestNPYErrors(t *testing.T) {
	t.Parallel()
	good := encodeDense(Float32, binary.LittleEndian, []float64{1, 2, 3, 4, 5, 6})
	for _, tc := range []struct {
		name    string
		file    []byte
		labels  []byte
		want    error
		message string
	}{
		{"fortran", npyBytes(1, "<f4", true, []int{3, 2}, good), nil, ErrUnsupported, "fortran_order"},
		{"truncated", npyBytes(1, "<f4", false, []int{3, 2}, good[:20]), nil, ErrCorrupt, "truncated"},
		{"trailing", npyBytes(1, "<f4", false, []int{2, 2}, good), nil, ErrCorrupt, "needs 16 data bytes"},
		{"huge dims", npyBytes(1, "<f4", false, []int{1 << 40, 1 << 40}, good), nil, ErrCorrupt, "exceeds"},
		{"negative dim", npyBytes(1, "<f4", false, []int{-3, 2}, good), nil, ErrCorrupt, "negative"},
		{"string dtype", npyBytes(1, "<U4", false, []int{3, 2}, good), nil, ErrUnsupported, "dtype"},
		{"complex dtype", npyBytes(1, "<c8", false, []int{3}, good), nil, ErrUnsupported, "dtype"},
		{"0-d", npyBytes(1, "<f4", false, nil, good[:4]), nil, ErrShape, "0-d"},
		{"bad magic", append([]byte("\x93NUMPX"), make([]byte, 20)...), nil, ErrFormat, "magic"},
		{"version 9", append([]byte("\x93NUMPY\x09\x00"), make([]byte, 20)...), nil, ErrUnsupported, "version"},
		{"header past end", []byte("\x93NUMPY\x01\x00\xff\xff{}"), nil, ErrCorrupt, "header length"},
		{"empty", nil, nil, ErrFormat, "magic"},
		{"label count", npyBytes(1, "<f4", false, []int{3, 2}, good), npyBytes(1, "<i8", false, []int{2}, make([]byte, 16)), ErrShape, "labels"},
		{"label width", npyBytes(1, "<f4", false, []int{3, 2}, good), npyBytes(1, "|u1", false, []int{3, 2}, make([]byte, 6)), ErrShape, "values per row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := &Options{}
			if tc.labels != nil {
				o.Labels = writeFile(t, dir, "y.npy", tc.labels)
			}
			d, err := Open(writeFile(t, dir, "x.npy", tc.file), o)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Open error = %v, want %v mentioning %q", err, tc.want, tc.message)
			}
		})
	}
}

func TestParsePyDict(t *testing.T) {
	t.Parallel()
	d, err := parsePyDict(`{"descr": '<f8', 'fortran_order': False, 'shape': (2L, 3), 'extra': [1, 'a'], }`)
	if err != nil {
		t.Fatal(err)
	}
	if d["descr"] != "<f8" || d["fortran_order"] != false || len(d["shape"].([]any)) != 2 {
		t.Errorf("parsed %v", d)
	}
	for _, bad := range []string{"", "{", "{'a' 1}", "{'a': (1, 2}", "{1: 2}", "{'a': x}", "{'a': 1} x", strings.Repeat("(", 20)} {
		if _, err := parsePyDict(bad); err == nil {
			t.Errorf("parsePyDict(%q) succeeded", bad)
		}
	}
}

package dataset

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestIDX(t *testing.T) {
	t.Parallel()
	be := binary.BigEndian
	// 3 images of 2×2 pixels, labels 7 3 9.
	pix := []byte{0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252}
	labels := idxBytes(0x08, []int{3}, []byte{7, 3, 9})
	for _, tc := range []struct {
		name   string
		images []byte
		gz     bool
		col    Column
		want   []float32
	}{
		{"ubyte", idxBytes(0x08, []int{3, 2, 2}, pix), false, Column{"image", Uint8, []int{1, 2, 2}}, nil},
		{"ubyte gz", idxBytes(0x08, []int{3, 2, 2}, pix), true, Column{"image", Uint8, []int{1, 2, 2}}, nil},
		{"float32 2-d", idxBytes(0x0D, []int{3, 4}, encodeDense(Float32, be, []float64{0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252})), false, Column{"input", Float32, []int{4}}, nil},
		{"int16 4-d", idxBytes(0x0B, []int{3, 1, 2, 2}, encodeDense(Int16, be, []float64{0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252})), true, Column{"input", Int16, []int{1, 2, 2}}, nil},
		{"sbyte", idxBytes(0x09, []int{3, 2, 2}, pix), false, Column{"image", Int8, []int{1, 2, 2}},
			[]float32{0, 1, 2, 3, 10, 11, 12, 13, -1, -2, -3, -4}},
		{"int32", idxBytes(0x0C, []int{3, 2, 2}, encodeDense(Int32, be, []float64{0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252})), false, Column{"image", Int32, []int{1, 2, 2}}, nil},
		{"float64", idxBytes(0x0E, []int{3, 2, 2}, encodeDense(Float64, be, []float64{0, 1, 2, 3, 10, 11, 12, 13, 255, 254, 253, 252})), false, Column{"image", Float64, []int{1, 2, 2}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			im, lb := tc.images, labels
			name, lname := "d-images-idx3-ubyte", "d-labels-idx1-ubyte"
			if tc.gz {
				im, lb = gzipBytes(im), gzipBytes(lb)
				name += ".gz"
				lname += ".gz"
			}
			p := writeFile(t, dir, name, im)
			lp := writeFile(t, dir, lname, lb)
			d, err := Open(p, nil) // labels paired by name
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if c := d.Columns()[0]; c.Name != tc.col.Name || c.DType != tc.col.DType || !slices.Equal(c.Shape, tc.col.Shape) {
				t.Errorf("column = %+v, want %+v", c, tc.col)
			}
			if !slices.Equal(d.Files(), []string{p, lp}) {
				t.Errorf("Files() = %v", d.Files())
			}
			b := readAll(t, d, 2)
			want := tc.want
			if want == nil {
				for _, v := range pix {
					want = append(want, float32(v))
				}
			}
			if !eqFloats(b.Cols[tc.col.Name], want) || !slices.Equal(b.Labels, []int64{7, 3, 9}) {
				t.Errorf("read %v labels %v", b.Cols[tc.col.Name], b.Labels)
			}
		})
	}
}

func TestIDXExplicitLabelsAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pix := make([]byte, 3*2*2)
	im := writeFile(t, dir, "img.idx3", idxBytes(0x08, []int{3, 2, 2}, pix))
	lb := writeFile(t, dir, "lab.idx1", idxBytes(0x08, []int{3}, []byte{1, 2, 3}))
	d, err := Open(im, &Options{Labels: lb})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Label() {
		t.Error("Label() = false with Options.Labels")
	}
	d.Close()
	d, err = Open(im, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Label() {
		t.Error("Label() = true without a labels file")
	}
	d.Close()

	for _, tc := range []struct {
		name, file string
		data       []byte
		labels     []byte
		want       error
		message    string
		limit      int64
	}{
		{"truncated", "a-idx3-ubyte", idxBytes(0x08, []int{3, 2, 2}, pix[:5]), nil, ErrCorrupt, "truncated", 0},
		{"truncated gz", "a-idx3-ubyte.gz", gzipBytes(idxBytes(0x08, []int{3, 2, 2}, pix[:5])), nil, ErrCorrupt, "shorter", 0},
		{"gz trailing", "a-idx3-ubyte.gz", gzipBytes(idxBytes(0x08, []int{1, 2, 2}, pix)), nil, ErrCorrupt, "longer", 0},
		{"gz huge", "a-idx3-ubyte.gz", gzipBytes(idxBytes(0x08, []int{1 << 30, 1 << 20, 4}, pix)), nil, ErrCorrupt, "compressed file", 0},
		{"gz limit", "a-idx3-ubyte.gz", gzipBytes(idxBytes(0x08, []int{3, 2, 2}, pix)), nil, ErrLimit, "MaxInMemoryBytes", 8},
		{"gz bad", "a-idx3-ubyte.gz", []byte{0x1f, 0x8b, 1, 2, 3}, nil, ErrCorrupt, "gzip", 0},
		{"huge dims", "a-idx3-ubyte", idxBytes(0x08, []int{1 << 30, 1 << 30, 1 << 30}, pix), nil, ErrCorrupt, "exceeds", 0},
		{"bad type", "a-idx3-ubyte", idxBytes(0x07, []int{3, 2, 2}, pix), nil, ErrUnsupported, "element type", 0},
		{"bad magic", "a-idx3-ubyte", append([]byte{1, 2, 8, 3}, pix...), nil, ErrFormat, "magic", 0},
		{"zero dims", "a-idx3-ubyte", []byte{0, 0, 8, 0}, nil, ErrCorrupt, "dimensions", 0},
		{"1-d", "a-idx1-ubyte", idxBytes(0x08, []int{3}, pix[:3]), nil, ErrShape, "Options.Labels", 0},
		{"label count", "a-idx3-ubyte", idxBytes(0x08, []int{3, 2, 2}, pix), idxBytes(0x08, []int{2}, pix[:2]), ErrShape, "labels", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			o := &Options{MaxInMemoryBytes: 1 << 20}
			if tc.limit > 0 {
				o.MaxInMemoryBytes = tc.limit
			}
			if tc.labels != nil {
				o.Labels = writeFile(t, dir, "labels-idx1-ubyte", tc.labels)
			}
			d, err := Open(writeFile(t, dir, tc.file, tc.data), o)
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

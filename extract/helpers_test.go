//go:build cgo

package extract

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/distill-ml/distill/formats/dataset"
)

// writeTwoInputs writes x4.npy split into two fixed_size_list<float32>[2]
// columns a and b (the two_inputs.onnx fixture's inputs), plus the labels,
// as an Arrow IPC file.
func writeTwoInputs(t testing.TB) string {
	t.Helper()
	ds, err := dataset.Open(tiny+"x4.npy", &dataset.Options{Labels: tiny + "y4.npy"})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var b dataset.Batch
	if err := ds.Read(0, ds.Len(), &b); err != nil {
		t.Fatal(err)
	}
	x := b.Cols[ds.Columns()[0].Name]
	mem := memory.NewGoAllocator()
	pair := arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: pair}, {Name: "b", Type: pair}, {Name: "label", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	for i := 0; i < b.Len(); i++ {
		for c, off := range []int{0, 2} {
			lb := rb.Field(c).(*array.FixedSizeListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(x[i*4+off:i*4+off+2], nil)
		}
		rb.Field(2).(*array.Int64Builder).Append(b.Labels[i])
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	path := filepath.Join(t.TempDir(), "two.arrow")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

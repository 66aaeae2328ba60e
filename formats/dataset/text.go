package dataset

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// How plain text files are cut into documents (TextOptions.Split).
const (
	// SplitBlank makes each run of non-blank lines one document.
	SplitBlank = "blank"
	// SplitLine makes each non-blank line one document.
	SplitLine = "line"
	// SplitNone makes each file one document.
	SplitNone = "none"
)

// Defaults of TextOptions.
const (
	// DefaultTextField is the JSONL field and the Parquet/Arrow column
	// holding the text.
	DefaultTextField = "text"
	// DefaultMaxDocumentBytes bounds one document (and one JSONL line):
	// tokenizing a document holds some 40 bytes per byte of it in memory
	// (llama2.c's merge list), so 8 MiB costs about 320 MiB per worker.
	DefaultMaxDocumentBytes = 8 << 20
)

// TextOptions configures how Documents reads text files. The zero value,
// and a nil *TextOptions, select the documented defaults.
type TextOptions struct {
	// Split cuts plain text files into documents: SplitBlank (default)
	// at blank lines (empty or only white space), SplitLine at every line,
	// SplitNone not at all. JSONL, Parquet and Arrow files hold one
	// document per line or row whatever Split says.
	Split string
	// JoinBlocks joins that many consecutive blank-line blocks into one
	// document, separated by a newline, with SplitBlank: a language
	// model's training stream often marks stories, not paragraphs
	// (../shared/peers/seq_targets.py joins 8 per BOS). 0 or 1: every
	// block is a document.
	JoinBlocks int
	// TextField names the string field of each JSONL object and the
	// string column of Parquet and Arrow files. Default: DefaultTextField.
	TextField string
	// MaxDocumentBytes bounds one document, one line and one JSONL line;
	// a longer one is an error wrapping ErrLimit. Default:
	// DefaultMaxDocumentBytes.
	MaxDocumentBytes int64
	// MaxInMemoryBytes caps any single Arrow buffer read from a Parquet
	// or Arrow input (a decompressed page, the string data of a record
	// batch); a larger one is an error wrapping ErrLimit. Default:
	// DefaultMaxInMemoryBytes.
	MaxInMemoryBytes int64
	// Allocator allocates the Arrow memory of Parquet and Arrow reads.
	// Default: memory.DefaultAllocator.
	Allocator memory.Allocator
}

// withDefaults returns o with its defaults filled in, or an error for an
// unknown Split.
func (o *TextOptions) withDefaults() (TextOptions, error) {
	var v TextOptions
	if o != nil {
		v = *o
	}
	switch v.Split {
	case "":
		v.Split = SplitBlank
	case SplitBlank, SplitLine, SplitNone:
	default:
		return v, fmt.Errorf("dataset: text split %q: want %s, %s or %s", v.Split, SplitBlank, SplitLine, SplitNone)
	}
	if v.JoinBlocks < 0 || v.JoinBlocks > 1<<20 {
		return v, fmt.Errorf("dataset: join %d blocks: want 1..%d", v.JoinBlocks, 1<<20)
	}
	if v.JoinBlocks == 0 {
		v.JoinBlocks = 1
	}
	if v.TextField == "" {
		v.TextField = DefaultTextField
	}
	if v.MaxDocumentBytes <= 0 {
		v.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if v.MaxInMemoryBytes <= 0 {
		v.MaxInMemoryBytes = DefaultMaxInMemoryBytes
	}
	if v.Allocator == nil {
		v.Allocator = memory.DefaultAllocator
	}
	return v, nil
}

// arrowAllocator returns o.Allocator limited to o.MaxInMemoryBytes per
// allocation (see recovered).
func (o *TextOptions) arrowAllocator() memory.Allocator {
	return limitAllocator{o.Allocator, o.MaxInMemoryBytes}
}

// Document is one text document read from a file.
type Document struct {
	// Path is the file it comes from.
	Path string
	// Number is its 1-based ordinal among the file's documents.
	Number int
	// Line is the 1-based line it starts on (plain text and JSONL), or 0.
	Line int
	// Row is its 0-based row (Parquet and Arrow), or -1.
	Row int64
	// Text is the document. Plain text documents are never empty; a JSONL
	// field or a Parquet/Arrow value may be.
	Text string
}

// Where returns "path:line" or "path row N".
func (d Document) Where() string {
	if d.Row >= 0 {
		return fmt.Sprintf("%s row %d", d.Path, d.Row)
	}
	return fmt.Sprintf("%s:%d", d.Path, d.Line)
}

// DocumentError reports a document (or JSONL line) that cannot be read or
// tokenized, with its position, as encoding/csv's ParseError does.
type DocumentError struct {
	Path   string
	Number int   // 1-based document ordinal in the file, 0 if unknown
	Line   int   // 1-based line (plain text, JSONL), or 0
	Row    int64 // 0-based row (Parquet, Arrow), or -1
	Err    error
}

func (e *DocumentError) Error() string {
	where := fmt.Sprintf("%s:%d", e.Path, e.Line)
	if e.Row >= 0 {
		where = fmt.Sprintf("%s row %d", e.Path, e.Row)
	}
	if e.Number > 0 {
		where += fmt.Sprintf(" (document %d)", e.Number)
	}
	return where + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DocumentError) Unwrap() error { return e.Err }

// docError returns a DocumentError for d.
func docError(d Document, err error) *DocumentError {
	return &DocumentError{Path: d.Path, Number: d.Number, Line: d.Line, Row: d.Row, Err: err}
}

// TextFormat returns the kind of text file path is, by its extension:
// "text" (.txt, .text, .md), "jsonl" (.jsonl, .json: one JSON object per
// line), "parquet" (.parquet, .pq) or "arrow" (.arrow, .ipc, .feather,
// .arrows: Arrow IPC file or stream, told apart by content). Another
// extension is an error wrapping ErrFormat.
func TextFormat(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".txt", ".text", ".md":
		return "text", nil
	case ".jsonl", ".json":
		return "jsonl", nil
	case ".parquet", ".pq":
		return "parquet", nil
	case ".arrow", ".ipc", ".feather", ".arrows":
		return "arrow", nil
	}
	return "", fmt.Errorf("%w: %s: want a text file (.txt, .text, .md), JSON Lines (.jsonl, .json), Parquet (.parquet) or Arrow IPC (.arrow, .ipc, .feather)", ErrFormat, path)
}

// Documents returns an iterator over the documents of the text file at
// the location path (a path or a URL, as Open takes; see TextFormat) in
// file order: plain text cut per opts.Split,
// then one document per JSONL line (blank lines skipped) or Parquet/Arrow
// row. It reads in bounded memory: a line, or one record batch, at a
// time. Iteration stops after the first error; a bad document or line is
// a *DocumentError.
func Documents(path string, opts *TextOptions) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		o, err := opts.withDefaults()
		if err != nil {
			yield(Document{}, err)
			return
		}
		stop := errors.New("stop")
		_, err = readDocuments(path, &o, func(d Document) error {
			if !yield(d, nil) {
				return stop
			}
			return nil
		}, nil)
		if err != nil && err != stop {
			yield(Document{}, err)
		}
	}
}

// readDocuments calls emit for each document of the file at path, in
// order, and pos with the approximate number of the file's bytes
// consumed so far (pos may be nil). It returns the file's SHA-256 (hex)
// once it has read it all, and the first error of emit unchanged.
func readDocuments(path string, o *TextOptions, emit func(Document) error, pos func(int64)) (sum string, err error) {
	format, err := TextFormat(path)
	if err != nil {
		return "", err
	}
	if pos == nil {
		pos = func(int64) {}
	}
	switch format {
	case "parquet", "arrow":
		if sum, err = FileSHA256(path); err != nil {
			return "", err
		}
		if format == "parquet" {
			return sum, readParquetText(path, o, emit, pos)
		}
		return sum, readArrowText(path, o, emit, pos)
	}
	f, _, err := openSized(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(f, h), pos: func(int64) {}}
	lr := &lineReader{br: bufio.NewReaderSize(cr, 256<<10), max: o.MaxDocumentBytes, path: path, cr: cr, pos: pos}
	switch {
	case format == "jsonl":
		err = readJSONL(lr, o, emit)
	case o.Split == SplitNone:
		err = readWhole(cr, path, o, emit)
	default:
		err = readLines(lr, o, emit)
	}
	if err != nil {
		return "", err
	}
	return hashRest(h, cr)
}

// hashRest reads what is left of r (nothing, normally) into h and returns
// h's sum in hex.
func hashRest(h hash.Hash, r io.Reader) (string, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// countReader counts the bytes read through it and reports the total.
type countReader struct {
	r   io.Reader
	n   int64
	pos func(int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.pos(c.n)
	return n, err
}

// utf8BOM is the byte order mark some editors put at the start of a file.
const utf8BOM = "\ufeff"

// lineReader reads lines of at most max bytes.
type lineReader struct {
	br   *bufio.Reader
	max  int64
	path string
	line int // lines read so far
	buf  []byte
	cr   *countReader // under br
	pos  func(int64)  // called with the bytes consumed after each line
}

// next returns the next line without its "\n" or "\r\n" (and, on line 1,
// without a UTF-8 byte order mark), valid until the next call; ok is
// false at the end of the file.
func (r *lineReader) next() (line []byte, ok bool, err error) {
	r.buf = r.buf[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		r.buf = append(r.buf, frag...)
		if int64(len(r.buf)) > r.max+2 { // + "\r\n"
			return nil, false, &DocumentError{Path: r.path, Line: r.line + 1, Row: -1,
				Err: fmt.Errorf("%w: the line is longer than %d bytes", ErrLimit, r.max)}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.buf) == 0 {
				return nil, false, nil
			}
			break
		}
		if err != nil {
			return nil, false, err
		}
		break
	}
	r.line++
	r.pos(r.cr.n - int64(r.br.Buffered()))
	line = bytes.TrimSuffix(r.buf, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if r.line == 1 {
		line = bytes.TrimPrefix(line, []byte(utf8BOM))
	}
	return line, true, nil
}

// blank reports whether line is empty or only white space.
func blank(line []byte) bool {
	return len(bytes.TrimLeft(line, " \t\r\v\f")) == 0
}

// readLines reads a plain text file split at blank lines or at lines.
func readLines(lr *lineReader, o *TextOptions, emit func(Document) error) error {
	var doc []byte
	blocks, inBlock := 0, false // blank-line blocks complete in doc (JoinBlocks); a block is open
	d := Document{Path: lr.path, Row: -1}
	flush := func() error {
		if len(doc) == 0 {
			return nil
		}
		d.Number++
		d.Text = string(doc)
		doc = doc[:0]
		return emit(d)
	}
	for {
		line, ok, err := lr.next()
		if err != nil || !ok {
			if err == nil {
				err = flush()
			}
			return err
		}
		if blank(line) {
			if inBlock { // the end of a block (a run of blank lines counts once)
				blocks, inBlock = blocks+1, false
			}
			if len(doc) > 0 && blocks < o.JoinBlocks {
				continue // the next block joins this document
			}
			blocks = 0
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if len(doc) == 0 {
			d.Line = lr.line
		} else {
			if int64(len(doc)+1+len(line)) > o.MaxDocumentBytes {
				return &DocumentError{Path: lr.path, Number: d.Number + 1, Line: d.Line, Row: -1,
					Err: fmt.Errorf("%w: the document is longer than %d bytes; split the text into smaller documents (at blank lines or lines) or raise the limit", ErrLimit, o.MaxDocumentBytes)}
			}
			doc = append(doc, '\n')
		}
		doc = append(doc, line...)
		inBlock = true
		if o.Split == SplitLine {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// readWhole reads a plain text file as one document.
func readWhole(r io.Reader, path string, o *TextOptions, emit func(Document) error) error {
	data, err := io.ReadAll(io.LimitReader(r, o.MaxDocumentBytes+int64(len(utf8BOM))+1))
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	if int64(len(data)) > o.MaxDocumentBytes {
		return &DocumentError{Path: path, Number: 1, Line: 1, Row: -1,
			Err: fmt.Errorf("%w: the file, one document when not split, is longer than %d bytes; split it at blank lines or lines, or raise the limit", ErrLimit, o.MaxDocumentBytes)}
	}
	if len(data) == 0 {
		return nil
	}
	return emit(Document{Path: path, Number: 1, Line: 1, Row: -1, Text: string(data)})
}

// readJSONL reads one JSON object per line and its o.TextField string.
func readJSONL(lr *lineReader, o *TextOptions, emit func(Document) error) error {
	d := Document{Path: lr.path, Row: -1}
	var obj map[string]json.RawMessage
	for {
		line, ok, err := lr.next()
		if err != nil || !ok {
			return err
		}
		if blank(line) {
			continue
		}
		d.Number++
		d.Line = lr.line
		clear(obj)
		if err := json.Unmarshal(line, &obj); err != nil || obj == nil {
			if err == nil {
				err = errors.New("null")
			}
			return docError(d, fmt.Errorf("%w: want one JSON object per line (JSON Lines): %v", ErrCorrupt, err))
		}
		raw, ok := obj[o.TextField]
		if !ok {
			return docError(d, fmt.Errorf("%w: the object has no field %q (fields: %s)", ErrColumn, o.TextField, fieldList(obj)))
		}
		if t := jsonKind(raw); t != "string" {
			return docError(d, fmt.Errorf("%w: field %q is %s, want a string", ErrColumn, o.TextField, t))
		}
		if err := json.Unmarshal(raw, &d.Text); err != nil {
			return docError(d, fmt.Errorf("%w: field %q: %v", ErrCorrupt, o.TextField, err))
		}
		if err := emit(d); err != nil {
			return err
		}
	}
}

// jsonKind names the kind of a JSON value by its first byte.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// fieldList lists the keys of obj, sorted, for messages.
func fieldList(obj map[string]json.RawMessage) string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	if len(keys) == 0 {
		return "none"
	}
	slices.Sort(keys)
	if len(keys) > 10 {
		keys = append(keys[:10], "...")
	}
	return strings.Join(keys, ", ")
}

// stringValues is the part of the Arrow string arrays the readers use.
type stringValues interface {
	arrow.Array
	Value(i int) string
}

// textColumn checks that sc has a string field o.TextField and returns
// its index.
func textColumn(path string, sc *arrow.Schema, o *TextOptions) (int, error) {
	idx := sc.FieldIndices(o.TextField)
	if len(idx) == 0 {
		var names []string
		for _, f := range sc.Fields() {
			switch f.Type.ID() {
			case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
				names = append(names, fmt.Sprintf("%q", f.Name))
			}
		}
		have := "none"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return 0, fmt.Errorf("%w: %s: no column %q (string columns: %s); name the text column", ErrColumn, path, o.TextField, have)
	}
	switch t := sc.Field(idx[0]).Type; t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
	default:
		return 0, fmt.Errorf("%w: %s: column %q has type %s; want a string column", ErrColumn, path, o.TextField, t)
	}
	return idx[0], nil
}

// emitColumn emits rows of a string array as documents numbered from
// d.Row + 1; it copies each value out of the Arrow buffers.
func emitColumn(arr arrow.Array, d *Document, emit func(Document) error) error {
	sv, ok := arr.(stringValues)
	if !ok {
		return corruptf(d.Path, "column is %s, not a string array", arr.DataType())
	}
	for i := range sv.Len() {
		d.Row++
		d.Number++
		if sv.IsNull(i) {
			return docError(*d, fmt.Errorf("%w: the text is null; fill or drop the row", ErrShape))
		}
		d.Text = strings.Clone(sv.Value(i))
		if err := emit(*d); err != nil {
			return err
		}
	}
	return nil
}

// textBatchBytes is the target size of one record batch read from a
// Parquet text file.
const textBatchBytes = 8 << 20

// readParquetText reads the o.TextField column of a Parquet file, one
// record batch at a time.
func readParquetText(path string, o *TextOptions, emit func(Document) error, pos func(int64)) (err error) {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	defer recovered(&err, path)
	mem := o.arrowAllocator()
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		return corruptf(path, "parquet: %v", err)
	}
	defer pf.Close()
	if err := checkStoredSchema(path, pf); err != nil {
		return err
	}
	var rows, bytesPerRow int64 = 0, 1
	for i := range pf.NumRowGroups() {
		rg := pf.MetaData().RowGroup(i)
		rows += rg.NumRows()
		if rg.NumRows() > 0 {
			bytesPerRow = max(bytesPerRow, rg.TotalByteSize()/rg.NumRows())
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: min(max(textBatchBytes/bytesPerRow, 1), 4096)}, mem)
	if err != nil {
		return corruptf(path, "parquet: %v", err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return corruptf(path, "parquet schema: %v", err)
	}
	ci, err := textColumn(path, sc, o)
	if err != nil {
		return err
	}
	leaf := -1
	if mf := &fr.Manifest.Fields[ci]; mf.IsLeaf() {
		leaf = mf.ColIndex
	}
	if leaf < 0 {
		return fmt.Errorf("%w: %s: column %q is not a flat string column", ErrColumn, path, o.TextField)
	}
	if rows == 0 {
		return nil
	}
	rr, err := fr.GetRecordReader(context.Background(), []int{leaf}, nil)
	if err != nil {
		return corruptf(path, "parquet: %v", err)
	}
	defer rr.Release()
	d := Document{Path: path, Row: -1}
	for rr.Next() {
		rec := rr.RecordBatch()
		if err := emitColumn(rec.Column(0), &d, emit); err != nil {
			return err
		}
		pos(size * (d.Row + 1) / rows)
	}
	if err := rr.Err(); err != nil && err != io.EOF {
		return corruptf(path, "parquet: reading row %d: %v", d.Row+1, err)
	}
	if d.Row+1 != rows {
		return corruptf(path, "parquet: read %d of %d rows", d.Row+1, rows)
	}
	return nil
}

// checkStoredSchema decodes the Arrow schema a Parquet file may store
// (key ARROW:schema, an IPC message in base64) before pqarrow does:
// pqarrow reads it with the default allocator, so a corrupt message body
// length could ask for gigabytes, and a corrupt vector length loop for
// minutes. Here the flatbuffer is verified first, and no allocation may
// exceed the message itself.
func checkStoredSchema(path string, pf *file.Reader) (err error) {
	v := pf.MetaData().KeyValueMetadata().FindValue("ARROW:schema")
	if v == nil {
		return nil
	}
	// Decoded as pqarrow does: standard base64, else unpadded.
	var decoded []byte
	if len(*v)%4 == 0 {
		decoded, err = base64.StdEncoding.DecodeString(*v)
	}
	if len(decoded) == 0 || err != nil {
		if decoded, err = base64.RawStdEncoding.DecodeString(*v); err != nil {
			return nil // pqarrow reports it
		}
	}
	defer recovered(&err, path)
	// The flatbuffer check bounds vectors and tables (a corrupt count
	// would make arrow-go loop or allocate for ages), the allocator the
	// body.
	if _, err := scanIPC(path, bytes.NewReader(decoded), 0, int64(len(decoded))); err != nil {
		return corruptf(path, "parquet: stored Arrow schema: %v", err)
	}
	r, err := ipc.NewReader(bytes.NewReader(decoded), ipc.WithAllocator(limitAllocator{memory.DefaultAllocator, int64(len(decoded))}))
	if err != nil {
		return corruptf(path, "parquet: stored Arrow schema: %v", err)
	}
	r.Release()
	return nil
}

// readArrowText reads the o.TextField column of an Arrow IPC file or
// stream (Hugging Face datasets writes streams named .arrow), one record
// batch at a time. Both are read as a stream (a file holds one between
// its magic and its footer), after the message headers have been
// verified as openIPC does: arrow-go trusts the counts and sizes in them.
func readArrowText(path string, o *TextOptions, emit func(Document) error, pos func(int64)) (err error) {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	defer recovered(&err, path)
	start, end := int64(0), size
	var head [len(ipcMagic)]byte
	if n, _ := f.ReadAt(head[:], 0); n == len(head) && string(head[:]) == ipcMagic {
		if start, end, err = ipcFileMessages(path, f, end); err != nil {
			return err
		}
	}
	if _, err := scanIPC(path, f, start, end); err != nil {
		return err
	}
	cr := &countReader{r: io.NewSectionReader(f, start, end-start), pos: func(n int64) { pos(start + n) }}
	sr, err := ipc.NewReader(bufio.NewReaderSize(cr, 1<<20), ipc.WithAllocator(o.arrowAllocator()))
	if err != nil {
		return corruptf(path, "arrow: %v", err)
	}
	defer sr.Release()
	ci, err := textColumn(path, sr.Schema(), o)
	if err != nil {
		return err
	}
	d := Document{Path: path, Row: -1}
	for sr.Next() {
		if err := emitColumn(sr.RecordBatch().Column(ci), &d, emit); err != nil {
			return err
		}
	}
	if err := sr.Err(); err != nil && err != io.EOF {
		return corruptf(path, "arrow: %v", err)
	}
	return nil
}

package formats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Format is the container a part file is written in.
type Format string

// Part file formats.
const (
	// FormatArrow is the Arrow IPC file format ("Feather v2"), extension
	// .arrow: fastest to read, random access to each record batch.
	FormatArrow Format = "arrow"
	// FormatParquet is Apache Parquet, extension .parquet: smallest, read by
	// every data tool; one row group per batch.
	FormatParquet Format = "parquet"
)

// Ext returns the file extension of f, with the dot.
func (f Format) Ext() string { return "." + string(f) }

// Compression is the codec applied to column data inside a part file.
type Compression string

// Codecs. Arrow IPC supports all three as buffer compression; Parquet
// uses them as page compression (lz4 is Parquet's LZ4_RAW).
const (
	CompressionNone Compression = "none"
	CompressionLZ4  Compression = "lz4"
	CompressionZstd Compression = "zstd"
)

// Defaults of WriterOptions.
const (
	DefaultRowsPerBatch  = 65536    // rows per IPC record batch / Parquet row group
	DefaultMaxBatchValue = 16 << 20 // the default RowsPerBatch is lowered so a batch holds at most this many bytes of values
)

// WriterOptions configures a Writer or CacheWriter. The zero value, or a nil
// *WriterOptions, means all defaults.
type WriterOptions struct {
	// Format is the container; default FormatArrow.
	Format Format
	// Compression is the codec; default CompressionNone for FormatArrow,
	// CompressionZstd for FormatParquet.
	Compression Compression
	// RowsPerBatch is the number of rows per record batch (Arrow) or row
	// group (Parquet), the unit of random access. Every batch of a part has
	// exactly RowsPerBatch rows except the last. Default DefaultRowsPerBatch,
	// lowered so that one batch holds at most DefaultMaxBatchValue bytes.
	RowsPerBatch int
	// Allocator is used for Arrow buffers; default memory.DefaultAllocator.
	Allocator memory.Allocator
	// Metadata is added to the Arrow schema metadata of the part. Keys set
	// by Schema take precedence.
	Metadata map[string]string
}

// resolve returns opts with every default filled in, validated.
func (o *WriterOptions) resolve(cfg Config) (WriterOptions, error) {
	var r WriterOptions
	if o != nil {
		r = *o
	}
	if r.Format == "" {
		r.Format = FormatArrow
	}
	if r.Format != FormatArrow && r.Format != FormatParquet {
		return r, fmt.Errorf("formats: unknown format %q, want arrow or parquet", r.Format)
	}
	if r.Compression == "" {
		r.Compression = CompressionNone
		if r.Format == FormatParquet {
			r.Compression = CompressionZstd
		}
	}
	switch r.Compression {
	case CompressionNone, CompressionLZ4, CompressionZstd:
	default:
		return r, fmt.Errorf("formats: unknown compression %q, want none, lz4 or zstd", r.Compression)
	}
	if r.RowsPerBatch < 0 {
		return r, fmt.Errorf("formats: RowsPerBatch %d < 0", r.RowsPerBatch)
	}
	if r.RowsPerBatch == 0 {
		r.RowsPerBatch = defaultRowsPerBatch(cfg)
	}
	if r.Allocator == nil {
		r.Allocator = memory.DefaultAllocator
	}
	return r, nil
}

// DefaultRowsPerBatchFor returns the RowsPerBatch that a zero
// WriterOptions gives for cfg: DefaultRowsPerBatch, lowered so that one
// batch holds at most DefaultMaxBatchValue bytes of values. For an invalid
// cfg it returns DefaultRowsPerBatch.
func DefaultRowsPerBatchFor(cfg Config) int {
	cfg, err := cfg.normalize()
	if err != nil {
		return DefaultRowsPerBatch
	}
	return defaultRowsPerBatch(cfg)
}

// defaultRowsPerBatch is DefaultRowsPerBatchFor for a normalized cfg.
func defaultRowsPerBatch(cfg Config) int {
	per := cfg.rawRowBytes()
	if lim := int(DefaultMaxBatchValue / per); lim < DefaultRowsPerBatch {
		return max(lim, 1)
	}
	return DefaultRowsPerBatch
}

// Writer writes one part file: cache rows in the schema of a Config, in
// Arrow IPC file format or Parquet. Rows are regrouped into batches of
// exactly RowsPerBatch rows, whatever the sizes of the Batches written.
// A Writer is not safe for concurrent use.
type Writer struct {
	cfg    Config
	cols   []column
	schema *arrow.Schema
	opts   WriterOptions

	ipcw *ipc.FileWriter
	pqw  *pqarrow.FileWriter
	cw   *countWriter

	pend    [][]byte // per column, the pending rows' values as little-endian bytes
	n       int      // pending rows
	rows    int64
	batches int
	err     error // sticky
	closed  bool

	idx []int32   // top-k scratch
	val []float32 // top-k scratch
	lse []float32 // top-k scratch
	lp  []float32 // top-k log-probability scratch (Config.TopKLogProbs)
	cnt []int32   // sample-count scratch (Config.Samples)

	// Sampled caches (ragged columns): the pending rows' entry counts,
	// and scratch.
	rowLen           []int32
	ent              []sampledEntry
	dist, tmpI, tmpC []int32
	tmpF             []float32
}

// countWriter counts bytes and hides any Close method of the underlying
// writer from arrow's writers.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewWriter starts a part file on w with the schema Schema(cfg) plus
// opts.Metadata. It writes the file header immediately. A nil opts means
// defaults. It returns an error wrapping ErrSchema for an invalid cfg.
func NewWriter(w io.Writer, cfg Config, opts *WriterOptions) (*Writer, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	o, err := opts.resolve(cfg)
	if err != nil {
		return nil, err
	}
	wr := &Writer{cfg: cfg, cols: cfg.columns(), opts: o, cw: &countWriter{w: w}}
	wr.schema = schemaOf(cfg, o.Metadata)
	wr.pend = make([][]byte, len(wr.cols))
	switch o.Format {
	case FormatArrow:
		iopts := []ipc.Option{ipc.WithSchema(wr.schema), ipc.WithAllocator(o.Allocator)}
		switch o.Compression {
		case CompressionLZ4:
			iopts = append(iopts, ipc.WithLZ4())
		case CompressionZstd:
			iopts = append(iopts, ipc.WithZstd())
		}
		wr.ipcw, err = ipc.NewFileWriter(wr.cw, iopts...)
	case FormatParquet:
		codec := compress.Codecs.Uncompressed
		switch o.Compression {
		case CompressionLZ4:
			codec = compress.Codecs.Lz4Raw
		case CompressionZstd:
			codec = compress.Codecs.Zstd
		}
		pprops := []parquet.WriterProperty{
			parquet.WithAllocator(o.Allocator),
			parquet.WithCompression(codec),
			parquet.WithDictionaryDefault(false),
			parquet.WithMaxRowGroupLength(int64(o.RowsPerBatch)),
			parquet.WithCreatedBy("distill formats " + Version),
			// Min/max statistics help readers skip row groups by row id;
			// over scores and ids they cost ~9 % of the encoding and
			// select nothing.
			parquet.WithStats(false),
			parquet.WithStatsFor(ColRow, true),
		}

		// BYTE_STREAM_SPLIT groups the bytes of float32 values by
		// significance, which compresses ~7% better with zstd on logits;
		// every current Parquet reader decodes it for FLOAT. Float16 and
		// integer columns stay PLAIN for older readers.
		for _, col := range wr.cols {
			if col.kind == kFloat32 {
				path := parquet.ColumnPath{col.name}
				if col.width > 0 {
					path = parquet.ColumnPath{col.name, "list", "element"}
				}
				pprops = append(pprops, parquet.WithEncodingPath(path, parquet.Encodings.ByteStreamSplit))
			}
		}
		props := parquet.NewWriterProperties(pprops...)
		aprops := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(o.Allocator))
		wr.pqw, err = pqarrow.NewFileWriter(wr.schema, wr.cw, props, aprops)
	}
	if err != nil {
		return nil, fmt.Errorf("formats: start %s part: %w", o.Format, err)
	}
	return wr, nil
}

// Config returns the normalized configuration the writer was created with.
func (w *Writer) Config() Config { return w.cfg }

// Schema returns the Arrow schema of the part, including metadata.
func (w *Writer) Schema() *arrow.Schema { return w.schema }

// Rows returns the number of rows written so far (including buffered ones).
func (w *Writer) Rows() int64 { return w.rows + int64(w.n) }

// Write appends the rows of b. Float values are converted to float16 where
// the config says so. When the config stores top-k and b has only full
// Logits (Len()*C values), Write derives topk_index, topk_logit and
// logsumexp from them (see TopK). Write validates every column's length,
// top-k ids and order, and returns an error without writing anything if b
// is inconsistent; after an I/O error every later call fails.
func (w *Writer) Write(b *Batch) error {
	if w.closed {
		return errors.New("formats: write to closed Writer")
	}
	if w.err != nil {
		return w.err
	}
	derive, err := b.check(w.cfg)
	if err != nil {
		return err
	}
	for r := 0; r < b.Len(); {
		m := min(b.Len()-r, w.opts.RowsPerBatch-w.n)
		w.appendRows(b, r, r+m, derive)
		r += m
		w.n += m
		if w.n == w.opts.RowsPerBatch {
			if err := w.flush(); err != nil {
				w.err = err
				return err
			}
		}
	}
	return nil
}

// appendRows appends rows [r0, r1) of b to the pending buffers.
func (w *Writer) appendRows(b *Batch, r0, r1 int, derive bool) {
	P, k := w.cfg.positions(), w.cfg.TopK
	var idx, cnt []int32
	var val, lse []float32
	if k > 0 && derive {
		// One top-k per score vector: m rows of P positions each.
		c, m := w.cfg.Classes, (r1-r0)*P
		p0 := r0 * P
		w.idx = slices.Grow(w.idx[:0], m*k)[:m*k]
		w.val = slices.Grow(w.val[:0], m*k)[:m*k]
		w.lse = slices.Grow(w.lse[:0], m)[:m]
		if w.cfg.Samples > 0 {
			w.cnt = slices.Grow(w.cnt[:0], m*k)[:m*k]
			for r := 0; r < m; r++ {
				row, t := b.Rows[r0+r/P], r%P
				rng := rand.New(rand.NewPCG(w.cfg.SampleSeed, uint64(row)<<20+uint64(t)))
				w.lse[r] = Sample(w.idx[r*k:(r+1)*k], w.val[r*k:(r+1)*k], w.cnt[r*k:(r+1)*k], b.Logits[(p0+r)*c:(p0+r+1)*c],
					w.cfg.Samples, w.cfg.SampleTemperature, rng)
			}
		} else {
			for r := 0; r < m; r++ {
				w.lse[r] = TopK(w.idx[r*k:(r+1)*k], w.val[r*k:(r+1)*k], b.Logits[(p0+r)*c:(p0+r+1)*c])
			}
		}
		idx, val, lse, cnt = w.idx, w.val, w.lse, w.cnt
	} else if k > 0 {
		idx, val, lse = b.TopKIndex[r0*P*k:r1*P*k], b.TopKLogit[r0*P*k:r1*P*k], b.LogSumExp[r0*P:r1*P]
		if w.cfg.Samples > 0 {
			cnt = b.SampleCount[r0*P*k : r1*P*k]
		}
	}
	if w.cfg.Samples > 0 {
		w.appendSampled(r1-r0, idx, w.topKStored(val, lse), cnt)
	}
	for i, col := range w.cols {
		v := col.values()
		switch col.role {
		case roleRow:
			w.pend[i] = append(w.pend[i], arrow.Int64Traits.CastToBytes(b.Rows[r0:r1])...)
		case roleLabel:
			w.pend[i] = append(w.pend[i], arrow.Int64Traits.CastToBytes(b.Labels[r0*v:r1*v])...)
		case roleTopKIndex:
			if !col.ragged {
				w.pend[i] = appendInts(w.pend[i], col.kind, idx)
			}
		case roleTopKLogit:
			if !col.ragged {
				w.pend[i] = appendFloats(w.pend[i], col.kind, w.topKStored(val, lse))
			}
		case roleLogSumExp:
			w.pend[i] = appendFloats(w.pend[i], col.kind, lse)
		case roleLogits:
			w.pend[i] = appendFloats(w.pend[i], col.kind, b.Logits[r0*v:r1*v])
		case roleHidden:
			w.pend[i] = appendFloats(w.pend[i], col.kind, b.Hidden[col.key][r0*v:r1*v])
		case roleInput:
			w.pend[i] = appendFloats(w.pend[i], col.kind, b.Inputs[col.key][r0*v:r1*v])
		}
	}
}

// appendSampled appends n rows of a sampled cache, given as Batch slots
// (k per position: ids, stored scores and counts, count 0 for padding), to
// the ragged columns: per position, the slots with a count, by ascending
// id, and their number to sample_distinct; w.rowLen gets each row's
// number of entries.
func (w *Writer) appendSampled(n int, idx []int32, stored []float32, cnt []int32) {
	P, k := w.cfg.positions(), w.cfg.TopK
	var pi, pv, pc, pd int
	var kd colKind
	for i, col := range w.cols {
		switch col.role {
		case roleTopKIndex:
			pi = i
		case roleTopKLogit:
			pv, kd = i, col.kind
		case roleSampleCount:
			pc = i
		case roleSampleDistinct:
			pd = i
		}
	}
	w.ent, w.dist = w.ent[:0], w.dist[:0]
	for r := range n {
		total := 0
		for t := range P {
			q := r*P + t
			e0 := len(w.ent)
			for j := q * k; j < (q+1)*k; j++ {
				if cnt[j] > 0 {
					w.ent = append(w.ent, sampledEntry{idx[j], stored[j], cnt[j]})
				}
			}
			e := w.ent[e0:]
			slices.SortFunc(e, func(a, b sampledEntry) int { return int(a.id - b.id) })
			w.dist = append(w.dist, int32(len(e)))
			total += len(e)
		}
		w.rowLen = append(w.rowLen, int32(total))
	}
	w.pend[pd] = appendInts(w.pend[pd], w.cols[pd].kind, w.dist)
	w.tmpI, w.tmpF, w.tmpC = w.tmpI[:0], w.tmpF[:0], w.tmpC[:0]
	for _, e := range w.ent {
		w.tmpI, w.tmpF, w.tmpC = append(w.tmpI, e.id), append(w.tmpF, e.val), append(w.tmpC, e.cnt)
	}
	w.pend[pi] = appendInts(w.pend[pi], w.cols[pi].kind, w.tmpI)
	w.pend[pv] = appendFloats(w.pend[pv], kd, w.tmpF)
	w.pend[pc] = appendInts(w.pend[pc], w.cols[pc].kind, w.tmpC)
}

// sampledEntry is one drawn id of a sampled cache position.
type sampledEntry struct {
	id  int32
	val float32
	cnt int32
}

// topKStored returns the top-k scores as stored: vals itself, or with
// Config.TopKLogProbs vals − lse per position (computed in float64),
// in a buffer reused across calls.
func (w *Writer) topKStored(vals, lse []float32) []float32 {
	if !w.cfg.TopKLogProbs {
		return vals
	}
	k := w.cfg.TopK
	w.lp = slices.Grow(w.lp[:0], len(vals))[:len(vals)]
	for i, v := range vals {
		w.lp[i] = float32(float64(v) - float64(lse[i/k]))
	}
	return w.lp
}

// appendInts appends src as k (int32, or a narrower unsigned kind whose
// range the caller has checked: ids below Classes, counts up to Samples),
// little-endian.
func appendInts(dst []byte, k colKind, src []int32) []byte {
	switch k {
	case kUint8:
		for _, v := range src {
			dst = append(dst, byte(v))
		}
		return dst
	case kUint16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(v))
		}
		return dst
	}
	return append(dst, arrow.Int32Traits.CastToBytes(src)...) // int32 and uint32 share the bytes of 0..2^31−1
}

func appendFloats(dst []byte, k colKind, src []float32) []byte {
	if k == kFloat32 {
		return append(dst, arrow.Float32Traits.CastToBytes(src)...)
	}
	n := len(dst)
	dst = slices.Grow(dst, 2*len(src))[:n+2*len(src)]
	for i, f := range src {
		h := f32ToF16(f)
		dst[n+2*i] = byte(h)
		dst[n+2*i+1] = byte(h >> 8)
	}
	return dst
}

// flush writes the pending rows as one record batch / row group.
func (w *Writer) flush() (err error) {
	if w.n == 0 {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("formats: write batch %d: %v", w.batches, p)
		}
	}()
	if w.ipcw != nil {
		arrs := make([]arrow.Array, len(w.cols))
		for i := range w.cols {
			arrs[i] = w.array(i, 0, w.n)
			defer arrs[i].Release()
		}
		rec := array.NewRecordBatch(w.schema, arrs, int64(w.n))
		defer rec.Release()
		err = w.ipcw.Write(rec)
	} else {
		err = w.writeRowGroup()
	}
	if err != nil {
		return fmt.Errorf("formats: write batch %d: %w", w.batches, err)
	}
	w.rows += int64(w.n)
	w.batches++
	w.n = 0
	for i := range w.pend {
		w.pend[i] = w.pend[i][:0]
	}
	w.rowLen = w.rowLen[:0]
	return nil
}

// array returns column i of pending rows [r0, r1) as an Arrow array on
// the pending bytes (no copy); a ragged column only whole (0, w.n).
func (w *Writer) array(i, r0, r1 int) arrow.Array {
	col := w.cols[i]
	var data arrow.ArrayData
	if col.ragged {
		buf := memory.NewBufferBytes(w.pend[i])
		offs := make([]int32, w.n+1)
		for r, l := range w.rowLen {
			offs[r+1] = offs[r] + l
		}
		child := array.NewData(col.kind.arrow(), int(offs[w.n]), []*memory.Buffer{nil, buf}, nil, 0, 0)
		data = array.NewData(col.arrowType(), w.n, []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs))}, []arrow.ArrayData{child}, 0, 0)
		child.Release()
		a := array.MakeFromData(data)
		data.Release()
		return a
	}
	per := col.values() * col.kind.size()
	buf := memory.NewBufferBytes(w.pend[i][r0*per : r1*per])
	n := r1 - r0
	if col.width == 0 {
		data = array.NewData(col.kind.arrow(), n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	} else {
		child := array.NewData(col.kind.arrow(), n*col.width, []*memory.Buffer{nil, buf}, nil, 0, 0)
		data = array.NewData(col.arrowType(), n, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0)
		child.Release()
	}
	a := array.MakeFromData(data)
	data.Release()
	return a
}

// pqChunkValues bounds the values of a column that the Parquet writer
// converts at once (writeRowGroup).
const pqChunkValues = 1 << 18

// writeRowGroup writes the pending rows as one Parquet row group, as
// pqarrow.FileWriter.Write of one record batch would, but hands each
// fixed-width column to it as a chunked array of pieces of about
// pqChunkValues values, each on its own range of the pending bytes (not
// Arrow slices of one array, which pqarrow wrote as other bytes): pqarrow
// converts what it is given at once, and a float16 value becomes a
// 24-byte parquet.FixedLenByteArray, so a row group of 7.3 MiB of float16
// top-k scores (3.8M values) took a 92 MB slice in one piece
// (TestParquetRowGroupHeap). Every piece holds a multiple of 1024 values
// (the column writer's mini-batch, after which it checks the page size),
// so the pages, and the file, are the same bytes as from one Write
// (checked on seven configurations, zstd and uncompressed). Ragged
// columns (a few values a row) are written whole. As after pqarrow's own
// WriteTable, the row group stays open until the next one or Close; its
// column writers have copied the values by then (the PLAIN encoders copy,
// and only the row column keeps statistics), so flush may reuse pend.
func (w *Writer) writeRowGroup() error {
	if err := w.pqw.NewRowGroupChecked(); err != nil {
		return err
	}
	for i, col := range w.cols {
		var chunks []arrow.Array
		step := w.n
		if !col.ragged {
			step = chunkRows(col)
		}
		for r := 0; r < w.n; r += step {
			chunks = append(chunks, w.array(i, r, min(r+step, w.n)))
		}
		ch := arrow.NewChunked(chunks[0].DataType(), chunks)
		for _, c := range chunks {
			c.Release()
		}
		err := w.pqw.WriteColumnChunked(ch, 0, int64(w.n))
		ch.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// chunkRows returns the rows of col that writeRowGroup writes at once:
// about pqChunkValues values, a multiple of 1024 of them.
func chunkRows(col column) int {
	v := col.values()
	step := 1024 / gcd(v, 1024) // rows per multiple of 1024 values
	return max(step, pqChunkValues/v/step*step)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Close writes any buffered rows and the file footer. It does not close the
// underlying io.Writer. Calling Close again returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.flush()
	}
	var cerr error
	if w.ipcw != nil {
		cerr = w.ipcw.Close()
	} else {
		cerr = w.pqw.Close()
	}
	if err == nil && cerr != nil {
		err = fmt.Errorf("formats: close %s part: %w", w.opts.Format, cerr)
	}
	w.pend = nil
	return err
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

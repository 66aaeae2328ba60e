package formats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/distill-ml/distill/internal/store"
)

// DefaultMaxBatchBytes is the default of ReaderOptions.MaxBatchBytes.
const DefaultMaxBatchBytes = 256 << 20

// maxMetaBytes bounds the footer / message metadata a reader accepts.
const maxMetaBytes = 16 << 20

// ReaderOptions configures a Reader or Cache. The zero value, or a nil
// *ReaderOptions, means all defaults.
type ReaderOptions struct {
	// MaxBatchBytes bounds the memory one batch may take to decode. A batch
	// whose size, as declared by the file, exceeds it is refused with an
	// error wrapping ErrTooLarge before anything is allocated for it, and
	// decoding buffers are allocated from an allocator that refuses to go
	// beyond twice this. Peak memory while reading a batch is thus about
	// 3 × MaxBatchBytes. Default DefaultMaxBatchBytes (256 MiB).
	MaxBatchBytes int64
	// Allocator is the parent of the bounded decoding allocator; default
	// memory.DefaultAllocator. No Arrow memory outlives a call.
	Allocator memory.Allocator
	// AllowMissingShards lets Open succeed on a sharded cache when some
	// shards are missing (Cache.MissingShards lists them); by default Open
	// fails with an error wrapping ErrIncomplete.
	AllowMissingShards bool
	// SkipHashCheck turns off a Cache's check of each part file against
	// the sha256 its manifest records, which by default reads the whole
	// part once, the first time the Cache opens it (about 0.7 s per GB on
	// a core with SHA extensions), and fails every read of a part that
	// does not match with a *CorruptError. Verify hashes every part
	// itself, whatever this says. Readers of a single part (NewReader,
	// OpenReader) have no manifest and ignore it.
	SkipHashCheck bool
}

func (o *ReaderOptions) resolve() ReaderOptions {
	var r ReaderOptions
	if o != nil {
		r = *o
	}
	if r.MaxBatchBytes <= 0 {
		r.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if r.Allocator == nil {
		r.Allocator = memory.DefaultAllocator
	}
	return r
}

// Reader reads one part file, Arrow IPC or Parquet (detected from its magic
// bytes), with random access to its batches. It is safe for concurrent
// use; concurrent reads of one Reader are serialized.
type Reader struct {
	path   string
	closer io.Closer
	ra     io.ReaderAt
	size   int64
	blocks []ipcBlock // record batch blocks of an Arrow IPC file
	format Format
	opts   ReaderOptions
	alloc  *limitAlloc

	schema   *arrow.Schema
	cfg      Config
	cols     []column
	leaves   []int     // Parquet leaf column indices, one per column
	manifest *Manifest // nil if the part has no MetaManifest

	mu   sync.Mutex
	ipcr *ipc.FileReader
	pqf  *file.Reader
	pqr  *pqarrow.FileReader
}

// OpenReader opens the part file at path, a path or a store location
// (see NewReader; a remote file is read with range requests through a
// read-ahead buffer). Close closes the file.
func OpenReader(path string, opts *ReaderOptions) (*Reader, error) {
	f, err := store.Open(ctxBG, path)
	if err != nil {
		return nil, fmt.Errorf("formats: %w", err)
	}
	r, err := newReader(path, f, f.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a part file of size bytes from r. It decodes the footer
// and schema and checks that the schema is a cache schema (see
// ConfigFromSchema). Undecodable bytes yield a *CorruptError; a bad schema
// an error wrapping ErrSchema or ErrVersion.
func NewReader(r io.ReaderAt, size int64, opts *ReaderOptions) (*Reader, error) {
	return newReader("", r, size, opts)
}

func newReader(path string, ra io.ReaderAt, size int64, opts *ReaderOptions) (rd *Reader, err error) {
	o := opts.resolve()
	r := &Reader{path: path, ra: ra, size: size, opts: o}
	r.alloc = &limitAlloc{parent: o.Allocator, limit: 2*o.MaxBatchBytes + maxMetaBytes}
	var magic [6]byte
	if n, _ := ra.ReadAt(magic[:], 0); n < 4 {
		return nil, corrupt(path, -1, errors.New("file too short"))
	}
	sr := io.NewSectionReader(ra, 0, size)
	err = guard(func() error {
		switch {
		case bytes.Equal(magic[:], []byte("ARROW1")):
			r.format = FormatArrow
			blocks, err := checkIPCFooter(ra, size)
			if err != nil {
				return err
			}
			r.blocks = blocks
			ir, err := ipc.NewFileReader(sr,
				ipc.WithAllocator(r.alloc),
				ipc.WithBodySizeLimit(o.MaxBatchBytes),
				ipc.WithMetadataSizeLimit(maxMetaBytes))
			if err != nil {
				return err
			}
			r.ipcr = ir
			r.schema = ir.Schema()
		case bytes.Equal(magic[:4], []byte("PAR1")):
			r.format = FormatParquet
			props := parquet.NewReaderProperties(r.alloc)
			props.BufferedStreamEnabled = true
			props.BufferSize = 1 << 20
			props.MaxCompressedPageSize = min(o.MaxBatchBytes, parquet.DefaultMaxCompressedPageSize)
			props.MaxUncompressedPageSize = o.MaxBatchBytes
			pf, err := file.NewParquetReader(sr, file.WithReadProps(props))
			if err != nil {
				return err
			}
			r.pqf = pf
			if v := pf.MetaData().KeyValueMetadata().FindValue("ARROW:schema"); v != nil {
				if err := checkArrowSchemaMessage(*v); err != nil {
					return err
				}
			}
			pr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: false, BatchSize: 1 << 16}, r.alloc)
			if err != nil {
				return err
			}
			r.pqr = pr
			if r.schema, err = pr.Schema(); err != nil {
				return err
			}
		default:
			return errors.New("not an Arrow IPC file or Parquet file (bad magic bytes)")
		}
		return nil
	})
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err != nil {
		return nil, corrupt(path, -1, err)
	}
	if err = guard(func() (err error) { r.cfg, err = ConfigFromSchema(r.schema); return err }); err != nil {
		if path != "" {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	r.cols = r.cfg.columns()
	r.leaves = make([]int, len(r.cols))
	for i := range r.leaves {
		r.leaves[i] = i
	}
	if i := r.schema.Metadata().FindKey(MetaManifest); i >= 0 {
		m, err := ParseManifest([]byte(r.schema.Metadata().Values()[i]))
		if err != nil {
			return nil, corrupt(path, -1, fmt.Errorf("embedded manifest: %w", err))
		}
		r.manifest = &m
	}
	if err := guard(r.checkLayout); err != nil {
		return nil, corrupt(path, -1, err)
	}
	return r, nil
}

// checkLayout validates the Parquet footer's row groups: column chunks inside
// the file, each within the size limits.
func (r *Reader) checkLayout() error {
	if r.pqf == nil {
		return nil
	}
	md := r.pqf.MetaData()
	if nc := md.Schema.NumColumns(); nc != len(r.cols) {
		return fmt.Errorf("parquet file has %d leaf columns, schema has %d", nc, len(r.cols))
	}
	for g := 0; g < r.pqf.NumRowGroups(); g++ {
		rg := md.RowGroup(g)
		if rg.NumRows() < 0 || rg.NumColumns() != len(r.cols) {
			return fmt.Errorf("row group %d: %d rows, %d columns", g, rg.NumRows(), rg.NumColumns())
		}
		for c := 0; c < rg.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				return fmt.Errorf("row group %d column %d: %w", g, c, err)
			}
			start, n := cc.DataPageOffset(), cc.TotalCompressedSize()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			if start < 4 || n < 0 || n > r.size || start > r.size-n {
				return fmt.Errorf("row group %d column %d: chunk [%d, +%d) outside file of %d bytes", g, c, start, n, r.size)
			}
		}
	}
	return nil
}

// Close releases the reader and closes the file if OpenReader opened it.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ipcr != nil {
		r.ipcr.Close()
		r.ipcr = nil
	}
	if r.pqf != nil {
		r.pqf.Close()
		r.pqf, r.pqr = nil, nil
	}
	if r.closer != nil {
		err := r.closer.Close()
		r.closer = nil
		return err
	}
	return nil
}

// Format returns the container format of the part.
func (r *Reader) Format() Format { return r.format }

// Schema returns the part's Arrow schema, with metadata.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// Config returns the cache Config recovered from the schema.
func (r *Reader) Config() Config { return r.cfg }

// Manifest returns the manifest copy embedded in the part's metadata (no
// parts list) and whether there is one.
func (r *Reader) Manifest() (Manifest, bool) {
	if r.manifest == nil {
		return Manifest{}, false
	}
	return *r.manifest, true
}

// NumBatches returns the number of record batches (Arrow) or row groups
// (Parquet) in the part.
func (r *Reader) NumBatches() int {
	if r.ipcr != nil {
		return r.ipcr.NumRecords()
	}
	if r.pqf != nil {
		return r.pqf.NumRowGroups()
	}
	return 0
}

// maxRows is the largest row count a batch may have under MaxBatchBytes.
func (r *Reader) maxRows() int64 {
	return r.opts.MaxBatchBytes / r.cfg.rowBytes()
}

// ReadBatch decodes batch i into dst, replacing its contents and reusing
// its slices' capacity. Float16 columns are returned as float32. A batch
// that does not decode, has nulls or columns of inconsistent lengths yields
// a *CorruptError; one larger than MaxBatchBytes an error wrapping
// ErrTooLarge.
func (r *Reader) ReadBatch(i int, dst *Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ipcr == nil && r.pqf == nil {
		return errors.New("formats: read from closed Reader")
	}
	if i < 0 || i >= r.NumBatches() {
		return fmt.Errorf("formats: batch %d out of range [0, %d)", i, r.NumBatches())
	}
	defer r.alloc.reset()
	err := guard(func() error {
		if r.ipcr != nil {
			return r.readIPC(i, dst)
		}
		return r.readParquet(i, dst)
	})
	if err != nil && !errors.Is(err, ErrTooLarge) {
		return corrupt(r.path, i, err)
	}
	return err
}

func (r *Reader) readIPC(i int, dst *Batch) error {
	if len(r.blocks) != r.ipcr.NumRecords() {
		return errors.New("footer changed")
	}
	rows, err := checkIPCMessage(r.ra, r.size, r.blocks[i], len(r.cols))
	if err != nil {
		return err
	}
	if rows > r.maxRows() {
		return r.tooLarge(i, rows)
	}
	var rec arrow.RecordBatch
	err = guard(func() (err error) {
		rec, err = r.ipcr.RecordBatchAt(i)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "exceeds limit") { // ipc.WithBodySizeLimit
			return fmt.Errorf("%w: batch %d: %v", ErrTooLarge, i, err)
		}
		return err
	}
	defer rec.Release()
	chunks := make([][]arrow.Array, len(r.cols))
	if int(rec.NumCols()) != len(r.cols) {
		return fmt.Errorf("record has %d columns, want %d", rec.NumCols(), len(r.cols))
	}
	for c := range r.cols {
		chunks[c] = []arrow.Array{rec.Column(c)}
	}
	return r.fill(dst, rec.NumRows(), chunks)
}

func (r *Reader) readParquet(i int, dst *Batch) error {
	rg := r.pqf.MetaData().RowGroup(i)
	rows := rg.NumRows()
	if rows > r.maxRows() {
		return r.tooLarge(i, rows)
	}
	var total int64
	for c := 0; c < rg.NumColumns(); c++ {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			return err
		}
		if cc.NumValues() > rows*int64(r.cols[c].values()) || cc.TotalUncompressedSize() < 0 {
			return fmt.Errorf("column %s: %d values for %d rows", r.cols[c].name, cc.NumValues(), rows)
		}
		total += cc.TotalUncompressedSize()
	}
	if total > 2*r.opts.MaxBatchBytes {
		return fmt.Errorf("%w: row group %d declares %d bytes, limit %d", ErrTooLarge, i, total, r.opts.MaxBatchBytes)
	}
	var tbl arrow.Table
	err := guard(func() (err error) {
		tbl, err = r.pqr.ReadRowGroups(context.Background(), r.leaves, []int{i})
		return err
	})
	if err != nil {
		return err
	}
	defer tbl.Release()
	if int(tbl.NumCols()) != len(r.cols) {
		return fmt.Errorf("row group has %d columns, want %d", tbl.NumCols(), len(r.cols))
	}
	chunks := make([][]arrow.Array, len(r.cols))
	for c := range r.cols {
		chunks[c] = tbl.Column(c).Data().Chunks()
	}
	if tbl.NumRows() != rows {
		return fmt.Errorf("row group declares %d rows, decoded %d", rows, tbl.NumRows())
	}
	return r.fill(dst, rows, chunks)
}

func (r *Reader) tooLarge(i int, rows int64) error {
	return fmt.Errorf("%w: batch %d has %d rows of %d bytes, limit %d bytes", ErrTooLarge, i, rows, r.cfg.rowBytes(), r.opts.MaxBatchBytes)
}

// fill copies decoded columns into dst after checking every length.
func (r *Reader) fill(dst *Batch, rows int64, chunks [][]arrow.Array) error {
	if rows < 0 {
		return fmt.Errorf("negative row count %d", rows)
	}
	if rows > r.maxRows() {
		return r.tooLarge(-1, rows)
	}
	n := int(rows)
	// Check every column and collect its value slices before touching dst.
	views := make([][]values, len(r.cols))
	for c, col := range r.cols {
		got := 0
		for _, a := range chunks[c] {
			v, err := chunkValues(col, a)
			if err != nil {
				return fmt.Errorf("column %s: %w", col.name, err)
			}
			views[c] = append(views[c], v)
			got += a.Len()
		}
		if got != n {
			return fmt.Errorf("column %s has %d rows, batch has %d", col.name, got, n)
		}
	}
	dst.Reset()
	var sp sampledParts
	for c, col := range r.cols {
		nv := n * col.values()
		if col.ragged || col.role == roleSampleDistinct {
			if err := sp.collect(col, views[c]); err != nil {
				return fmt.Errorf("column %s: %w", col.name, err)
			}
			continue
		}
		switch col.role {
		case roleRow:
			dst.Rows = slices.Grow(dst.Rows[:0], nv)
			for _, v := range views[c] {
				dst.Rows = append(dst.Rows, v.i64...)
			}
			continue
		case roleLabel:
			dst.Labels = slices.Grow(dst.Labels[:0], nv)
			for _, v := range views[c] {
				dst.Labels = append(dst.Labels, v.i64...)
			}
			continue
		case roleSampleCount:
			dst.SampleCount = slices.Grow(dst.SampleCount[:0], nv)
			for _, v := range views[c] {
				dst.SampleCount = v.appendInt32(dst.SampleCount)
			}
			for _, n := range dst.SampleCount {
				if n < 0 || int(n) > r.cfg.Samples {
					return fmt.Errorf("column %s: count %d out of range [0, %d]", col.name, n, r.cfg.Samples)
				}
			}
			continue
		case roleTopKIndex:
			dst.TopKIndex = slices.Grow(dst.TopKIndex[:0], nv)
			for _, v := range views[c] {
				dst.TopKIndex = v.appendInt32(dst.TopKIndex)
			}
			for _, id := range dst.TopKIndex {
				if id < 0 || int(id) >= r.cfg.Classes {
					return fmt.Errorf("column %s: class id %d out of range [0, %d)", col.name, id, r.cfg.Classes)
				}
			}
			continue
		}
		var out []float32
		switch col.role {
		case roleLogits:
			out = dst.Logits
		case roleTopKLogit:
			out = dst.TopKLogit
		case roleLogSumExp:
			out = dst.LogSumExp
		case roleHidden:
			out = dst.Hidden[col.key]
		case roleInput:
			out = dst.Inputs[col.key]
		}
		out = slices.Grow(out[:0], nv)[:nv]
		off := 0
		for _, v := range views[c] {
			if v.f16 != nil {
				f16Decode(out[off:], v.f16)
				off += len(v.f16)
			} else {
				off += copy(out[off:], v.f32)
			}
		}
		switch col.role {
		case roleLogits:
			dst.Logits = out
		case roleTopKLogit:
			dst.TopKLogit = out
		case roleLogSumExp:
			dst.LogSumExp = out
		case roleHidden:
			if dst.Hidden == nil {
				dst.Hidden = make(map[string][]float32, len(r.cfg.Hidden))
			}
			dst.Hidden[col.key] = out
		case roleInput:
			if dst.Inputs == nil {
				dst.Inputs = make(map[string][]float32, len(r.cfg.Inputs))
			}
			dst.Inputs[col.key] = out
		}
	}
	if r.cfg.Samples > 0 {
		if err := sp.expand(r.cfg, n, dst); err != nil {
			return err
		}
	}
	if r.cfg.TopKLogProbs {
		// Stored as t_j − logsumexp: give back the logits.
		k := r.cfg.TopK
		for q, v := range dst.TopKLogit {
			dst.TopKLogit[q] = v + dst.LogSumExp[q/k]
		}
	}
	return nil
}

// sampledParts holds the ragged columns of a sampled cache as decoded:
// the entries of every row, position after position (ids ascending within
// a position), and the entries per position.
type sampledParts struct {
	idx, cnt, distinct []int32
	val                []float32
	rowLen             []int32 // entries per row, from the first ragged column
	checked            bool
}

// collect appends the decoded chunks of one ragged column (or of
// sample_distinct) to p, checking that every ragged column has the same
// entries per row.
func (p *sampledParts) collect(col column, vs []values) error {
	var lens []int32
	for _, v := range vs {
		switch col.role {
		case roleTopKIndex:
			p.idx = v.appendInt32(p.idx)
		case roleSampleCount:
			p.cnt = v.appendInt32(p.cnt)
		case roleSampleDistinct:
			p.distinct = v.appendInt32(p.distinct)
		case roleTopKLogit:
			n := len(p.val)
			if v.f16 != nil {
				p.val = slices.Grow(p.val, len(v.f16))[:n+len(v.f16)]
				f16Decode(p.val[n:], v.f16)
			} else {
				p.val = append(p.val, v.f32...)
			}
		}
		lens = append(lens, v.lens...)
	}
	if !col.ragged {
		return nil
	}
	if !p.checked {
		p.rowLen, p.checked = lens, true
	} else if !slices.Equal(p.rowLen, lens) {
		return fmt.Errorf("entries per row differ from those of column %s", ColTopKIndex)
	}
	return nil
}

// expand checks the decoded entries of n rows against cfg and writes them
// to dst as Batch slots: per position, the distinct ids by descending
// score (ties: the lower id), then the last of them repeated with count 0.
func (p *sampledParts) expand(cfg Config, n int, dst *Batch) error {
	P, k := cfg.positions(), cfg.TopK
	if len(p.distinct) != n*P {
		return fmt.Errorf("column %s: %d values for %d rows of %d positions", ColSampleDistinct, len(p.distinct), n, P)
	}
	if len(p.idx) != len(p.cnt) || len(p.idx) != len(p.val) {
		return fmt.Errorf("sampled columns have %d ids, %d counts and %d scores", len(p.idx), len(p.cnt), len(p.val))
	}
	dst.TopKIndex = slices.Grow(dst.TopKIndex[:0], n*P*k)[:n*P*k]
	dst.TopKLogit = slices.Grow(dst.TopKLogit[:0], n*P*k)[:n*P*k]
	dst.SampleCount = slices.Grow(dst.SampleCount[:0], n*P*k)[:n*P*k]
	var ent []sampledEntry
	off := 0
	for r := range n {
		row0 := off
		for t := range P {
			q := r*P + t
			d := int(p.distinct[q])
			if d < 1 || d > k || off+d > len(p.idx) {
				return fmt.Errorf("column %s: row %d position %d: %d distinct ids, want 1..%d within the %d entries", ColSampleDistinct, r, t, d, k, len(p.idx))
			}
			ent = ent[:0]
			var sum int
			for e := off; e < off+d; e++ {
				id, c := p.idx[e], p.cnt[e]
				if id < 0 || int(id) >= cfg.Classes || (e > off && id <= p.idx[e-1]) {
					return fmt.Errorf("column %s: row %d position %d: ids not distinct ascending in [0, %d)", ColTopKIndex, r, t, cfg.Classes)
				}
				if c < 1 || int(c) > cfg.Samples {
					return fmt.Errorf("column %s: row %d position %d: count %d out of range [1, %d]", ColSampleCount, r, t, c, cfg.Samples)
				}
				sum += int(c)
				ent = append(ent, sampledEntry{id, p.val[e], c})
			}
			if sum != cfg.Samples {
				return fmt.Errorf("column %s: row %d position %d: counts sum to %d, want %d draws", ColSampleCount, r, t, sum, cfg.Samples)
			}
			off += d
			slices.SortFunc(ent, func(a, b sampledEntry) int {
				switch x, y := a.val, b.val; {
				case x > y || y != y && x == x:
					return -1
				case x < y || x != x && y == y:
					return 1
				}
				return int(a.id - b.id)
			})
			for j := range k {
				e := ent[min(j, d-1)]
				dst.TopKIndex[q*k+j], dst.TopKLogit[q*k+j], dst.SampleCount[q*k+j] = e.id, e.val, 0
				if j < d {
					dst.SampleCount[q*k+j] = e.cnt
				}
			}
		}
		if r >= len(p.rowLen) || off-row0 != int(p.rowLen[r]) {
			return fmt.Errorf("column %s: row %d has entries that its %s does not account for", ColTopKIndex, r, ColSampleDistinct)
		}
	}
	if off != len(p.idx) {
		return fmt.Errorf("column %s: %d entries, the positions account for %d", ColTopKIndex, len(p.idx), off)
	}
	return nil
}

// values is a view of one decoded chunk's values; exactly one slice is set.
type values struct {
	lens []int32 // ragged column: the entries of each row
	i64  []int64
	i32  []int32
	f32  []float32
	f16  []uint16
	u8   []uint8
	u16  []uint16
	u32  []uint32
}

// appendInt32 appends the integer values of v to dst; a uint32 above
// MaxInt32 becomes −1, which the caller's range check refuses.
func (v values) appendInt32(dst []int32) []int32 {
	switch {
	case v.u8 != nil:
		for _, x := range v.u8 {
			dst = append(dst, int32(x))
		}
	case v.u16 != nil:
		for _, x := range v.u16 {
			dst = append(dst, int32(x))
		}
	case v.u32 != nil:
		for _, x := range v.u32 {
			if x > math.MaxInt32 {
				dst = append(dst, -1)
			} else {
				dst = append(dst, int32(x))
			}
		}
	default:
		dst = append(dst, v.i32...)
	}
	return dst
}

// chunkValues checks one decoded chunk of a column (type, nulls, lengths)
// and returns a view of its values: Len() values for a scalar column,
// Len()×width for a fixed_size_list column.
func chunkValues(col column, a arrow.Array) (values, error) {
	if a.NullN() != 0 {
		return values{}, fmt.Errorf("%d nulls", a.NullN())
	}
	prim := a
	lo, hi := 0, a.Len()
	var lens []int32
	if col.ragged {
		l, ok := a.(*array.List)
		if !ok {
			return values{}, fmt.Errorf("decoded as %s", a.DataType())
		}
		prim = l.ListValues()
		if prim == nil || prim.NullN() != 0 {
			return values{}, errors.New("list values missing or null")
		}
		offs := l.Offsets()
		if len(offs) != l.Len()+1 {
			return values{}, fmt.Errorf("list of %d rows has %d offsets", l.Len(), len(offs))
		}
		lens = make([]int32, l.Len())
		for i := range lens {
			if offs[i] < 0 || offs[i+1] < offs[i] || int(offs[i+1]-offs[i]) > col.width {
				return values{}, fmt.Errorf("row %d: list offsets [%d, %d) for at most %d values", i, offs[i], offs[i+1], col.width)
			}
			lens[i] = offs[i+1] - offs[i]
		}
		lo, hi = int(offs[0]), int(offs[len(offs)-1])
		if hi > prim.Len() {
			return values{}, fmt.Errorf("list needs values [%d, %d), child has %d", lo, hi, prim.Len())
		}
	} else if col.width > 0 {
		l, ok := a.(*array.FixedSizeList)
		if !ok {
			return values{}, fmt.Errorf("decoded as %s", a.DataType())
		}
		prim = l.ListValues()
		if prim == nil || prim.NullN() != 0 {
			return values{}, errors.New("list values missing or null")
		}
		lo = l.Data().Offset() * col.width
		hi = lo + l.Len()*col.width
		if lo < 0 || hi < lo || hi > prim.Len() {
			return values{}, fmt.Errorf("list of %d rows × %d needs values [%d, %d), child has %d", l.Len(), col.width, lo, hi, prim.Len())
		}
	}
	var v values
	var got int
	switch p := prim.(type) {
	case *array.Int64:
		if col.kind == kInt64 {
			v.i64 = p.Int64Values()
			got = len(v.i64)
		}
	case *array.Int32:
		if col.kind == kInt32 {
			v.i32 = p.Int32Values()
			got = len(v.i32)
		}
	case *array.Float32:
		if col.kind == kFloat32 {
			v.f32 = p.Float32Values()
			got = len(v.f32)
		}
	case *array.Uint8:
		if col.kind == kUint8 {
			v.u8 = p.Uint8Values()
			got = len(v.u8)
			if v.u8 == nil {
				v.u8 = []uint8{}
			}
		}
	case *array.Uint16:
		if col.kind == kUint16 {
			v.u16 = p.Uint16Values()
			got = len(v.u16)
			if v.u16 == nil {
				v.u16 = []uint16{}
			}
		}
	case *array.Uint32:
		if col.kind == kUint32 {
			v.u32 = p.Uint32Values()
			got = len(v.u32)
			if v.u32 == nil {
				v.u32 = []uint32{}
			}
		}
	case *array.Float16:
		if col.kind == kFloat16 {
			v.f16 = arrow.Uint16Traits.CastFromBytes(arrow.Float16Traits.CastToBytes(p.Values()))
			got = len(v.f16)
			if v.f16 == nil {
				v.f16 = []uint16{}
			}
		}
	}
	if v.i64 == nil && v.i32 == nil && v.f32 == nil && v.f16 == nil && v.u8 == nil && v.u16 == nil && v.u32 == nil && prim.Len() > 0 {
		return values{}, fmt.Errorf("values decoded as %s, want %s", prim.DataType(), col.kind.arrow())
	}
	if got != prim.Len() {
		return values{}, fmt.Errorf("values buffer holds %d values, array claims %d", got, prim.Len())
	}
	switch {
	case v.i64 != nil:
		v.i64 = v.i64[lo:hi]
	case v.i32 != nil:
		v.i32 = v.i32[lo:hi]
	case v.f32 != nil:
		v.f32 = v.f32[lo:hi]
	case v.f16 != nil:
		v.f16 = v.f16[lo:hi]
	case v.u8 != nil:
		v.u8 = v.u8[lo:hi]
	case v.u16 != nil:
		v.u16 = v.u16[lo:hi]
	case v.u32 != nil:
		v.u32 = v.u32[lo:hi]
	}
	v.lens = lens
	return v, nil
}

// guard runs f and converts a panic inside arrow-go into an error.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if debugPanics {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				return
			}
			if e, ok := p.(error); ok {
				err = fmt.Errorf("decoder panic: %w", e)
				return
			}
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return f()
}

// debugPanics adds stack traces to recovered panics (for fuzzing sessions).
var debugPanics = os.Getenv("DISTILL_FORMATS_DEBUG") != ""

// limitAlloc is a memory.Allocator that refuses (by panicking with
// errAllocLimit, which guard recovers) to hold more than limit bytes.
type limitAlloc struct {
	parent memory.Allocator
	limit  int64
	used   atomic.Int64
}

var errAllocLimit = fmt.Errorf("%w: decoder allocation limit reached", ErrTooLarge)

func (a *limitAlloc) Allocate(size int) []byte {
	if size < 0 || a.used.Add(int64(size)) > a.limit {
		a.used.Add(-int64(size))
		panic(errAllocLimit)
	}
	return a.parent.Allocate(size)
}

func (a *limitAlloc) Reallocate(size int, b []byte) []byte {
	d := int64(size) - int64(len(b))
	if size < 0 || a.used.Add(d) > a.limit {
		a.used.Add(-d)
		panic(errAllocLimit)
	}
	return a.parent.Reallocate(size, b)
}

func (a *limitAlloc) Free(b []byte) {
	a.used.Add(-int64(len(b)))
	a.parent.Free(b)
}

// reset forgets allocations leaked by a recovered panic.
func (a *limitAlloc) reset() { a.used.Store(0) }

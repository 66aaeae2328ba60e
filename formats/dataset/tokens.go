package dataset

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/store"
)

// The token-window dataset written by WriteTokensFile.
const (
	// ColInputIDs is the column of token windows:
	// fixed_size_list<int32>[SeqLen+1], one window per row.
	ColInputIDs = "input_ids"
	// ColVal is the bool column marking validation windows, present when
	// TokensOptions.ValEvery > 0 and ValOut is empty.
	ColVal = "val"
	// MetaTokens is the Parquet key-value metadata key (Arrow: schema
	// metadata key) holding the TokensMeta JSON.
	MetaTokens = "distill.tokens"
	// TokensVersion is the version of the TokensMeta layout; readers
	// refuse a larger one.
	TokensVersion = 1
	// MaxSeqLen bounds TokensOptions.SeqLen.
	MaxSeqLen = 1 << 16
	// DefaultTokenRows is the default number of windows per Parquet row
	// group or Arrow record batch.
	DefaultTokenRows = 1024
	// tokenGroupBytes caps the ids of one row group, so long windows get
	// fewer rows per group: memory stays bounded whatever SeqLen is.
	tokenGroupBytes = 16 << 20
)

// ErrShortCorpus reports input that holds no document, or fewer tokens
// than one window.
var ErrShortCorpus = errors.New("dataset: corpus too short")

// TokensOptions configures WriteTokensFile. Zero fields select the
// documented defaults, except SeqLen, which must be set (so a nil
// *TokensOptions is an error).
type TokensOptions struct {
	// TextOptions says how the inputs are read (Split, TextField, ...).
	TextOptions
	// SeqLen is T, the teacher's sequence length: each window holds T+1
	// tokens, the first T the input and the last T the next-token
	// labels. Required: 1..MaxSeqLen.
	SeqLen int
	// Stride is the distance between the starts of consecutive windows,
	// 1..SeqLen+1. Default: SeqLen+1 (windows do not overlap).
	Stride int
	// EOS appends the tokenizer's "eos" id after each document whose
	// encoding does not already end with it. A tokenizer without one is
	// an error.
	EOS bool
	// ValEvery sends every ValEvery-th window (zero-based windows
	// ValEvery-1, 2*ValEvery-1, ...) to validation: to ValOut if set,
	// else marked true in column ColVal. 0 (default): no validation
	// windows; 1 is an error (nothing would be left to train on).
	ValEvery int
	// ValOut is the file validation windows are written to; empty: the
	// ColVal column of the main file.
	ValOut string
	// Format is "parquet" (zstd, default) or "arrow" (uncompressed Arrow
	// IPC file) for the main file; ValFormat the same for ValOut
	// (default: Format).
	Format, ValFormat string
	// RowsPerGroup is the number of windows per Parquet row group or
	// Arrow record batch. Default: DefaultTokenRows, fewer when a group
	// would exceed 16 MiB of ids.
	RowsPerGroup int
	// Workers is the number of goroutines tokenizing documents. Default:
	// runtime.GOMAXPROCS(0). The output does not depend on it.
	Workers int
	// Tool names the program and version, recorded in the metadata.
	Tool string
	// Progress, if set, is called after each chunk of documents is
	// packed, from one goroutine at a time.
	Progress func(TokensProgress)
}

// TokensProgress is the state of a WriteTokensFile run.
type TokensProgress struct {
	Documents, Tokens, Windows int64
	// Bytes is about how many bytes of the inputs have been read, of
	// TotalBytes.
	Bytes, TotalBytes int64
}

// TokensMeta is the JSON stored under MetaTokens: how the windows were
// made, from what, and how many there are.
type TokensMeta struct {
	Version int    `json:"version"`
	Tool    string `json:"tool,omitempty"`
	// Part is what this file holds: "all" windows (validation ones marked
	// in ColVal, if any), the "train" windows or the "val" windows.
	Part      string         `json:"part"`
	Tokenizer tokenizer.Info `json:"tokenizer"`
	VocabSize int            `json:"vocab_size"`
	BOSID     *int           `json:"bos_id,omitempty"`
	EOSID     *int           `json:"eos_id,omitempty"`
	SeqLen    int            `json:"seq_len"`
	// Window is SeqLen+1, the values per row.
	Window     int    `json:"window"`
	Stride     int    `json:"stride"`
	Split      string `json:"split"`
	JoinBlocks int    `json:"join_blocks,omitempty"`
	TextField  string `json:"text_field"`
	EOS        bool   `json:"eos"`
	ValEvery   int    `json:"val_every"`
	// Val is where validation windows are: "none", "column" (ColVal) or
	// "file" (a separate file, Part "val").
	Val            string        `json:"val"`
	Inputs         []TokensInput `json:"inputs"`
	Documents      int64         `json:"documents"`
	EmptyDocuments int64         `json:"empty_documents"`
	Tokens         int64         `json:"tokens"`
	Windows        TokenWindows  `json:"windows"`
	// DroppedTokens is the final partial window: the tokens after the
	// end of the last window.
	DroppedTokens int64 `json:"dropped_tokens"`
}

// TokensInput describes one input file of a token dataset.
type TokensInput struct {
	Path      string `json:"path"`
	Format    string `json:"format"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
	Documents int64  `json:"documents"`
	Tokens    int64  `json:"tokens"`
}

// TokenWindows counts windows by split.
type TokenWindows struct {
	Train int64 `json:"train"`
	Val   int64 `json:"val"`
}

// Rows returns the number of rows of the file m describes.
func (m *TokensMeta) Rows() int64 {
	switch m.Part {
	case "train":
		return m.Windows.Train
	case "val":
		return m.Windows.Val
	}
	return m.Windows.Train + m.Windows.Val
}

// TokensSchema returns the schema of a token dataset of windows of
// seqLen+1 tokens: ColInputIDs fixed_size_list<int32>[seqLen+1] with
// MetaShape [seqLen+1], then, if val, the bool column ColVal. Open reads
// it as column "input_ids" of DType Int32 and shape [seqLen+1] (ColVal,
// a scalar beside a list column, is not a model input).
func TokensSchema(seqLen int, val bool) *arrow.Schema { return tokensSchema(seqLen, val, nil) }

// tokensSchema is TokensSchema with schema metadata.
func tokensSchema(seqLen int, val bool, meta *arrow.Metadata) *arrow.Schema {
	shape, _ := json.Marshal([]int{seqLen + 1})
	fields := []arrow.Field{{
		Name:     ColInputIDs,
		Type:     arrow.FixedSizeListOf(int32(seqLen+1), arrow.PrimitiveTypes.Int32),
		Metadata: arrow.NewMetadata([]string{MetaShape}, []string{string(shape)}),
	}}
	if val {
		fields = append(fields, arrow.Field{Name: ColVal, Type: arrow.FixedWidthTypes.Boolean})
	}
	return arrow.NewSchema(fields, meta)
}

// tokensConfig is TokensOptions checked, with its defaults.
type tokensConfig struct {
	TokensOptions
	window, rows int
}

// config checks opts and fills in its defaults.
func (opts *TokensOptions) config() (tokensConfig, error) {
	var c tokensConfig
	if opts != nil {
		c.TokensOptions = *opts
	}
	var err error
	if c.TextOptions, err = c.TextOptions.withDefaults(); err != nil {
		return c, err
	}
	if c.SeqLen < 1 || c.SeqLen > MaxSeqLen {
		return c, fmt.Errorf("dataset: sequence length %d: want 1..%d", c.SeqLen, MaxSeqLen)
	}
	c.window = c.SeqLen + 1
	if c.Stride == 0 {
		c.Stride = c.window
	}
	if c.Stride < 1 || c.Stride > c.window {
		return c, fmt.Errorf("dataset: stride %d: want 1..%d (sequence length + 1)", c.Stride, c.window)
	}
	if c.ValEvery < 0 || c.ValEvery == 1 {
		return c, fmt.Errorf("dataset: validation every %d windows: want 0 (none) or at least 2", c.ValEvery)
	}
	if c.ValOut != "" && c.ValEvery == 0 {
		return c, fmt.Errorf("dataset: a validation file needs ValEvery > 0")
	}
	if c.Format == "" {
		c.Format = "parquet"
	}
	if c.ValFormat == "" {
		c.ValFormat = c.Format
	}
	for _, f := range []string{c.Format, c.ValFormat} {
		if f != "parquet" && f != "arrow" {
			return c, fmt.Errorf("dataset: write format %q: want parquet or arrow", f)
		}
	}
	c.rows = c.RowsPerGroup
	if c.rows <= 0 {
		c.rows = min(DefaultTokenRows, max(1, tokenGroupBytes/(4*c.window)))
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// WriteTokensFile tokenizes the documents of inputs (read in order, see
// Documents) with tok, packs them into one stream of ids and writes it
// to out as windows of opts.SeqLen+1 tokens, one row each, starting every
// opts.Stride tokens; the final partial window is dropped. Each document
// is encoded with its special tokens (tok.Encode(text, true)), and with
// the "eos" id after it when opts.EOS is set; empty documents are
// skipped. info, opts.Tool and the run's counts and input hashes are
// stored as TokensMeta under MetaTokens.
//
// Documents are tokenized by opts.Workers goroutines and packed in input
// order, so the same inputs and options give a byte-identical file. Memory
// is bounded whatever the input size: a few chunks of documents in flight,
// one row group per output, one document at a time per worker (Arrow
// output is staged in a temporary file beside out, or in the temporary
// directory when out is remote, since its schema must come first). out,
// opts.ValOut and inputs are locations (paths or URLs, as Open takes).
// Files appear whole (a local temporary file, fsync, rename; a remote
// streamed upload completed at the end); on error none is written. It
// returns the metadata of out.
func WriteTokensFile(ctx context.Context, out string, inputs []string, tok tokenizer.Tokenizer, info tokenizer.Info, opts *TokensOptions) (*TokensMeta, error) {
	c, err := opts.config()
	if err != nil {
		return nil, err
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: no input files", ErrShortCorpus)
	}
	var bos, eos *int
	if id, ok := tok.Special("bos"); ok {
		bos = &id
	}
	if id, ok := tok.Special("eos"); ok {
		eos = &id
	}
	meta, err := newTokensMeta(out, &c, tok.VocabSize(), bos, eos, info)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, in := range inputs {
		format, err := TextFormat(in)
		if err != nil {
			return nil, err
		}
		st, err := store.Stat(ctx, in)
		if err != nil {
			return nil, err
		}
		if st.IsDir {
			return nil, fmt.Errorf("%w: %s is a directory; name the text files", ErrFormat, in)
		}
		meta.Inputs = append(meta.Inputs, TokensInput{Path: in, Format: format, Bytes: st.Size})
		total += st.Size
	}
	tw, err := openTokenWriter(ctx, out, c, meta)
	if err != nil {
		return nil, err
	}
	defer tw.Abort()
	if err := runTokens(ctx, &c, inputs, tok, meta, total, &tw.windows); err != nil {
		return nil, err
	}
	if meta.Documents == 0 {
		return nil, fmt.Errorf("%w: no text in %s (empty documents skipped: %d)", ErrShortCorpus, inputList(inputs), meta.EmptyDocuments)
	}
	if tw.windows.n == 0 {
		return nil, fmt.Errorf("%w: %d tokens in %s, fewer than one window of %d (sequence length %d + 1)", ErrShortCorpus, meta.Tokens, inputList(inputs), c.window, c.SeqLen)
	}
	return tw.Commit()
}

// newTokensMeta checks the options of a token dataset of vocab ids with
// those bos and eos ids (nil: none) written to out, and returns its
// metadata without inputs or counts.
func newTokensMeta(out string, c *tokensConfig, vocab int, bos, eos *int, info tokenizer.Info) (*TokensMeta, error) {
	if vocab <= 0 || int64(vocab) > math.MaxInt32+1 {
		return nil, fmt.Errorf("%w: tokenizer %s has %d ids; int32 input_ids hold at most 2^31", ErrUnsupported, info.Path, vocab)
	}
	meta := &TokensMeta{
		Version: TokensVersion, Tool: c.Tool, Part: "all", Tokenizer: info, VocabSize: vocab, BOSID: bos, EOSID: eos,
		SeqLen: c.SeqLen, Window: c.window, Stride: c.Stride, Split: c.Split, JoinBlocks: c.JoinBlocks, TextField: c.TextField,
		EOS: c.EOS, ValEvery: c.ValEvery, Val: "none",
	}
	if c.EOS && meta.EOSID == nil {
		return nil, fmt.Errorf("%w: the %s tokenizer %s has no eos token to append", ErrUnsupported, info.Kind, info.Path)
	}
	switch {
	case c.ValOut != "":
		meta.Val, meta.Part = "file", "train"
	case c.ValEvery > 0:
		meta.Val = "column"
	}
	if c.ValOut != "" && store.Abs(out) == store.Abs(c.ValOut) {
		return nil, fmt.Errorf("dataset: the validation file %s is also the output", c.ValOut)
	}
	return meta, nil
}

// TokenWriter writes a token dataset from documents given as token ids
// (generated text, say), in WriteTokensFile's layout: the documents are
// packed into one stream, cut into windows of SeqLen+1 ids every Stride,
// validation windows split off by ValEvery and ValOut, the final partial
// window dropped, and the TokensMeta recorded (Inputs are the caller's to
// fill through Meta). The files appear at Commit, atomically; until then,
// and after Abort, there is none.
type TokenWriter struct {
	c       tokensConfig
	meta    *TokensMeta
	w, val  *tokenWriter
	windows windower
	eos     int32 // appended after each document when EOS is set, else -1
}

// NewTokenWriter starts the token dataset out (and opts.ValOut) of the
// documents of a tokenizer of vocab ids described by info, with those bos
// and eos ids (nil: none; opts.EOS needs eos). opts is read as by
// WriteTokensFile; its TextOptions are recorded, not used.
func NewTokenWriter(out string, vocab int, bos, eos *int, info tokenizer.Info, opts *TokensOptions) (*TokenWriter, error) {
	c, err := opts.config()
	if err != nil {
		return nil, err
	}
	meta, err := newTokensMeta(out, &c, vocab, bos, eos, info)
	if err != nil {
		return nil, err
	}
	return openTokenWriter(context.Background(), out, c, meta)
}

// openTokenWriter starts the files of out (and c.ValOut); ctx bounds
// their uploads.
func openTokenWriter(ctx context.Context, out string, c tokensConfig, meta *TokensMeta) (*TokenWriter, error) {
	t := &TokenWriter{c: c, meta: meta, eos: -1}
	if c.EOS {
		t.eos = int32(*meta.EOSID)
	}
	var err error
	if t.w, err = newTokenWriter(ctx, out, c.Format, c.SeqLen, meta.Val == "column", c.rows, c.Allocator); err != nil {
		return nil, err
	}
	if c.ValOut != "" {
		if t.val, err = newTokenWriter(ctx, c.ValOut, c.ValFormat, c.SeqLen, false, c.rows, c.Allocator); err != nil {
			t.w.abort()
			return nil, err
		}
	}
	t.windows = windower{size: c.window, stride: c.Stride, emit: func(win []int32, i int64) error {
		isVal := c.ValEvery > 0 && (i+1)%int64(c.ValEvery) == 0
		if isVal {
			meta.Windows.Val++
		} else {
			meta.Windows.Train++
		}
		if isVal && t.val != nil {
			return t.val.add(win, false)
		}
		return t.w.add(win, isVal)
	}}
	return t, nil
}

// Add appends one document's ids (BOS first if the tokenizer's documents
// start with it), then EOS when opts.EOS is set and they do not end with
// it. An empty document is counted and skipped; an id outside the
// vocabulary is an error.
func (t *TokenWriter) Add(ids []int32) error {
	if len(ids) == 0 {
		t.meta.EmptyDocuments++
		return nil
	}
	for _, id := range ids {
		if id < 0 || int(id) >= t.meta.VocabSize {
			return fmt.Errorf("dataset: token id %d outside the vocabulary of %d", id, t.meta.VocabSize)
		}
	}
	n := int64(len(ids))
	if err := t.windows.push(ids); err != nil {
		return err
	}
	if t.eos >= 0 && ids[len(ids)-1] != t.eos {
		if err := t.windows.push([]int32{t.eos}); err != nil {
			return err
		}
		n++
	}
	t.meta.Documents++
	t.meta.Tokens += n
	return nil
}

// Meta returns the metadata so far; the caller may fill its Inputs before
// Commit.
func (t *TokenWriter) Meta() *TokensMeta { return t.meta }

// Windows returns the number of windows completed so far.
func (t *TokenWriter) Windows() int64 { return t.windows.n }

// Commit writes the metadata, finishes the files and renames them into
// place, and returns the metadata. Fewer tokens than one window is an
// error wrapping ErrShortCorpus, and nothing is written.
func (t *TokenWriter) Commit() (*TokensMeta, error) {
	meta := t.meta
	if t.windows.n == 0 {
		return nil, fmt.Errorf("%w: %d tokens in %d documents, fewer than one window of %d (sequence length %d + 1)", ErrShortCorpus, meta.Tokens, meta.Documents, t.c.window, t.c.SeqLen)
	}
	meta.DroppedTokens = meta.Tokens - t.windows.end
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	var valJS []byte
	if t.val != nil {
		vm := *meta
		vm.Part = "val"
		if valJS, err = json.Marshal(&vm); err != nil {
			return nil, err
		}
	}
	// Finish both before committing either, so that a failure leaves
	// neither file.
	if err := t.w.finish(string(js)); err != nil {
		return nil, err
	}
	if t.val != nil {
		if err := t.val.finish(string(valJS)); err != nil {
			return nil, err
		}
		if err := t.val.commit(); err != nil {
			return nil, err
		}
	}
	if err := t.w.commit(); err != nil {
		return nil, err
	}
	return meta, nil
}

// Abort removes the temporary files, unless Commit succeeded.
func (t *TokenWriter) Abort() {
	t.w.abort()
	if t.val != nil {
		t.val.abort()
	}
}

// inputList names the inputs for a message.
func inputList(inputs []string) string {
	if len(inputs) == 1 {
		return inputs[0]
	}
	return fmt.Sprintf("the %d inputs (%s, ...)", len(inputs), inputs[0])
}

// Chunks of documents are the unit of work: a worker encodes a chunk,
// the packer takes chunks in input order.
const (
	chunkBytes = 64 << 10
	chunkDocs  = 1024
)

// tokenChunk is a run of documents of one input, and once done is
// closed, their ids.
type tokenChunk struct {
	input int
	docs  []Document
	ndocs int64 // len(docs) before the worker dropped them
	size  int   // bytes of text in docs
	empty int64 // empty documents skipped
	bytes int64 // input bytes read when the chunk was cut
	last  bool  // the input's last chunk: sum is set
	sum   string
	err   error   // a read error (set by the reader) or an encoding error
	ids   []int32 // the ids of docs, concatenated
	done  chan struct{}
}

// runTokens reads, tokenizes and packs inputs into win, filling meta's
// counts: one reader goroutine cuts the documents into chunks, c.Workers
// goroutines encode them, and this goroutine packs them in input order
// (order queues the chunks as they are cut; each is awaited in turn).
func runTokens(parent context.Context, c *tokensConfig, inputs []string, tok tokenizer.Tokenizer, meta *TokensMeta, total int64, win *windower) error {
	ctx, cancel := context.WithCancel(parent)
	order := make(chan *tokenChunk, 2*c.Workers+2)
	work := make(chan *tokenChunk, c.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs first: stops the reader and the workers

	sizes := make([]int64, len(inputs))
	for i, in := range meta.Inputs {
		sizes[i] = in.Bytes
	}
	submit := func(ch *tokenChunk) bool {
		ch.ndocs = int64(len(ch.docs))
		select {
		case order <- ch:
		case <-ctx.Done():
			return false
		}
		select {
		case work <- ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wg.Go(func() {
		defer close(work)
		defer close(order)
		for i, path := range inputs {
			var pos int64
			cur := &tokenChunk{input: i, done: make(chan struct{})}
			sum, err := readDocuments(path, &c.TextOptions, func(d Document) error {
				if d.Text == "" {
					cur.empty++
					return nil
				}
				cur.docs = append(cur.docs, d)
				cur.size += len(d.Text)
				if cur.size >= chunkBytes || len(cur.docs) >= chunkDocs {
					cur.bytes = pos
					if !submit(cur) {
						return ctx.Err()
					}
					cur = &tokenChunk{input: i, done: make(chan struct{})}
				}
				return nil
			}, func(n int64) { pos = n })
			cur.bytes, cur.last, cur.sum = sizes[i], err == nil, sum
			if err != nil && len(cur.docs) > 0 {
				// The documents before the error come first: one of
				// them may fail to encode.
				if !submit(cur) {
					return
				}
				cur = &tokenChunk{input: i, done: make(chan struct{})}
			}
			cur.err = err
			if !submit(cur) || err != nil {
				return
			}
		}
	})
	eosID := -1
	if c.EOS {
		eosID = *meta.EOSID
	}
	vocab := meta.VocabSize
	for range c.Workers {
		wg.Go(func() {
			for ch := range work {
				if ch.err == nil && ctx.Err() == nil {
					ch.ids, ch.err = encodeChunk(tok, vocab, ch.docs, eosID)
				}
				ch.docs = nil
				close(ch.done)
			}
		})
	}

	var before int64 // bytes of the inputs finished
	for ch := range order {
		select {
		case <-ch.done:
		case <-ctx.Done():
		}
		if err := parent.Err(); err != nil {
			return err
		}
		if ch.err != nil {
			return ch.err
		}
		in := &meta.Inputs[ch.input]
		n := int64(len(ch.ids))
		in.Documents += ch.ndocs
		in.Tokens += n
		meta.Documents += ch.ndocs
		meta.EmptyDocuments += ch.empty
		meta.Tokens += n
		if err := win.push(ch.ids); err != nil {
			return err
		}
		read := before + ch.bytes
		if ch.last {
			in.SHA256 = ch.sum
			before += in.Bytes
			read = before
		}
		if c.Progress != nil {
			c.Progress(TokensProgress{Documents: meta.Documents, Tokens: meta.Tokens, Windows: win.n, Bytes: read, TotalBytes: total})
		}
	}
	return parent.Err()
}

// encodeChunk encodes docs and concatenates their ids, each document
// followed by eosID (if not -1) unless its encoding ends with it.
func encodeChunk(tok tokenizer.Tokenizer, vocab int, docs []Document, eosID int) ([]int32, error) {
	size := 0
	for _, d := range docs {
		size += len(d.Text)
	}
	// A first guess: about 2 bytes of English text per token.
	out := make([]int32, 0, size/2+len(docs)+16)
	for _, d := range docs {
		ids, err := tok.Encode(d.Text, true)
		if err != nil {
			return nil, docError(d, err)
		}
		for _, id := range ids {
			if id < 0 || id >= vocab {
				return nil, docError(d, fmt.Errorf("tokenizer returned id %d outside its vocabulary of %d", id, vocab))
			}
			out = append(out, int32(id))
		}
		if eosID >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eosID) {
			out = append(out, int32(eosID))
		}
	}
	return out, nil
}

// windower cuts a stream of ids into windows of size ids starting every
// stride ids (stride <= size).
type windower struct {
	size, stride int
	emit         func(w []int32, index int64) error
	buf          []int32 // ids from the next window's start on
	n            int64   // windows emitted
	end          int64   // stream position after the last window
	pos          int64   // stream position of buf[0]
}

// push appends ids to the stream and emits every window it completes.
func (x *windower) push(ids []int32) error {
	x.buf = append(x.buf, ids...)
	off := 0
	for len(x.buf)-off >= x.size {
		if err := x.emit(x.buf[off:off+x.size], x.n); err != nil {
			return err
		}
		x.n++
		x.end = x.pos + int64(off+x.size)
		off += x.stride
	}
	if off > 0 {
		x.buf = x.buf[:copy(x.buf, x.buf[off:])]
		x.pos += int64(off)
	}
	return nil
}

// tokenWriter writes the windows of one output file in row groups.
// Parquet groups go straight to the file (the metadata joins the footer
// at the end); Arrow groups are staged as raw little-endian ids in a
// spill file, because an Arrow file starts with its schema and so its
// metadata.
type tokenWriter struct {
	path, format string
	seqLen       int
	window, rows int
	valCol       bool
	mem          memory.Allocator
	sc           *arrow.Schema // Parquet: the writer's schema
	f            *store.Writer
	bw           *bufio.Writer
	pq           *pqarrow.FileWriter
	spill        *os.File
	sw           *bufio.Writer
	groups       []int // rows per spilled group
	ids          []int32
	vals         []bool
	scratch      []byte
	finished     bool
}

// newTokenWriter starts the file at location path (and for Arrow the
// spill file: beside a local path, in the temporary directory for a
// remote one).
func newTokenWriter(ctx context.Context, path, format string, seqLen int, valCol bool, rows int, mem memory.Allocator) (w *tokenWriter, err error) {
	w = &tokenWriter{path: path, format: format, seqLen: seqLen, window: seqLen + 1, rows: rows, valCol: valCol, mem: mem}
	if w.f, err = createFile(ctx, path); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			w.abort()
		}
	}()
	w.bw = bufio.NewWriterSize(w.f, 1<<20)
	if format == "arrow" {
		spillDir := ""
		if !store.IsRemote(path) {
			spillDir = filepath.Dir(path)
		}
		if w.spill, err = os.CreateTemp(spillDir, "."+store.Base(path)+".spill-*"); err != nil {
			return nil, fmt.Errorf("dataset: writing %s: %w", path, err)
		}
		w.sw = bufio.NewWriterSize(w.spill, 1<<20)
		return w, nil
	}
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(int64(rows)),
		parquet.WithAllocator(mem),
	)
	w.sc = TokensSchema(seqLen, valCol)
	w.pq, err = pqarrow.NewFileWriter(w.sc, w.bw, props,
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		return nil, fmt.Errorf("dataset: writing %s: %w", path, err)
	}
	return w, nil
}

// add appends one window (and its val mark, if the file has ColVal).
func (w *tokenWriter) add(win []int32, val bool) error {
	w.ids = append(w.ids, win...)
	if w.valCol {
		w.vals = append(w.vals, val)
	}
	if len(w.ids) >= w.rows*w.window {
		return w.flush()
	}
	return nil
}

// flush writes the windows added since the last flush as one group.
func (w *tokenWriter) flush() error {
	n := len(w.ids) / w.window
	if n == 0 {
		return nil
	}
	var err error
	if w.pq != nil {
		rec := tokensRecord(w.mem, w.sc, w.window, w.ids, w.vals)
		err = w.pq.Write(rec)
		rec.Release()
	} else {
		w.scratch = w.scratch[:0]
		for _, id := range w.ids {
			w.scratch = binary.LittleEndian.AppendUint32(w.scratch, uint32(id))
		}
		for _, v := range w.vals {
			b := byte(0)
			if v {
				b = 1
			}
			w.scratch = append(w.scratch, b)
		}
		_, err = w.sw.Write(w.scratch)
		w.groups = append(w.groups, n)
	}
	w.ids, w.vals = w.ids[:0], w.vals[:0]
	if err != nil {
		return fmt.Errorf("dataset: writing %s: %w", w.path, err)
	}
	return nil
}

// tokensRecord builds one record of windows; the caller releases it.
func tokensRecord(mem memory.Allocator, sc *arrow.Schema, window int, ids []int32, vals []bool) arrow.RecordBatch {
	n := len(ids) / window
	lb := array.NewFixedSizeListBuilder(mem, int32(window), arrow.PrimitiveTypes.Int32)
	defer lb.Release()
	lb.Reserve(n)
	for range n {
		lb.Append(true)
	}
	lb.ValueBuilder().(*array.Int32Builder).AppendValues(ids, nil)
	la := lb.NewArray()
	defer la.Release()
	cols := []arrow.Array{la}
	if sc.NumFields() > 1 {
		vb := array.NewBooleanBuilder(mem)
		defer vb.Release()
		vb.AppendValues(vals, nil)
		va := vb.NewArray()
		defer va.Release()
		cols = append(cols, va)
	}
	return array.NewRecordBatch(sc, cols, int64(n))
}

// finish writes the last group, the metadata and the footer, and flushes
// the temporary file; commit then renames it into place.
func (w *tokenWriter) finish(meta string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("dataset: writing %s: %w", w.path, err)
		}
	}()
	if err := w.flush(); err != nil {
		return err
	}
	if w.pq != nil {
		if err := w.pq.AppendKeyValueMetadata(MetaTokens, meta); err != nil {
			return err
		}
		w.finished = true
		if err := w.pq.Close(); err != nil {
			return err
		}
	} else if err := w.finishArrow(meta); err != nil {
		return err
	}
	return w.bw.Flush()
}

// finishArrow writes the Arrow IPC file from the spilled groups.
func (w *tokenWriter) finishArrow(meta string) error {
	if err := w.sw.Flush(); err != nil {
		return err
	}
	if _, err := w.spill.Seek(0, io.SeekStart); err != nil {
		return err
	}
	md := arrow.NewMetadata([]string{MetaTokens}, []string{meta})
	sc := tokensSchema(w.seqLen, w.valCol, &md)
	iw, err := ipc.NewFileWriter(w.bw, ipc.WithSchema(sc), ipc.WithAllocator(w.mem))
	if err != nil {
		return err
	}
	w.finished = true
	br := bufio.NewReaderSize(w.spill, 1<<20)
	for _, n := range w.groups {
		size := n * w.window * 4
		if w.valCol {
			size += n
		}
		w.scratch = append(w.scratch[:0], make([]byte, size)...)
		if _, err := io.ReadFull(br, w.scratch); err != nil {
			iw.Close()
			return fmt.Errorf("reading back the spill file: %w", err)
		}
		w.ids = w.ids[:0]
		for i := 0; i < n*w.window; i++ {
			w.ids = append(w.ids, int32(binary.LittleEndian.Uint32(w.scratch[4*i:])))
		}
		w.vals = w.vals[:0]
		if w.valCol {
			for _, b := range w.scratch[n*w.window*4:] {
				w.vals = append(w.vals, b != 0)
			}
		}
		rec := tokensRecord(w.mem, sc, w.window, w.ids, w.vals)
		err := iw.Write(rec)
		rec.Release()
		if err != nil {
			iw.Close()
			return err
		}
	}
	w.ids, w.vals = w.ids[:0], w.vals[:0]
	return iw.Close()
}

// commit puts the finished file in place.
func (w *tokenWriter) commit() error {
	w.removeSpill()
	if _, err := w.f.Commit(); err != nil {
		return fmt.Errorf("dataset: writing %s: %w", w.path, err)
	}
	return nil
}

// abort removes the temporary and spill files, unless commit ran. It
// closes an unfinished Parquet writer first, to release its memory.
func (w *tokenWriter) abort() {
	if w.pq != nil && !w.finished {
		w.finished = true
		w.pq.Close()
	}
	w.removeSpill()
	w.f.Abort()
}

func (w *tokenWriter) removeSpill() {
	if w.spill != nil {
		w.spill.Close()
		os.Remove(w.spill.Name())
		w.spill = nil
	}
}

// ReadTokensMeta returns the TokensMeta of a token dataset written by
// WriteTokensFile (a Parquet or Arrow IPC file). A file without it is an
// error wrapping ErrFormat; a newer TokensVersion one wrapping
// ErrUnsupported.
func ReadTokensMeta(path string) (meta *TokensMeta, err error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, len(ipcMagic))
	n, _ := f.ReadAt(head, 0) // a remote file: one range, kept for the footer if small
	defer recovered(&err, path)
	var js string
	var found bool
	switch {
	case n >= 4 && string(head[:4]) == "PAR1":
		pf, err := file.NewParquetReader(f)
		if err != nil {
			return nil, corruptf(path, "parquet: %v", err)
		}
		defer pf.Close()
		if v := pf.MetaData().KeyValueMetadata().FindValue(MetaTokens); v != nil {
			js, found = *v, true
		}
	case n == len(ipcMagic) && string(head) == ipcMagic:
		o := (*Options)(nil).withDefaults()
		s, err := indexIPC(path, f, size, &o, true)
		if err != nil {
			return nil, err
		}
		js, found = s.sc.Metadata().GetValue(MetaTokens)
	default:
		return nil, fmt.Errorf("%w: %s is neither a Parquet nor an Arrow IPC file", ErrFormat, path)
	}
	if !found {
		return nil, fmt.Errorf("%w: %s has no %s metadata: it is not a token dataset written by WriteTokensFile (distill data text)", ErrFormat, path, MetaTokens)
	}
	meta = new(TokensMeta)
	if err := json.Unmarshal([]byte(js), meta); err != nil {
		return nil, corruptf(path, "%s metadata: %v", MetaTokens, err)
	}
	if meta.Version > TokensVersion {
		return nil, fmt.Errorf("%w: %s: %s version %d is newer than this reader's %d; update distill", ErrUnsupported, path, MetaTokens, meta.Version, TokensVersion)
	}
	return meta, nil
}

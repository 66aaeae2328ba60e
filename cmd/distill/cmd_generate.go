package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "generate",
		UsageLine: "--model M --tokenizer TOK [--prompt TEXT... | --prompts FILE] [--out FILE.jsonl] [--tokens FILE --seq-len T] [flags]",
		Short:     "generate text with a language model (ONNX or checkpoint): JSONL samples and/or a token dataset",
		Long: `Generate text with a causal language model: continue each prompt, or
start --samples samples from BOS when there is none.

--model is a decoder ONNX file, or a folder holding model.onnx (distill
export's): with past_key_values.* inputs it runs with its KV cache, one
token per call; with input_ids as its only input it is re-run over the
whole prefix at every token (slower). A directory without model.onnx is a
checkpoint run by the Go forward pass with a KV cache: distill train
--student transformer's --out (training.json), or a Hugging Face Llama
directory (config.json and model.safetensors, e.g. stories260K-hf).

--tokenizer is the model's tokenizer (llama2.c tokenizer.bin, vocab.json
character list or Hugging Face tokenizer.json); its vocabulary must be the
model's. Prompts are encoded with the tokenizer's special tokens (BOS for
llama2.c). --prompt may be repeated; --prompts FILE reads one prompt per
line (blank lines skipped), or, for a .jsonl or .json file, one JSON
object per line with the prompt in its string field "prompt" (prompts with
newlines). Each prompt gets --samples samples (at most 1,048,576 samples
per run).

Tokens are drawn as Hugging Face's generate does: --temperature 0 is
greedy (argmax), otherwise softmax(logits / T) restricted to the --top-k
most likely tokens (0 = all), then to the smallest set of the most likely
whose probabilities reach --top-p (1 = all). Sample i (counting from 0,
prompt by prompt) draws with seed --seed + i, recorded with it: running
its prompt alone with --seed set to that value and --samples 1 draws it
again, whatever --batch. A sample ends at --eos (default: the tokenizer's
EOS, else the model's; -1 never stops), after --max-new tokens, or when the
model's context is full (prompt and tokens at most its positions; the rows
of a batch are fed together, so a short prompt batched with a long one may
end with the long one).

--batch prompts run together, left-padded (positions as Hugging Face
counts them, so a row gives what it gives alone); a batch starts with one
call over the prompts, then one call per token.

Outputs, at least one of:
  --out FILE.jsonl  one JSON object per line and sample, in prompt order:
                    index, seed, prompt (the text given; "" from BOS), text
                    (the continuation), prompt_ids, ids (generated, an EOS
                    last when it stopped there), stop (eos, max_new or
                    max_positions), temperature, top_k, top_p and model
                    (the model file's sha256). Each line is written whole.
  --tokens FILE     a token dataset that distill extract reads directly:
                    windows of --seq-len + 1 ids (Parquet, or Arrow IPC by
                    the .arrow extension), each sample (prompt ids and
                    generated ids) a document, followed by the tokenizer's
                    EOS when it has one and the sample does not end with
                    it, as distill data text --eos packs documents; its
                    metadata records the tokenizer and, as its input, the
                    model. The file appears atomically when the run ends.
Without either, the texts (prompt and continuation) go to stdout, one
sample after another, separated by blank lines.

Progress (samples, tokens/s) goes to stderr every few seconds. Ctrl-C
stops at once: the JSONL file holds the samples finished so far, whole
lines only; the token dataset is written with them (said on stderr, when
they fill at least one window), and the exit code is 130.

Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o generateOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("unexpected arguments %q", args)
				}
				if err := o.validate(); err != nil {
					return err
				}
				return runGenerate(ctx, &o)
			}
		},
	})
}

// Bounds of generate's flags.
const (
	maxGenBatch   = 4096
	maxGenNew     = 1 << 20
	maxGenSamples = 1 << 20 // samples per run, all prompts together
	maxGenTemp    = 100
)

// generateOptions are the flags of distill generate.
type generateOptions struct {
	Model, Tokenizer string
	Prompt           []string
	Prompts          string
	Samples          int
	MaxNew           int
	Temperature      float64
	TopK             int
	TopP             float64
	Seed             uint64
	Batch            int
	EOS              int
	Out, Tokens      string
	SeqLen           int
	Threads          int
	Lib              string

	eosFlag *pflag.Flag
	eosSet  bool
}

// AddFlags registers the flags on fs.
func (o *generateOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Model, "model", "", "the model: a decoder .onnx file, a folder with model.onnx, or a checkpoint / Hugging Face Llama directory; a path or an s3:// / gs:// location (required)")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "the model's tokenizer: tokenizer.bin, vocab.json or tokenizer.json (a path or an s3://, gs:// or file:// URL) (required)")
	fs.StringArrayVar(&o.Prompt, "prompt", nil, "a prompt to continue (repeatable)")
	fs.StringVar(&o.Prompts, "prompts", "", "a file of prompts, a path or URL: one per line, or JSON lines with a \"prompt\" field (.jsonl, .json)")
	fs.IntVar(&o.Samples, "samples", 1, fmt.Sprintf("samples per prompt, or from BOS without prompts (1..%d in all)", maxGenSamples))
	fs.IntVar(&o.MaxNew, "max-new", 256, fmt.Sprintf("most tokens generated per sample (1..%d)", maxGenNew))
	fs.Float64Var(&o.Temperature, "temperature", 1, fmt.Sprintf("softmax temperature, 0 = greedy (0..%d)", maxGenTemp))
	fs.IntVar(&o.TopK, "top-k", 0, "sample among the K most likely tokens only (0 = all)")
	fs.Float64Var(&o.TopP, "top-p", 1, "nucleus sampling: among the most likely tokens reaching this probability (0..1; 1 = all)")
	fs.Uint64Var(&o.Seed, "seed", 1, "sample i draws with seed SEED + i")
	fs.IntVar(&o.Batch, "batch", 16, fmt.Sprintf("prompts run together (1..%d)", maxGenBatch))
	fs.IntVar(&o.EOS, "eos", -1, "the id that ends a sample (default: the tokenizer's EOS, else the model's; -1 = none)")
	fs.StringVar(&o.Out, "out", "", "write the samples as JSON lines to this file (an s3:// / gs:// object appears when the run ends)")
	fs.StringVar(&o.Tokens, "tokens", "", "write the samples as a token dataset (.parquet, or .arrow) for distill extract; a path or an s3:// / gs:// location")
	fs.IntVar(&o.SeqLen, "seq-len", 0, fmt.Sprintf("--tokens: tokens per window, T (windows hold T+1; 1..%d)", dataset.MaxSeqLen))
	fs.IntVar(&o.Threads, "threads", 0, "threads: onnxruntime intra-op, or the checkpoint's matrix products (0 = default; at most 4 per core)")
	fs.StringVar(&o.Lib, "ort-lib", "", "onnxruntime shared library (default: $"+extract.EnvLibraryPath+", then the project cache from make setup)")
	fs.Lookup("eos").DefValue = "the tokenizer's EOS"
	o.eosFlag = fs.Lookup("eos")
}

func (o *generateOptions) validate() error {
	o.eosSet = o.eosFlag.Changed
	switch {
	case o.Model == "":
		return usageError("generate needs --model M (an .onnx file or a checkpoint directory)")
	case o.Tokenizer == "":
		return usageError("generate needs --tokenizer TOK (the model's tokenizer)")
	case len(o.Prompt) > 0 && o.Prompts != "":
		return usageError("--prompt and --prompts both given; use one")
	case o.Tokens != "" && o.SeqLen == 0:
		return usageError("--tokens needs --seq-len T (the window length of the token dataset)")
	case o.Tokens == "" && o.SeqLen != 0:
		return usageError("--seq-len is for --tokens; give --tokens FILE too")
	case o.eosSet && o.EOS < -1:
		return usageError("--eos %d: want a token id, or -1 for none", o.EOS)
	}
	for _, err := range []error{
		checkRange("--samples", o.Samples, 1, maxGenSamples),
		checkRange("--max-new", o.MaxNew, 1, maxGenNew),
		checkFloat("--temperature", o.Temperature, 0, maxGenTemp),
		checkRange("--top-k", o.TopK, 0, 1<<30),
		checkFloat("--top-p", o.TopP, 0, 1),
		checkRange("--batch", o.Batch, 1, maxGenBatch),
		checkThreads(o.Threads),
	} {
		if err != nil {
			return err
		}
	}
	if o.TopP == 0 {
		return usageError("--top-p 0 keeps no token; want a probability in (0, 1]")
	}
	if o.Tokens != "" {
		if err := checkRange("--seq-len", o.SeqLen, 1, dataset.MaxSeqLen); err != nil {
			return err
		}
		if _, err := mnistFormat(o.Tokens, ""); err != nil {
			return err
		}
	}
	ins := []guard.Path{{Flag: "--model", Path: o.Model}, {Flag: "--tokenizer", Path: o.Tokenizer}}
	if o.Prompts != "" {
		ins = append(ins, guard.Path{Flag: "--prompts", Path: o.Prompts})
	}
	if o.Out != "" && o.Tokens != "" {
		a, b := store.Abs(o.Out), store.Abs(o.Tokens)
		if a == b {
			return usageError("--out and --tokens are the same file %s; choose two", o.Out)
		}
	}
	return checkPaths(ins, []guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.File}, {Flag: "--tokens", Path: o.Tokens, Kind: guard.File}})
}

// openLM opens path as a language model: a directory without model.onnx
// through the Go forward (lm.OpenCheckpoint), anything else through
// onnxruntime (onnxlm.Open).
//
// A remote path (s3://, gs://) is a checkpoint when it is a prefix without
// model.onnx; both openers download it and name it as given.
func openLM(path, lib string, threads int) (lm.Model, error) {
	if store.IsRemote(path) {
		ctx := context.Background()
		isDir, err := store.IsDir(ctx, path)
		if err != nil {
			return nil, err
		}
		if isDir {
			if _, err := store.Stat(ctx, store.Join(path, onnxlm.ModelFile)); errors.Is(err, fs.ErrNotExist) {
				return lm.OpenCheckpoint(path, threads)
			}
		}
		return onnxlm.Open(path, &onnxlm.Options{Lib: lib, Threads: threads})
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, onnxlm.ModelFile)); errors.Is(err, os.ErrNotExist) {
			return lm.OpenCheckpoint(path, threads)
		}
	}
	return onnxlm.Open(path, &onnxlm.Options{Lib: lib, Threads: threads})
}

// genPrompt is one prompt: its text and ids.
type genPrompt struct {
	text string
	ids  []int64
}

// readPrompts returns the prompts of --prompt or --prompts (texts only).
func (o *generateOptions) readPrompts() ([]string, error) {
	if o.Prompts == "" {
		return o.Prompt, nil
	}
	f, err := store.Open(context.Background(), o.Prompts)
	if err != nil {
		return nil, fmt.Errorf("--prompts: %w", err)
	}
	defer f.Close()
	ext := strings.ToLower(filepath.Ext(o.Prompts))
	jsonl := ext == ".jsonl" || ext == ".json"
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if !utf8.ValidString(text) || strings.ContainsRune(text, 0) {
			return nil, fmt.Errorf("--prompts %s:%d: not UTF-8 text (a binary file?); give a text file of prompts, one per line", o.Prompts, line)
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		if jsonl {
			var obj struct {
				Prompt *string `json:"prompt"`
			}
			if err := json.Unmarshal([]byte(text), &obj); err != nil || obj.Prompt == nil {
				return nil, fmt.Errorf("--prompts %s:%d: want a JSON object with a string field \"prompt\" (%v)", o.Prompts, line, cmpErr(err, "no prompt field"))
			}
			text = *obj.Prompt
		}
		out = append(out, text)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--prompts %s: %w", o.Prompts, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--prompts %s holds no prompt", o.Prompts)
	}
	return out, nil
}

// cmpErr returns err's message, or msg when err is nil.
func cmpErr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

// genRecord is one line of --out.
type genRecord struct {
	Index       int     `json:"index"`
	Seed        uint64  `json:"seed"`
	Prompt      string  `json:"prompt"`
	Text        string  `json:"text"`
	PromptIDs   []int64 `json:"prompt_ids"`
	IDs         []int64 `json:"ids"`
	Stop        string  `json:"stop"`
	Temperature float64 `json:"temperature"`
	TopK        int     `json:"top_k"`
	TopP        float64 `json:"top_p"`
	Model       string  `json:"model"`
}

func runGenerate(ctx context.Context, o *generateOptions) (err error) {
	tok, tinfo, err := tokenizer.Load(o.Tokenizer)
	if err != nil {
		return fmt.Errorf("--tokenizer: %w", err)
	}
	texts, err := o.readPrompts()
	if err != nil {
		return err
	}
	m, err := openLM(o.Model, o.Lib, o.Threads)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	defer m.Close()
	info := m.Info()
	if info.Vocab != tok.VocabSize() {
		return fmt.Errorf("the model scores %d tokens but the tokenizer %s has %d: give the model's own tokenizer", info.Vocab, o.Tokenizer, tok.VocabSize())
	}
	eos := info.EOS
	if id, ok := tok.Special("eos"); ok {
		eos = id
	}
	if o.eosSet {
		if o.EOS >= info.Vocab {
			return usageError("--eos %d: beyond the model's %d-token vocabulary", o.EOS, info.Vocab)
		}
		eos = o.EOS
	}
	// The prompts, each --samples times; from BOS without any.
	var prompts []genPrompt
	if len(texts) == 0 {
		bos, ok := tok.Special("bos")
		if !ok {
			bos = info.BOS
		}
		if bos < 0 {
			return usageError("neither the tokenizer nor the model has a BOS token to start from: give --prompt")
		}
		prompts = []genPrompt{{"", []int64{int64(bos)}}}
	} else {
		for i, text := range texts {
			ids, err := tok.Encode(text, true)
			if err != nil {
				return fmt.Errorf("prompt %d: %w", i+1, err)
			}
			if len(ids) == 0 {
				return fmt.Errorf("prompt %d (%q) encodes to no token (the tokenizer adds no BOS): give some text", i+1, text)
			}
			p := genPrompt{text, make([]int64, len(ids))}
			for j, id := range ids {
				p.ids[j] = int64(id)
			}
			if err := lm.CheckPrompt(p.ids, info); err != nil {
				return fmt.Errorf("prompt %d: %w", i+1, err)
			}
			prompts = append(prompts, p)
		}
	}
	if n := len(prompts) * o.Samples; n > maxGenSamples {
		return usageError("%d prompts × --samples %d = %d samples: at most %d per run; split the prompts", len(prompts), o.Samples, n, maxGenSamples)
	}
	var all []genPrompt
	var ids [][]int64
	for _, p := range prompts {
		for range o.Samples {
			all = append(all, p)
			ids = append(ids, p.ids)
		}
	}

	// The JSONL file is created with the first sample, so that a run that
	// fails before any leaves none. Each sample is one write of a whole
	// line. A local file grows line by line; a remote one (s3://, gs://)
	// is one streamed upload that appears, with every line finished, when
	// the run ends: done, interrupted (Ctrl-C) or failed, as the local file
	// stays then. A crash leaves no remote object.
	var jsonl io.Writer
	var finish func() error // sync and close, or commit the upload
	openJSONL := func() error {
		if jsonl != nil {
			return nil
		}
		if store.IsRemote(o.Out) {
			// Not ctx: an interrupt commits the finished lines.
			w, err := store.Create(context.Background(), o.Out)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			jsonl, finish = w, func() error { _, err := w.Commit(); return err }
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
			return err
		}
		f, err := os.Create(o.Out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		jsonl, finish = f, func() error {
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		return nil
	}
	defer func() {
		if finish != nil {
			if cerr := finish(); err == nil && cerr != nil {
				err = fmt.Errorf("--out: %w", cerr)
			}
		}
	}()
	var tw *dataset.TokenWriter
	tokensPath := o.Tokens // a remote --tokens is written here, then uploaded
	if store.IsRemote(o.Tokens) {
		tmp, err := os.MkdirTemp("", "distill-tokens-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		tokensPath = filepath.Join(tmp, store.Base(o.Tokens))
	}
	if o.Tokens != "" {
		if err := os.MkdirAll(filepath.Dir(tokensPath), 0o755); err != nil {
			return err
		}
		format, _ := mnistFormat(o.Tokens, "")
		var bosp, eosp *int
		if id, ok := tok.Special("bos"); ok {
			bosp = &id
		}
		if id, ok := tok.Special("eos"); ok {
			eosp = &id
		}
		tw, err = dataset.NewTokenWriter(tokensPath, tok.VocabSize(), bosp, eosp, tinfo, &dataset.TokensOptions{
			SeqLen: o.SeqLen, EOS: eosp != nil, Format: format, Tool: "distill generate " + version,
			TextOptions: dataset.TextOptions{Split: "none"}})
		if err != nil {
			return fmt.Errorf("--tokens: %w", err)
		}
		defer tw.Abort()
	}
	var stdout io.Writer
	if o.Out == "" && tw == nil {
		stdout = cmdOut
	}
	summary := cmdOut
	if stdout != nil {
		summary = cmdErr
	}

	start := time.Now()
	var last time.Time
	var tokens int64
	var done int
	opts := &lm.GenerateOptions{
		Sampling: lm.Sampling{Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP},
		MaxNew:   o.MaxNew, Batch: o.Batch, Seed: o.Seed, Stop: []int64{},
		Progress: func(p lm.Progress) {
			tokens = p.Tokens
			if now := time.Now(); now.Sub(last) >= 5*time.Second && now.Sub(start) >= time.Second {
				last = now
				fmt.Fprintf(cmdErr, "generate: %s/%s samples, %s tokens, %s tokens/s\n",
					human.Digits(int64(p.Samples)), human.Digits(int64(p.Total)), human.Digits(p.Tokens), human.Digits(int64(p.TokensPerSecond())))
			}
		},
		OnSample: func(s lm.Sample) error {
			p := all[s.Index]
			full := tok.Decode(toInts(append(append([]int64{}, p.ids...), s.IDs...)), true)
			text := tok.Decode(toInts(s.IDs), true)
			if head := tok.Decode(toInts(p.ids), true); strings.HasPrefix(full, head) {
				text = full[len(head):]
			}
			if o.Out != "" {
				if err := openJSONL(); err != nil {
					return err
				}
				line, err := json.Marshal(genRecord{Index: s.Index, Seed: s.Seed, Prompt: p.text, Text: text, PromptIDs: p.ids, IDs: s.IDs, Stop: s.Stop,
					Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, Model: info.SHA256})
				if err != nil {
					return err
				}
				if _, err := jsonl.Write(append(line, '\n')); err != nil { // one write per whole line
					return fmt.Errorf("--out: %w", err)
				}
			}
			if tw != nil {
				doc := make([]int32, 0, len(p.ids)+len(s.IDs))
				for _, id := range append(append([]int64{}, p.ids...), s.IDs...) {
					doc = append(doc, int32(id))
				}
				if err := tw.Add(doc); err != nil {
					return fmt.Errorf("--tokens: %w", err)
				}
			}
			if stdout != nil {
				if s.Index > 0 {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintln(stdout, full)
			}
			done++
			return nil
		},
	}
	if eos >= 0 {
		opts.Stop = []int64{int64(eos)}
	}
	genErr := lm.Generate(ctx, m, ids, opts)
	el := time.Since(start)
	interrupted := errors.Is(genErr, context.Canceled) || errors.Is(genErr, context.DeadlineExceeded)
	if genErr != nil && !interrupted {
		return genErr
	}
	rate := float64(tokens) / max(el.Seconds(), 1e-9)
	fmt.Fprintf(summary, "generated %s samples of %s (%s tokens) with %s (%s) in %.1fs: %s tokens/s\n",
		human.Digits(int64(done)), human.Digits(int64(len(all))), human.Digits(tokens), o.Model, info.Kind, el.Seconds(), human.Digits(int64(rate)))
	if o.Out != "" && jsonl == nil && done == 0 {
		fmt.Fprintf(cmdErr, "distill generate: no sample finished: %s not written\n", o.Out)
	}
	if jsonl != nil {
		err := finish()
		finish = nil
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		fmt.Fprintf(summary, "wrote %s samples as JSON lines to %s\n", human.Digits(int64(done)), o.Out)
	}
	if tw != nil {
		tw.Meta().Inputs = []dataset.TokensInput{{Path: info.Path, Format: "generated:" + info.Kind, Bytes: info.Bytes, SHA256: info.SHA256,
			Documents: tw.Meta().Documents, Tokens: tw.Meta().Tokens}}
		meta, err := tw.Commit()
		switch {
		case err != nil && interrupted && errors.Is(err, dataset.ErrShortCorpus):
			fmt.Fprintf(cmdErr, "distill generate: nothing written to %s: the %s samples finished fill no window of %d tokens\n", o.Tokens, human.Digits(int64(done)), o.SeqLen+1)
		case err != nil:
			return fmt.Errorf("--tokens: %w", err)
		case tokensPath != o.Tokens:
			if _, err := store.Upload(context.Background(), tokensPath, o.Tokens); err != nil {
				return fmt.Errorf("--tokens: %w", err)
			}
			fallthrough
		default:
			fmt.Fprintf(summary, "wrote %s windows of %d tokens (seq-len %d) from %s documents to %s (%s tokens dropped at the end)\n",
				human.Digits(meta.Rows()), meta.Window, meta.SeqLen, human.Digits(meta.Documents), o.Tokens, human.Digits(meta.DroppedTokens))
		}
	}
	if interrupted {
		fmt.Fprintf(cmdErr, "distill generate: interrupted after %s of %s samples; the outputs hold those\n", human.Digits(int64(done)), human.Digits(int64(len(all))))
	}
	return genErr
}

func toInts(ids []int64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/store"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "inspect",
		UsageLine: "CACHE [CACHE...] [--rows N] [--verify] [--gc] [--json]",
		Short:     "describe a cache: schema, size, manifest, first rows; --verify checks it",
		Long: `Describe a cache directory (or several shard directories, or a directory
holding shard-IIIII-of-NNNNN subdirectories): its Arrow schema, rows, part
files, bytes on disk and per sample, the manifest (teacher, score kind,
dataset, preprocessing, extraction and storage settings, tool version), and
the first --rows rows with their label and five most probable classes.

Probabilities are the softmax of the stored scores at temperature 1. For a
top-k cache they are exp(topk_logit - logsumexp), exact because logsumexp
was taken over all classes; "rest" is the probability of the classes not
shown.

A sharded cache with shards missing still opens: inspect reports which of
the N are missing.

--npy-dir DIR writes a per-token cache as NumPy files in the layout of
the PyTorch peer's seq_targets.py (../shared/peers), ordered by row id, so
torch_seq_kd_train.py --data-dir DIR trains on the same targets:
tokens-SPLIT.npy (int32 [N, T+1]: the cached input ids, then the last
label; the cache needs extract --keep-input), and for a top-k cache
teacher-SPLIT-topk-index.npy (int32 [N, T, k]), teacher-SPLIT-topk-logit.npy
(float32 logits) and teacher-SPLIT-lse.npy (float32 [N, T]), for a dense
one teacher-SPLIT-logits.npy (float32 [N, T, V]); --npy-split names SPLIT.

A CACHE may be a directory, file://PATH, s3://BUCKET/PREFIX or
gs://BUCKET/PREFIX. Only parts a committed manifest.json names are read;
shards that have not committed (an extraction running or interrupted) are
reported with their attempts' progress.

--verify reads every part once: size and sha256 against the manifest,
schema and embedded manifest, batch and row counts, and a scan of all
float values for NaN and Inf. Each problem is printed on its own line. It
also lists leftovers: part files and journals of other attempts (a failed
run, a duplicate worker that lost the commit) that no manifest names.
--gc removes them.

Exit codes: 0 ok, 1 the cache cannot be read or --verify found a problem
(including missing shards), 2 usage error.`,
		Flags: func(fs *pflag.FlagSet) func(context.Context, []string) error {
			var o inspectOptions
			o.AddFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want at least one cache directory")
				}
				if err := checkRange("--rows", o.Rows, 0, maxBatch); err != nil {
					return err
				}
				var inputs []guard.Path
				for _, a := range args {
					inputs = append(inputs, guard.Path{Flag: "CACHE", Path: a})
				}
				inputs = append(inputs, guard.Path{Flag: "--tokenizer", Path: o.Tokenizer})
				if !npySplit.MatchString(o.NPYSplit) {
					return usageError("--npy-split %q: want a name of letters, digits and _ (it names the files, e.g. tokens-train.npy)", o.NPYSplit)
				}
				if err := checkPaths(inputs, []guard.Path{{Flag: "--logits-npy", Path: o.NPY, Kind: guard.File}, {Flag: "--npy-dir", Path: o.NPYDir, Kind: guard.Dir}}); err != nil {
					return err
				}
				return runInspect(ctx, cmdOut, o, args)
			}
		},
	})
}

// inspectOptions are the flags of distill inspect.
type inspectOptions struct {
	Rows   int    // first rows to print
	Verify bool   // run formats.Verify
	JSON   bool   // print the report as JSON
	GC     bool   // remove leftovers of other attempts (formats.Cache.GC)
	NPY    string // write the full scores as a [rows, C] float32 .npy
	// NPYDir receives a per-token cache's windows and targets as .npy
	// files in seq_targets.py's layout, named with NPYSplit.
	NPYDir, NPYSplit string
	// Tokenizer decodes the windows of a per-token cache; "" = the one
	// recorded in its token dataset (distill data text).
	Tokenizer string
}

// AddFlags registers the options' flags on fs.
func (o *inspectOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.Rows, "rows", 3, "print the first N rows with their top-5 classes (0 for none)")
	fs.BoolVar(&o.Verify, "verify", false, "check every part's sha256, schema and row counts, scan for NaN/Inf; exit 1 on a problem")
	fs.BoolVar(&o.JSON, "json", false, "print the report as one JSON object")
	fs.BoolVar(&o.GC, "gc", false, "remove the files of other attempts that no committed manifest names (listed by --verify); uncommitted shards are left for --resume")
	fs.StringVar(&o.NPY, "logits-npy", "", "also write the scores as a NumPy [rows, C] float32 array, ordered by row id (full-logit caches)")
	fs.StringVar(&o.NPYDir, "npy-dir", "", "per-token caches: also write the windows and teacher targets as .npy files in the layout of ../shared/peers/seq_targets.py (tokens-SPLIT.npy, teacher-SPLIT-topk-index.npy, ...), for its PyTorch peer's --data-dir")
	fs.StringVar(&o.NPYSplit, "npy-split", "train", "the split named in --npy-dir's file names, e.g. train or val")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "per-token caches: decode the first --rows windows and the teacher's top-5 next tokens with this tokenizer (default: the token dataset's)")
}

// runInspect opens the cache at paths, builds the report and writes it to
// w. It returns an error if the cache cannot be opened, its first rows
// cannot be read, or verification fails (after writing the report).
func runInspect(ctx context.Context, w io.Writer, o inspectOptions, paths []string) error {
	c, err := formats.OpenWithOptions(&formats.ReaderOptions{AllowMissingShards: true}, paths...)
	if err != nil {
		return err
	}
	defer c.Close()
	// A tokenizer asked for is loaded first: a bad one is an error, not a
	// note after the summary.
	var tok tokenizer.Tokenizer
	if o.Tokenizer != "" {
		if tok, _, err = tokenizer.Load(o.Tokenizer); err != nil {
			return fmt.Errorf("--tokenizer: %w", err)
		}
	}
	rep, err := formats.Summarize(c, paths, o.Rows)
	if err != nil {
		return err
	}
	if o.NPY != "" {
		if err := writeLogitsNPY(c, o.NPY); err != nil {
			return err
		}
	}
	if o.NPYDir != "" {
		if err := writeSeqNPY(c, o.NPYDir, o.NPYSplit); err != nil {
			return err
		}
	}
	for _, dir := range c.Uncommitted() {
		as, err := formats.Attempts(dir)
		if err != nil {
			return err
		}
		u := formats.SummaryUncommitted{Dir: dir, Attempts: len(as)}
		for _, a := range as {
			u.Rows = max(u.Rows, a.Manifest.Rows)
		}
		rep.Uncommitted = append(rep.Uncommitted, u)
	}
	var verr error
	if o.Verify && ctx.Err() == nil {
		vr, err := formats.Verify(c)
		rep.Verify = formats.SummarizeVerify(vr, rep.ShardCount)
		verr = err
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if err := writeInspectText(w, rep); err != nil {
			return err
		}
		if rep.Positions > 0 && o.Rows > 0 {
			if err := writeWindows(w, c, o, tok); err != nil {
				fmt.Fprintf(w, "\nwindows: not decoded: %v\n", err)
			}
		}
	}
	if o.GC && ctx.Err() == nil {
		removed, err := c.GC()
		var bytes int64
		for _, l := range removed {
			fmt.Fprintf(w, "gc: removed %s\n", store.Join(l.Dir, l.Name))
			bytes += l.Size
		}
		fmt.Fprintf(w, "gc: removed %s (%s) that no manifest names\n", plural(len(removed), "file"), human.Bytes(bytes))
		if err != nil {
			return err
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case verr != nil:
		return fmt.Errorf("cache failed verification: %s", plural(len(rep.Verify.Problems), "problem"))
	case rep.RowsError != "":
		return errors.New(rep.RowsError)
	}
	return nil
}

// writeInspectText prints the report for people.
func writeInspectText(out io.Writer, rep *formats.Summary) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	m := rep.Manifest
	s := m.Settings
	fmt.Fprintf(w, "cache\t%s\n", strings.Join(rep.Paths, " "))
	fmt.Fprintf(w, "rows\t%d\n", rep.Rows)
	fmt.Fprintf(w, "parts\t%d %s files, %d batches of up to %d rows\n", rep.Parts, s.Format, rep.Batches, s.RowsPerBatch)
	most := ""
	if s.Samples > 0 {
		most = "at most " // the lists hold only the drawn ids
	}
	fmt.Fprintf(w, "on disk\t%s in part files (%d bytes), %.1f bytes/sample; values uncompressed %s%d bytes/sample\n",
		human.Bytes(rep.Bytes), rep.Bytes, rep.BytesPerSample, most, rep.RawBytesPerSample)
	if rep.Positions > 0 {
		fmt.Fprintf(w, "per token\t%d tokens per row, %.1f bytes/token on disk, %s%.1f uncompressed\n",
			rep.Positions, rep.BytesPerToken, most, float64(rep.RawBytesPerSample)/float64(rep.Positions))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "schema\t%d columns\n", len(rep.Schema))
	for _, col := range rep.Schema {
		if col.Shape != nil {
			fmt.Fprintf(w, "  %s\t%s\tshape %s\n", col.Name, col.Type, human.Shape(col.Shape))
		} else {
			fmt.Fprintf(w, "  %s\t%s\n", col.Name, col.Type)
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "manifest")
	fmt.Fprintf(w, "  format version\t%s\n", m.Version)
	fmt.Fprintf(w, "  teacher\t%s, sha256 %s\n", orDash(m.Teacher.File), shortHash(m.Teacher.SHA256))
	fmt.Fprintf(w, "  score kind\t%s\n", m.ScoreKind)
	if m.Teacher.ScoreTensor != "" {
		note := ""
		if m.Teacher.ScoreNote != "" {
			note = " (" + m.Teacher.ScoreNote + ")"
		}
		fmt.Fprintf(w, "  score tensor\t%s%s\n", m.Teacher.ScoreTensor, note)
	}
	fmt.Fprintf(w, "  classes\t%d\n", m.Classes)
	ds := orDash(m.Dataset.Path) + fmt.Sprintf(", %d rows", m.Dataset.Rows)
	if m.Dataset.SHA256 != "" {
		ds += ", sha256 " + shortHash(m.Dataset.SHA256)
	}
	fmt.Fprintf(w, "  dataset\t%s\n", ds)
	fmt.Fprintf(w, "  preprocessing\t%s\n", orDash(strings.Join(m.Dataset.Preprocessing, "; ")))
	if s.Positions > 0 {
		fmt.Fprintf(w, "  tokens\t%d per row (a language-model teacher's; the label of each is the next token)\n", s.Positions)
	}
	switch {
	case s.Samples > 0:
		fmt.Fprintf(w, "  sampled\t%d draws per position from softmax(logits/%g), seed %d: distinct ids with counts and logsumexp\n", s.Samples, s.SampleTemperature, s.SampleSeed)
	case s.TopK > 0:
		fmt.Fprintf(w, "  top-k\t%d of %d classes, with logsumexp over all\n", s.TopK, m.Classes)
	}
	if s.TopKLogProbs {
		fmt.Fprintf(w, "  sparse scores\tstored as log-probabilities (read back as logits)\n")
	}
	if s.TopK == 0 && s.Samples == 0 {
		fmt.Fprintf(w, "  top-k\toff: all %d scores stored\n", m.Classes)
	}
	fmt.Fprintf(w, "  dtype\t%s\n", s.Dtype)
	fmt.Fprintf(w, "  labels\t%s\n", yesNo(s.HasLabel))
	fmt.Fprintf(w, "  hidden\t%s\n", fmtSpecs(s.Hidden))
	fmt.Fprintf(w, "  inputs\t%s\n", fmtSpecs(s.Inputs))
	if s.BatchSize > 0 {
		fmt.Fprintf(w, "  batch size\t%d\n", s.BatchSize)
	}
	fmt.Fprintf(w, "  shard\t%d of %d\n", s.ShardIndex, s.ShardCount)
	fmt.Fprintf(w, "  storage\t%s, compression %s, %d rows per batch\n", s.Format, s.Compression, s.RowsPerBatch)
	fmt.Fprintf(w, "  tool version\t%s\n", orDash(m.Tool))
	fmt.Fprintf(w, "  created\t%s\n", m.Created.Format("2006-01-02 15:04:05 MST"))
	if rep.ShardCount > 1 {
		fmt.Fprintln(w)
		present := len(rep.Shards)
		fmt.Fprintf(w, "shards\t%d of %d present", present, rep.ShardCount)
		if len(rep.MissingShards) > 0 {
			fmt.Fprintf(w, ", missing %s", joinInts(rep.MissingShards))
		}
		fmt.Fprintln(w)
		for _, sh := range rep.Shards {
			fmt.Fprintf(w, "  shard %d\t%d rows in %d parts, %s\n", sh.Index, sh.Rows, sh.Parts, human.Bytes(sh.Bytes))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}

	if len(rep.FirstRows) > 0 || rep.RowsError != "" {
		fmt.Fprintf(out, "\nfirst rows: top-%d classes, softmax of the stored scores at T=1\n", formats.SummaryTopClasses)
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, r := range rep.FirstRows {
			fmt.Fprintf(w, "  row %d", r.Row)
			if r.Label != nil {
				fmt.Fprintf(w, "\tlabel %d", *r.Label)
			}
			for _, t := range r.Top {
				fmt.Fprintf(w, "\t%d: %.4f", t.Class, t.P)
			}
			fmt.Fprintf(w, "\trest %.4f\n", r.Rest)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if rep.RowsError != "" {
			fmt.Fprintf(out, "  %s\n", rep.RowsError)
		}
	}

	if v := rep.Verify; v != nil {
		if v.OK {
			fmt.Fprintf(out, "\nverify: OK: %d parts, %d batches, %d rows; sizes, sha256, schema and row counts match the manifest; no NaN or Inf\n",
				v.Parts, v.Batches, v.Rows)
		} else {
			fmt.Fprintf(out, "\nverify: FAILED: %s (%d parts, %d batches, %d rows read)\n", plural(len(v.Problems), "problem"), v.Parts, v.Batches, v.Rows)
			for _, p := range v.Problems {
				fmt.Fprintf(out, "  %s\n", p)
			}
		}
		if len(v.Leftovers) > 0 {
			fmt.Fprintf(out, "leftovers: %s (%s) of other attempts that no manifest names; never read; remove them with distill inspect --gc\n",
				plural(len(v.Leftovers), "file"), human.Bytes(v.LeftoverBytes))
			for _, l := range v.Leftovers {
				fmt.Fprintf(out, "  %s\n", l)
			}
		}
	}
	for _, u := range rep.Uncommitted {
		fmt.Fprintf(out, "\nnot committed: %s: %s, up to %d rows (the extraction is running, or was interrupted: rerun it with --resume)\n",
			u.Dir, plural(u.Attempts, "attempt"), u.Rows)
	}
	return nil
}

func fmtSpecs(specs []formats.TensorSpec) string {
	if len(specs) == 0 {
		return "-"
	}
	parts := make([]string, len(specs))
	for i, t := range specs {
		parts[i] = fmt.Sprintf("%s %s %s", t.Name, human.Shape(t.Shape), orDefault(t.Dtype, formats.Float32))
	}
	return strings.Join(parts, ", ")
}

// plural returns "1 problem", "2 problems".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

// shortHash returns the first 12 hex digits of a sha256, enough to tell
// files apart by eye.
func shortHash(h string) string {
	if h == "" {
		return "-"
	}
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeLogitsNPY writes a full-logit cache's scores as a NumPy v1.0 .npy
// file of shape [rows, C], float32, row i holding the sample with row id i
// (formats.Cache.DenseScores). The file appears atomically.
func writeLogitsNPY(c *formats.Cache, path string) error {
	scores, err := c.DenseScores()
	if err != nil {
		return fmt.Errorf("--logits-npy: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	cfg := c.Config()
	return dataset.WriteNPYFile(path, []int{int(c.NumRows()), cfg.ScoreRows(1) * cfg.Classes}, scores)
}

// writeWindows prints the first o.Rows windows of a per-token cache as
// text (its next-token labels decoded, but the last) and the teacher's
// five most probable next tokens there, with their probabilities
// exp(score − logsumexp), beside the token the text has. tok is --tokenizer's
// (nil: the one the cache's token dataset records).
func writeWindows(w io.Writer, c *formats.Cache, o inspectOptions, tok tokenizer.Tokenizer) error {
	path := o.Tokenizer
	if tok == nil {
		meta, err := dataset.ReadTokensMeta(c.Manifest().Dataset.Path)
		if err != nil {
			return fmt.Errorf("the cache's dataset records no tokenizer (%v); name one with --tokenizer", err)
		}
		path = meta.Tokenizer.Path
		if tok, _, err = tokenizer.Load(path); err != nil {
			return err
		}
	}
	cfg := c.Config()
	T := cfg.Positions
	fmt.Fprintf(w, "\nwindows: the text of each window's labels, and the teacher's top-5 next tokens after it (tokenizer %s)\n", path)
	shown := 0
	for b, err := range c.All() {
		if err != nil {
			return err
		}
		for r := 0; r < b.Len() && shown < o.Rows; r++ {
			ids := make([]int, T)
			for t := range T {
				if cfg.HasLabel {
					ids[t] = int(b.Labels[r*T+t])
				}
			}
			// Position T−1 predicts the last label: show the text before
			// it, then the teacher's candidates for it.
			prefix := tok.Decode(ids[:T-1], false)
			piece := func(id int) string {
				return strings.TrimPrefix(tok.Decode(append(slices.Clone(ids[:T-1]), id), false), prefix)
			}
			fmt.Fprintf(w, "  row %d: %q\n", b.Rows[r], prefix)
			q := r*T + T - 1 // the last position
			type cand struct {
				id int
				p  float64
			}
			var top []cand
			if k := cfg.TopK; k > 0 {
				for j := range k {
					if cfg.Samples == 0 || b.SampleCount[q*k+j] > 0 {
						top = append(top, cand{int(b.TopKIndex[q*k+j]), math.Exp(float64(b.TopKLogit[q*k+j] - b.LogSumExp[q]))})
					}
				}
			} else {
				s := b.Logits[q*cfg.Classes : (q+1)*cfg.Classes]
				lse := formats.LogSumExp(s)
				for id, v := range s {
					top = append(top, cand{id, math.Exp(float64(v) - lse)})
				}
				slices.SortStableFunc(top, func(a, b cand) int { return cmp.Compare(b.p, a.p) })
			}
			var parts []string
			for _, c := range top[:min(len(top), 5)] {
				parts = append(parts, fmt.Sprintf("%q %.3f", piece(c.id), c.p))
			}
			fmt.Fprintf(w, "    next: %s (the text has %q)\n", strings.Join(parts, ", "), piece(ids[T-1]))
			shown++
		}
		if shown >= o.Rows {
			break
		}
	}
	return nil
}

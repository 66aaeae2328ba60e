package main

import (
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
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		Name:      "inspect",
		UsageLine: "CACHE [CACHE...] [--rows N] [--verify] [--json]",
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

--verify reads every part once: size and sha256 against the manifest,
schema and embedded manifest, batch and row counts, and a scan of all
float values for NaN and Inf. Each problem is printed on its own line.

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
				if err := guard.Check(inputs, []guard.Path{{Flag: "--logits-npy", Path: o.NPY, Kind: guard.File}}); err != nil {
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
	NPY    string // write the full scores as a [rows, C] float32 .npy
}

// AddFlags registers the options' flags on fs.
func (o *inspectOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.Rows, "rows", 3, "print the first N rows with their top-5 classes (0 for none)")
	fs.BoolVar(&o.Verify, "verify", false, "check every part's sha256, schema and row counts, scan for NaN/Inf; exit 1 on a problem")
	fs.BoolVar(&o.JSON, "json", false, "print the report as one JSON object")
	fs.StringVar(&o.NPY, "logits-npy", "", "also write the scores as a NumPy [rows, C] float32 array, ordered by row id (full-logit caches)")
}

// topClasses is how many classes a row lists.
const topClasses = 5

// inspectReport is everything inspect prints; --json prints it as is.
type inspectReport struct {
	Paths             []string         `json:"paths"`
	Rows              int64            `json:"rows"`                 // rows in the shards present
	Parts             int              `json:"parts"`                // part files
	Batches           int              `json:"batches"`              // record batches / row groups
	Bytes             int64            `json:"bytes"`                // part files on disk
	BytesPerSample    float64          `json:"bytes_per_sample"`     // Bytes / Rows
	RawBytesPerSample int64            `json:"raw_bytes_per_sample"` // values as stored, before compression
	Schema            []inspectColumn  `json:"schema"`
	Manifest          formats.Manifest `json:"manifest"` // of the lowest shard present, without its parts list
	ShardCount        int              `json:"shard_count"`
	Shards            []inspectShard   `json:"shards"`
	MissingShards     []int            `json:"missing_shards"`
	FirstRows         []inspectRow     `json:"first_rows"`
	RowsError         string           `json:"rows_error,omitempty"` // why the first rows could not be read
	Verify            *inspectVerify   `json:"verify,omitempty"`
}

type inspectColumn struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"` // Arrow type
	Shape []int64 `json:"shape,omitempty"`
}

type inspectShard struct {
	Index int   `json:"index"`
	Rows  int64 `json:"rows"`
	Parts int   `json:"parts"`
	Bytes int64 `json:"bytes"`
}

type inspectRow struct {
	Row   int64       `json:"row"`
	Label *int64      `json:"label,omitempty"`
	Top   []classProb `json:"top"`
	Rest  jsonFloat   `json:"rest"` // 1 − Σ Top[i].P: the classes not listed
}

type classProb struct {
	Class int       `json:"class"`
	P     jsonFloat `json:"p"`
}

// jsonFloat is a float64 that JSON encodes NaN and ±Inf (scores a broken
// teacher may produce, which --verify reports) as null.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON implements json.Unmarshaler; null decodes as NaN.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonFloat(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(f))
}

type inspectVerify struct {
	OK            bool     `json:"ok"`
	Parts         int      `json:"parts"`
	Batches       int      `json:"batches"`
	Rows          int64    `json:"rows"`
	NonFinite     int64    `json:"non_finite_rows"`
	NonFiniteRows []int64  `json:"non_finite_row_ids,omitempty"`
	Problems      []string `json:"problems"`
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
	rep, err := buildInspectReport(c, paths, o.Rows)
	if err != nil {
		return err
	}
	if o.NPY != "" {
		if err := writeLogitsNPY(c, o.NPY); err != nil {
			return err
		}
	}
	var verr error
	if o.Verify && ctx.Err() == nil {
		vr, err := formats.Verify(c)
		rep.Verify = verifySummary(vr, rep.ShardCount)
		verr = err
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := writeInspectText(w, rep); err != nil {
		return err
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

// buildInspectReport collects everything but the verification.
func buildInspectReport(c *formats.Cache, paths []string, nRows int) (*inspectReport, error) {
	cfg := c.Config()
	m := c.Manifest()
	m.Parts = nil
	rep := &inspectReport{
		Paths:         paths,
		Rows:          c.NumRows(),
		Batches:       c.NumBatches(),
		Manifest:      m,
		ShardCount:    m.Settings.ShardCount,
		MissingShards: append([]int{}, c.MissingShards()...),
		FirstRows:     []inspectRow{},
	}
	for _, sm := range c.Manifests() {
		sh := inspectShard{Index: sm.Settings.ShardIndex, Rows: sm.Rows, Parts: len(sm.Parts)}
		for _, p := range sm.Parts {
			sh.Bytes += p.Bytes
		}
		rep.Shards = append(rep.Shards, sh)
		rep.Parts += sh.Parts
		rep.Bytes += sh.Bytes
	}
	if rep.Rows > 0 {
		rep.BytesPerSample = float64(rep.Bytes) / float64(rep.Rows)
	}
	schema, err := formats.Schema(cfg)
	if err != nil {
		return nil, err
	}
	shapes := map[string][]int64{}
	for _, h := range cfg.Hidden {
		shapes[formats.HiddenPrefix+h.Name] = h.Shape
	}
	for _, in := range cfg.Inputs {
		shapes[formats.InputPrefix+in.Name] = in.Shape
	}
	for _, f := range schema.Fields() {
		rep.Schema = append(rep.Schema, inspectColumn{Name: f.Name, Type: f.Type.String(), Shape: shapes[f.Name]})
	}
	rep.RawBytesPerSample = rawBytesPerSample(cfg)
	if nRows > 0 {
		for b, err := range c.All() {
			if err != nil {
				rep.RowsError = fmt.Sprintf("reading the first rows: %v", err)
				break
			}
			for r := 0; r < b.Len() && len(rep.FirstRows) < nRows; r++ {
				rep.FirstRows = append(rep.FirstRows, inspectRowOf(cfg, b, r))
			}
			if len(rep.FirstRows) >= nRows {
				break
			}
		}
	}
	return rep, nil
}

// rawBytesPerSample is the size of one row's values in their storage
// types: 8 per int64, 4 per int32 or float32, 2 per float16.
func rawBytesPerSample(cfg formats.Config) int64 {
	size := func(d formats.Dtype) int64 {
		if d == formats.Float16 {
			return 2
		}
		return 4
	}
	n := int64(8) // row
	if cfg.HasLabel {
		n += 8
	}
	if cfg.TopK == 0 {
		n += int64(cfg.Classes) * size(cfg.ScoreDtype)
	} else {
		n += int64(cfg.TopK)*(4+size(cfg.ScoreDtype)) + 4
	}
	for _, h := range cfg.Hidden {
		n += int64(h.Size()) * size(h.Dtype)
	}
	for _, in := range cfg.Inputs {
		n += int64(in.Size()) * 4
	}
	return n
}

// inspectRowOf returns row r of b with its topClasses most probable
// classes.
//
// Full scores s (C values): p_c = exp(s_c − lse), lse = log Σ_c exp(s_c)
// computed as m + log Σ_c exp(s_c − m), m = max_c s_c. Top-k scores:
// p_j = exp(topk_logit_j − logsumexp), with logsumexp over all C classes
// as stored, so the probabilities are exact, not renormalized over k.
func inspectRowOf(cfg formats.Config, b *formats.Batch, r int) inspectRow {
	row := inspectRow{Row: b.Rows[r]}
	if cfg.HasLabel {
		l := b.Labels[r]
		row.Label = &l
	}
	if k := cfg.TopK; k > 0 {
		lse := float64(b.LogSumExp[r])
		for j := 0; j < min(k, topClasses); j++ {
			row.Top = append(row.Top, classProb{Class: int(b.TopKIndex[r*k+j]), P: jsonFloat(math.Exp(float64(b.TopKLogit[r*k+j]) - lse))})
		}
	} else {
		s := b.Logits[r*cfg.Classes : (r+1)*cfg.Classes]
		idx := make([]int, len(s))
		for i := range idx {
			idx[i] = i
		}
		// Descending score, ties to the lower class; NaN last.
		slices.SortStableFunc(idx, func(a, b int) int {
			x, y := s[a], s[b]
			switch {
			case x > y || y != y && x == x:
				return -1
			case x < y || x != x && y == y:
				return 1
			}
			return 0
		})
		lse := formats.LogSumExp(s)
		for _, c := range idx[:min(len(idx), topClasses)] {
			row.Top = append(row.Top, classProb{Class: c, P: jsonFloat(math.Exp(float64(s[c]) - lse))})
		}
	}
	row.Rest = 1
	for _, t := range row.Top {
		row.Rest -= t.P
	}
	if row.Rest < 0 { // float64 rounding when Top holds every class
		row.Rest = 0
	}
	return row
}

// verifySummary turns a formats.Report into printable lines.
func verifySummary(r *formats.Report, shardCount int) *inspectVerify {
	v := &inspectVerify{
		OK: r.OK(), Parts: r.Parts, Batches: r.Batches, Rows: r.Rows,
		NonFinite: r.NonFinite, NonFiniteRows: r.NonFiniteRows, Problems: []string{},
	}
	for _, s := range r.MissingShards {
		v.Problems = append(v.Problems, fmt.Sprintf("missing shard %d of %d (directory %s)", s, shardCount, formats.ShardDirName(s, shardCount)))
	}
	for _, p := range r.Problems {
		v.Problems = append(v.Problems, p.Error())
	}
	if r.NonFinite > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d rows with NaN or Inf values, first row ids %v", r.NonFinite, r.NonFiniteRows))
	}
	return v
}

// writeInspectText prints the report for people.
func writeInspectText(out io.Writer, rep *inspectReport) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	m := rep.Manifest
	s := m.Settings
	fmt.Fprintf(w, "cache\t%s\n", strings.Join(rep.Paths, " "))
	fmt.Fprintf(w, "rows\t%d\n", rep.Rows)
	fmt.Fprintf(w, "parts\t%d %s files, %d batches of up to %d rows\n", rep.Parts, s.Format, rep.Batches, s.RowsPerBatch)
	fmt.Fprintf(w, "on disk\t%s in part files (%d bytes), %.1f bytes/sample; values uncompressed %d bytes/sample\n",
		human.Bytes(rep.Bytes), rep.Bytes, rep.BytesPerSample, rep.RawBytesPerSample)
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
	if s.TopK > 0 {
		fmt.Fprintf(w, "  top-k\t%d of %d classes, with logsumexp over all\n", s.TopK, m.Classes)
	} else {
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
		fmt.Fprintf(out, "\nfirst rows: top-%d classes, softmax of the stored scores at T=1\n", topClasses)
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
// (the cache must hold the row ids 0..rows-1, as an unsharded or complete
// sharded extraction does). The file appears atomically.
func writeLogitsNPY(c *formats.Cache, path string) error {
	cfg := c.Config()
	if cfg.TopK > 0 {
		return fmt.Errorf("--logits-npy: the cache stores top-%d scores, not all %d logits", cfg.TopK, cfg.Classes)
	}
	n, classes := c.NumRows(), cfg.Classes
	out := make([]float32, n*int64(classes))
	seen := make([]bool, n)
	for b, err := range c.All() {
		if err != nil {
			return err
		}
		for i, r := range b.Rows {
			if r < 0 || r >= n || seen[r] {
				return fmt.Errorf("--logits-npy: row id %d is outside 0..%d or repeated; the cache is not one whole dataset", r, n-1)
			}
			seen[r] = true
			copy(out[r*int64(classes):], b.Logits[i*classes:(i+1)*classes])
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return dataset.WriteNPYFile(path, []int{int(n), classes}, out)
}

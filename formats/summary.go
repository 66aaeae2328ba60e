package formats

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/distill-ml/distill/internal/store"
)

// SummaryTopClasses is how many classes a SummaryRow lists.
const SummaryTopClasses = 5

// Summary describes a cache for people and tools: distill inspect prints
// it, and --json prints it as is (the field names are a format).
type Summary struct {
	Paths             []string             `json:"paths"`
	Rows              int64                `json:"rows"`                      // rows in the shards present
	Parts             int                  `json:"parts"`                     // part files
	Batches           int                  `json:"batches"`                   // record batches / row groups
	Bytes             int64                `json:"bytes"`                     // part files on disk
	BytesPerSample    float64              `json:"bytes_per_sample"`          // Bytes / Rows
	RawBytesPerSample int64                `json:"raw_bytes_per_sample"`      // values as stored, before compression
	Positions         int                  `json:"positions,omitempty"`       // T of a per-token cache
	BytesPerToken     float64              `json:"bytes_per_token,omitempty"` // BytesPerSample / Positions
	Schema            []SummaryColumn      `json:"schema"`
	Manifest          Manifest             `json:"manifest"` // of the lowest shard present, without its parts list
	ShardCount        int                  `json:"shard_count"`
	Shards            []SummaryShard       `json:"shards"`
	MissingShards     []int                `json:"missing_shards"`
	FirstRows         []SummaryRow         `json:"first_rows"`
	RowsError         string               `json:"rows_error,omitempty"` // why the first rows could not be read
	Verify            *VerifySummary       `json:"verify,omitempty"`
	Uncommitted       []SummaryUncommitted `json:"uncommitted,omitempty"` // shard directories not committed (distill inspect fills it)
}

type SummaryColumn struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"` // Arrow type
	Shape []int64 `json:"shape,omitempty"`
}

type SummaryShard struct {
	Index int   `json:"index"`
	Rows  int64 `json:"rows"`
	Parts int   `json:"parts"`
	Bytes int64 `json:"bytes"`
}

type SummaryRow struct {
	Row   int64       `json:"row"`
	Label *int64      `json:"label,omitempty"`
	Top   []ClassProb `json:"top"`
	Rest  JSONFloat   `json:"rest"` // 1 − Σ Top[i].P: the classes not listed
}

type ClassProb struct {
	Class int       `json:"class"`
	P     JSONFloat `json:"p"`
}

// JSONFloat is a float64 that JSON encodes NaN and ±Inf (scores a broken
// teacher may produce, which --verify reports) as null.
type JSONFloat float64

// MarshalJSON implements json.Marshaler.
func (f JSONFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON implements json.Unmarshaler; null decodes as NaN.
func (f *JSONFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = JSONFloat(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(f))
}

// SummaryUncommitted is a shard directory with no committed manifest.
type SummaryUncommitted struct {
	Dir      string `json:"dir"`
	Attempts int    `json:"attempts"`
	Rows     int64  `json:"rows"` // the most rows an attempt recorded
}

// VerifySummary is a Verify Report as distill inspect prints it.
type VerifySummary struct {
	OK            bool     `json:"ok"`
	Parts         int      `json:"parts"`
	Batches       int      `json:"batches"`
	Rows          int64    `json:"rows"`
	NonFinite     int64    `json:"non_finite_rows"`
	NonFiniteRows []int64  `json:"non_finite_row_ids,omitempty"`
	Problems      []string `json:"problems"`
	// Leftovers are the files of other attempts no manifest names
	// (location of each), and their total size.
	Leftovers     []string `json:"leftovers"`
	LeftoverBytes int64    `json:"leftover_bytes"`
}

// Summarize describes the cache c opened from paths: rows, parts, bytes,
// the schema, the manifest (of the lowest shard present, without its
// parts list), the shards present and missing, and the first nRows rows
// with their SummaryTopClasses most probable classes. A failure to read
// those rows is recorded in RowsError, not returned.
func Summarize(c *Cache, paths []string, nRows int) (*Summary, error) {
	cfg := c.Config()
	m := c.Manifest()
	m.Parts = nil
	rep := &Summary{
		Paths:         paths,
		Rows:          c.NumRows(),
		Batches:       c.NumBatches(),
		Manifest:      m,
		ShardCount:    m.Settings.ShardCount,
		MissingShards: append([]int{}, c.MissingShards()...),
		FirstRows:     []SummaryRow{},
	}
	for _, sm := range c.Manifests() {
		sh := SummaryShard{Index: sm.Settings.ShardIndex, Rows: sm.Rows, Parts: len(sm.Parts)}
		for _, p := range sm.Parts {
			sh.Bytes += p.Bytes
		}
		rep.Shards = append(rep.Shards, sh)
		rep.Parts += sh.Parts
		rep.Bytes += sh.Bytes
	}
	if rep.Rows > 0 {
		rep.BytesPerSample = float64(rep.Bytes) / float64(rep.Rows)
		if cfg.Positions > 0 {
			rep.BytesPerToken = rep.BytesPerSample / float64(cfg.Positions)
		}
	}
	schema, err := Schema(cfg)
	if err != nil {
		return nil, err
	}
	shapes := map[string][]int64{}
	for _, h := range cfg.Hidden {
		shapes[HiddenPrefix+h.Name] = h.Shape
	}
	for _, in := range cfg.Inputs {
		shapes[InputPrefix+in.Name] = in.Shape
	}
	for _, f := range schema.Fields() {
		rep.Schema = append(rep.Schema, SummaryColumn{Name: f.Name, Type: f.Type.String(), Shape: shapes[f.Name]})
	}
	rep.RawBytesPerSample = RawBytesPerSample(cfg)
	rep.Positions = cfg.Positions
	if nRows > 0 {
		for b, err := range c.All() {
			if err != nil {
				rep.RowsError = fmt.Sprintf("reading the first rows: %v", err)
				break
			}
			for r := 0; r < b.Len() && len(rep.FirstRows) < nRows; r++ {
				rep.FirstRows = append(rep.FirstRows, summaryRow(cfg, b, r))
			}
			if len(rep.FirstRows) >= nRows {
				break
			}
		}
	}
	return rep, nil
}

// RawBytesPerSample is the size of one row's values in their storage
// types: 8 per int64, 4 per int32 or float32, 2 per float16 or uint16, 1
// per uint8 (for a per-token cache, a row is a window of Config.Positions
// tokens). For a sampled cache, whose lists hold only the drawn ids, it is
// the most a row can take: min(S, C) distinct ids at every position.
func RawBytesPerSample(cfg Config) int64 {
	cfg, err := cfg.normalize()
	if err != nil {
		return 0
	}
	return cfg.rawRowBytes()
}

// summaryRow returns row r of b with its SummaryTopClasses most probable
// classes; for a per-token cache, those of the row's first position.
//
// Full scores s (C values): p_c = exp(s_c − lse), lse = log Σ_c exp(s_c)
// computed as m + log Σ_c exp(s_c − m), m = max_c s_c. Top-k scores:
// p_j = exp(topk_logit_j − logsumexp), with logsumexp over all C classes
// as stored, so the probabilities are exact, not renormalized over k.
func summaryRow(cfg Config, b *Batch, r int) SummaryRow {
	row := SummaryRow{Row: b.Rows[r]}
	if cfg.HasLabel {
		l := b.Labels[r*cfg.positions()]
		row.Label = &l
	}
	// The score vector summarized: position 0 of the row.
	r *= cfg.positions()
	if k := cfg.TopK; k > 0 {
		lse := float64(b.LogSumExp[r])
		for j := 0; j < min(k, SummaryTopClasses); j++ {
			row.Top = append(row.Top, ClassProb{Class: int(b.TopKIndex[r*k+j]), P: JSONFloat(math.Exp(float64(b.TopKLogit[r*k+j]) - lse))})
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
		lse := LogSumExp(s)
		for _, c := range idx[:min(len(idx), SummaryTopClasses)] {
			row.Top = append(row.Top, ClassProb{Class: c, P: JSONFloat(math.Exp(float64(s[c]) - lse))})
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

// SummarizeVerify turns a Report into printable lines: each missing shard
// (of shardCount), each problem, and the non-finite rows.
func SummarizeVerify(r *Report, shardCount int) *VerifySummary {
	v := &VerifySummary{
		OK: r.OK(), Parts: r.Parts, Batches: r.Batches, Rows: r.Rows,
		NonFinite: r.NonFinite, NonFiniteRows: r.NonFiniteRows, Problems: []string{}, Leftovers: []string{},
	}
	for _, l := range r.Leftovers {
		v.Leftovers = append(v.Leftovers, store.Join(l.Dir, l.Name))
		v.LeftoverBytes += l.Size
	}
	for _, s := range r.MissingShards {
		v.Problems = append(v.Problems, fmt.Sprintf("missing shard %d of %d (directory %s)", s, shardCount, ShardDirName(s, shardCount)))
	}
	for _, p := range r.Problems {
		v.Problems = append(v.Problems, p.Error())
	}
	if r.NonFinite > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d rows with NaN or Inf values, first row ids %v", r.NonFinite, r.NonFiniteRows))
	}
	return v
}

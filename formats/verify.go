package formats

import (
	"errors"
	"fmt"
	"math"
)

// MaxReportedRows is how many offending row ids a Report lists.
const MaxReportedRows = 10

// Report is the result of Verify.
type Report struct {
	Parts   int   // part files checked
	Batches int   // units decoded
	Rows    int64 // rows decoded

	// MissingShards lists shard indices of the N that were not opened.
	MissingShards []int

	// NonFinite counts rows with a NaN or ±Inf in a float column (logits,
	// topk_logit, logsumexp, hidden or input); NonFiniteRows holds the row
	// ids (column row) of the first MaxReportedRows of them.
	NonFinite     int64
	NonFiniteRows []int64

	// Leftovers lists the files no committed manifest names (Cache.Leftovers):
	// harmless, never read, but space to reclaim with GC. They do not make
	// the report fail.
	Leftovers []Leftover

	// Problems holds one error per damaged part: missing, wrong size or
	// sha256 (*CorruptError), schema or embedded manifest not matching the
	// manifest (wraps ErrSchema), undecodable batch or wrong row count
	// (*CorruptError). Verification of a part stops at its first problem.
	Problems []error
}

// OK reports whether the cache verified clean: all shards present, no
// problems, no non-finite values.
func (r *Report) OK() bool {
	return len(r.MissingShards) == 0 && len(r.Problems) == 0 && r.NonFinite == 0
}

// Err summarizes the report as an error, nil if OK. It wraps every problem
// (errors.Is finds ErrCorrupt, ErrSchema), ErrIncomplete for missing shards
// and ErrCorrupt for non-finite values.
func (r *Report) Err() error {
	var errs []error
	if len(r.MissingShards) > 0 {
		errs = append(errs, fmt.Errorf("%w: missing shards %v", ErrIncomplete, r.MissingShards))
	}
	errs = append(errs, r.Problems...)
	if r.NonFinite > 0 {
		errs = append(errs, fmt.Errorf("%w: %d rows with NaN or Inf values, first row ids %v", ErrCorrupt, r.NonFinite, r.NonFiniteRows))
	}
	return errors.Join(errs...)
}

// Verify reads the whole cache once, in bounded memory: for every part it
// checks size and sha256 against the manifest, the schema and embedded
// manifest, the number of batches and rows of each, and scans all float
// values for NaN and ±Inf; it also lists the leftovers of other attempts
// (Report.Leftovers). It hashes every part itself, whatever
// ReaderOptions.SkipHashCheck says, and its reads of a part it hashed do
// not hash it again. It returns the report and report.Err().
func Verify(c *Cache) (*Report, error) {
	rep := &Report{MissingShards: c.MissingShards()}
	var b Batch
	for _, cp := range c.parts {
		rep.Parts++
		if err := checkPartFile(cp.d, cp.info); err != nil {
			rep.Problems = append(rep.Problems, err)
			continue
		}
		cp.checked() // ReadBatch need not hash it again
		for u := cp.firstUnit; u < cp.firstUnit+cp.numUnits; u++ {
			if err := c.ReadBatch(u, &b); err != nil {
				rep.Problems = append(rep.Problems, err)
				break
			}
			rep.Batches++
			rep.Rows += int64(b.Len())
			scanNonFinite(rep, c.cfg, &b)
		}
	}
	lo, err := c.Leftovers()
	if err != nil {
		rep.Problems = append(rep.Problems, err)
	}
	rep.Leftovers = lo
	return rep, rep.Err()
}

// scanNonFinite records the rows of b holding NaN or ±Inf.
func scanNonFinite(rep *Report, cfg Config, b *Batch) {
	n := b.Len()
	if n == 0 {
		return
	}
	cols := [][]float32{b.Logits, b.TopKLogit, b.LogSumExp}
	for _, h := range cfg.Hidden {
		cols = append(cols, b.Hidden[h.Name])
	}
	for _, in := range cfg.Inputs {
		cols = append(cols, b.Inputs[in.Name])
	}
	// Fast path: most batches are clean.
	clean := true
	for _, v := range cols {
		clean = clean && !hasNonFinite(v)
	}
	if clean {
		return
	}
	for r := 0; r < n; r++ {
		for _, v := range cols {
			if len(v) == 0 {
				continue
			}
			w := len(v) / n
			if hasNonFinite(v[r*w : (r+1)*w]) {
				rep.NonFinite++
				if len(rep.NonFiniteRows) < MaxReportedRows {
					rep.NonFiniteRows = append(rep.NonFiniteRows, b.Rows[r])
				}
				break
			}
		}
	}
}

func isNonFinite(x float32) bool { return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) }

func hasNonFinite(v []float32) bool {
	for _, x := range v {
		if isNonFinite(x) {
			return true
		}
	}
	return false
}

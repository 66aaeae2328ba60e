package train

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/distill-ml/distill/formats"
)

// EnsembleMode is how an Ensemble combines its teachers.
type EnsembleMode string

// The ensemble targets.
const (
	// EnsembleProbs: the weighted mean of the teachers' tempered
	// probabilities (Hinton et al. 2015, §2: "the arithmetic mean of
	// their individual predictive distributions").
	EnsembleProbs EnsembleMode = "probs"
	// EnsembleLogits: the weighted mean of the teachers' logits, the
	// geometric mean of their probabilities renormalized.
	EnsembleLogits EnsembleMode = "logits"
)

// ParseEnsembleMode returns the EnsembleMode named s; "" is EnsembleProbs.
func ParseEnsembleMode(s string) (EnsembleMode, error) {
	switch m := EnsembleMode(s); m {
	case EnsembleProbs, EnsembleLogits:
		return m, nil
	case "":
		return EnsembleProbs, nil
	}
	return "", fmt.Errorf("train: ensemble mode %q, want %s or %s", s, EnsembleProbs, EnsembleLogits)
}

// EnsembleOptions configure NewEnsemble.
type EnsembleOptions struct {
	Mode EnsembleMode // EnsembleProbs (also "") or EnsembleLogits
	// Weights holds one weight ≥ 0 per teacher, in the order of the
	// caches; they are normalized to sum 1. nil: equal weights.
	Weights []float64
	// Temperature is the KD temperature T the targets are for
	// (Options.Temperature); > 0.
	Temperature float64
	// Calibrate rescales each teacher's scores by its own temperature
	// s_i, fitted on the labels, before they are combined (see
	// "Calibration"). The primary cache must have labels.
	Calibrate bool
}

// calibrationRows bounds the rows Calibrate fits each teacher's scale on:
// the first ones of the primary cache, unit by unit.
const calibrationRows = 1 << 16

// ensembleFloor bounds how far below the largest the targets go, in units
// of T: a class at the floor has probability e^−1000 relative to the top
// one, 0 in float64 (and ExpSum's float32 clamp, 1e−38, in KD), where an
// infinite target would make KD's KL NaN.
const ensembleFloor = 1000

// Ensemble is a Source whose teacher scores are the combined target of
// several teachers' caches over the same dataset rows, joined by row id
// (formats.Batch.Rows) (Hinton et al. 2015, https://arxiv.org/abs/1503.02531,
// distil an ensemble into one model). The first cache is the primary: its
// units are the Ensemble's, and it gives the rows, labels, hidden states
// and inputs (through the Source passed to NewEnsemble, such as a
// DatasetSource over it); the other caches give only their teacher scores,
// so their inputs and preprocessing may differ (teachers that want 0..255
// or normalized pixels of the same images).
//
// # Targets
//
// Each teacher i's scores become log-probabilities ℓ_i [C] at T = 1: for
// full scores z_i, ℓ_i = z_i − logsumexp(z_i); for a top-k cache (k
// cached scores t_j, logsumexp LSE over all C), the cached classes get
// ℓ_j = t_j − LSE and each of the m = C − k others the rest bucket's mass
// spread evenly, ℓ_c = log(p_rest/m), p_rest = 1 − Σ_j exp(t_j − LSE)
// (−∞ if p_rest <= 0). Then softmax(ℓ_i/T) is exactly KD's k+1-bucket
// distribution at T (see KD, "Top-k teachers": the m rest classes at
// log(R/m) each sum to the bucket logit a = log m + log(R/m)/T), its rest
// bucket spread over its classes, so that teachers of different k mix
// class by class. With weights w_i normalized to Σ w_i = 1, every row gets
// full scores z̄ [C]:
//
//	probs:   p̄ = Σ_i w_i·softmax(ℓ_i/T),  z̄ = T·log p̄   (so softmax(z̄/T) = p̄ exactly)
//	logits:  z̄ = Σ_i w_i·ℓ_i                (= Σ_i w_i·z_i + const for full teachers)
//
// each shifted so that max z̄ = 0 and raised to at least −1000·T (a class
// every teacher gives probability 0 has p̄ = 0; see ensembleFloor). KD at
// temperature T on z̄ thus trains on the ensemble's target; at another
// temperature (such as the T = 1 of Metrics) the probs target is p̄
// re-tempered, not the mean at that temperature. A teacher of weight 0 is
// not read. The arithmetic is float64; z̄ is stored as float32, which keeps
// log p̄ to about 1e-7 relative.
//
// Config reports full scores (TopK 0) of the primary's classes, its labels,
// hidden states and inputs. Labels of the other caches, where they have
// them, must agree row by row. Per-token and sampled caches are refused.
//
// # Joining rows
//
// Every row of the primary must be in every other cache (which may hold
// more rows); units need not line up. A cache whose units have the
// primary's row counts is read unit for unit, each unit checked to hold
// the primary's row ids; otherwise (or at the first unit that does not)
// it is indexed once, one pass reading its row ids, and each primary unit
// reads the units holding its rows (the last few decoded are kept). Rows
// in the same order as the primary's, as distill extract writes them,
// keep that to about one unit read per unit.
//
// # Calibration
//
// Teachers found in the wild put their scores on very different scales:
// of the MNIST teachers in ../shared/teachers two have logits in the
// thousands, so softmax(z/4) is one-hot and an average of tempered
// probabilities is dominated by their hard decisions. With
// EnsembleOptions.Calibrate each teacher's log-probabilities are divided
// by its own temperature s_i first, ℓ_i ← ℓ_i/s_i, chosen by temperature
// scaling (Guo et al. 2017, https://arxiv.org/abs/1706.04599): the s that
// minimizes the teacher's negative log-likelihood of the labels,
//
//	NLL_i(β) = mean over rows of [logsumexp(β·ℓ_i) − β·ℓ_i,y],  s_i = 1/β*,
//
// over the first calibrationRows rows of the primary cache. NLL is convex
// in β (a log-sum-exp of linear functions minus a linear one), so a
// golden-section search over log β in [−12, 12] finds β* (to 1e-6 in
// log β). The calibrated teachers then combine as above at the KD
// temperature T. Scales() returns the s_i, and the checkpoint records them.
//
// Reads are serialized. Digest covers the mode, the weights, the
// calibration scales and every cache's digest, so a resumed run notices a
// changed member.
type Ensemble struct {
	primary Source
	members []*ensembleMember
	mode    EnsembleMode
	T       float64
	cfg     formats.Config
	units   []formats.Unit // the primary's
	// calibrated: the members' scales were fitted (EnsembleOptions.Calibrate)
	calibrated bool

	mu   sync.Mutex
	lp   [][]float64      // per member, one row's log-probabilities ℓ [C]
	zb   []float64        // one row's z̄ [C]
	rows []*formats.Batch // per member, the rows of the unit being read
}

var _ Source = (*Ensemble)(nil)

// ensembleMember is one teacher of an Ensemble.
type ensembleMember struct {
	c      *formats.Cache
	cfg    formats.Config
	weight float64 // normalized
	scale  float64 // s_i: the member's log-probabilities are divided by it (1 without calibration)
	units  []formats.Unit
	// aligned: unit u holds the primary's unit u rows (checked on
	// every read); when not, the index below is built.
	aligned  bool
	indexed  bool
	rowAt    []int64 // row id by position
	byRow    []int   // positions sorted by row id (nil if rowAt is ascending)
	slots    []memberSlot
	clock    int64
	read     formats.Batch // scratch for indexing
	gathered formats.Batch // the rows of a primary unit, when not aligned
	seen     []bool        // checkScores' scratch [C]
}

// memberSlot is a decoded unit of a member, kept for the next reads.
type memberSlot struct {
	u    int
	b    formats.Batch
	used int64
}

// memberSlots is the number of decoded units kept per member.
const memberSlots = 4

// NewEnsemble returns the Ensemble of the teachers' caches, the first the
// primary. primary is the Source of the rows' inputs over caches[0]: the
// cache itself (nil means that) or a DatasetSource over it. It returns an
// error naming the caches for fewer than two caches, two of the same
// teacher (give a teacher's shards as one cache), a per-token or sampled
// cache, caches of different class counts or extracted from different
// datasets (sha256; a cache recording none cannot be matched), a weight
// count other than the caches', a negative or non-finite weight, weights
// all 0, an unknown mode or a temperature <= 0.
func NewEnsemble(primary Source, caches []*formats.Cache, o *EnsembleOptions) (*Ensemble, error) {
	var opt EnsembleOptions
	if o != nil {
		opt = *o
	}
	mode, err := ParseEnsembleMode(string(opt.Mode))
	if err != nil {
		return nil, err
	}
	if len(caches) < 2 {
		return nil, fmt.Errorf("train: an ensemble needs the caches of two or more teachers, got %d", len(caches))
	}
	if !(opt.Temperature > 0) || math.IsInf(opt.Temperature, 0) {
		return nil, fmt.Errorf("train: ensemble temperature %v: want the KD temperature T > 0 the targets are for", opt.Temperature)
	}
	weights, err := ensembleWeights(opt.Weights, caches)
	if err != nil {
		return nil, err
	}
	if primary == nil {
		primary = caches[0]
	}
	c0 := caches[0]
	if primary.NumRows() != c0.NumRows() || primary.NumBatches() != c0.NumBatches() {
		return nil, fmt.Errorf("train: the ensemble's input source has %d rows in %d units, its first cache %s %d in %d: give a Source over that cache",
			primary.NumRows(), primary.NumBatches(), c0.Dir(), c0.NumRows(), c0.NumBatches())
	}
	if d, ok := primary.(interface{ Digest() string }); ok && d.Digest() != c0.Digest() {
		return nil, fmt.Errorf("train: the ensemble's input source is not over its first cache %s (digest %s, want %s)", c0.Dir(), d.Digest(), c0.Digest())
	}
	e := &Ensemble{primary: primary, mode: mode, T: opt.Temperature, units: c0.Units(), calibrated: opt.Calibrate}
	data0, _, _ := strings.Cut(c0.Manifest().Dataset.SHA256, ",")
	for i, c := range caches {
		cfg, m := c.Config(), c.Manifest()
		switch {
		case cfg.Positions > 0:
			return nil, fmt.Errorf("train: %s is a per-token cache (a language-model teacher's); ensembles of per-token caches are not supported: train on one teacher's cache", c.Dir())
		case cfg.Samples > 0:
			return nil, fmt.Errorf("train: %s is a sampled cache (extract --samples), which an ensemble cannot mix: re-extract it with --topk, or full scores", c.Dir())
		case cfg.Classes != c0.Config().Classes:
			return nil, fmt.Errorf("train: %s has %d classes and %s %d: an ensemble's teachers must score the same classes", c.Dir(), cfg.Classes, c0.Dir(), c0.Config().Classes)
		}
		data, _, _ := strings.Cut(m.Dataset.SHA256, ",")
		if data == "" {
			return nil, fmt.Errorf("train: %s records no dataset sha256, so its rows cannot be matched to the other teachers'; re-extract it with this version of distill extract", c.Dir())
		}
		if data != data0 {
			return nil, fmt.Errorf("train: %s and %s were extracted from different datasets (sha256 %s and %s): an ensemble's caches must score the same dataset's rows",
				c0.Dir(), c.Dir(), data0, data)
		}
		for _, p := range caches[:i] {
			if p.Manifest().Teacher.SHA256 == m.Teacher.SHA256 {
				return nil, fmt.Errorf("train: %s and %s hold the same teacher (sha256 %s): give a teacher's shards as one cache, not as two members of an ensemble",
					p.Dir(), c.Dir(), m.Teacher.SHA256)
			}
		}
		mb := &ensembleMember{c: c, cfg: cfg, weight: weights[i], units: c.Units(), scale: 1}
		mb.aligned = i > 0 && slices.EqualFunc(mb.units, e.units, func(a, b formats.Unit) bool { return a.Rows == b.Rows })
		e.members = append(e.members, mb)
	}
	e.cfg = primary.Config()
	e.cfg.TopK, e.cfg.TopKLogProbs, e.cfg.ScoreDtype = 0, false, formats.Float32
	e.cfg.Samples, e.cfg.SampleTemperature, e.cfg.SampleSeed = 0, 0, 0
	e.lp = make([][]float64, len(caches))
	for i := range e.lp {
		e.lp[i] = make([]float64, e.cfg.Classes)
	}
	e.zb = make([]float64, e.cfg.Classes)
	e.rows = make([]*formats.Batch, len(caches))
	if opt.Calibrate {
		if !c0.Config().HasLabel {
			return nil, fmt.Errorf("train: calibrating the teachers needs labels, and the first cache %s has none: train without calibration, or give a cache with labels first", c0.Dir())
		}
		if err := e.calibrate(c0); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// calibrate fits every member's scale s_i on the first calibrationRows
// rows of the primary cache c0 (see "Calibration").
func (e *Ensemble) calibrate(c0 *formats.Cache) error {
	C := e.cfg.Classes
	lps := make([][]float64, len(e.members)) // per member, rows × C log-probabilities
	var labels []int64
	var b formats.Batch
	for u := 0; u < c0.NumBatches() && len(labels) < calibrationRows; u++ {
		if err := c0.ReadBatch(u, &b); err != nil {
			return err
		}
		n := min(b.Len(), calibrationRows-len(labels))
		for i, m := range e.members {
			mb := &b
			if i > 0 {
				var err error
				if mb, err = m.rowsFor(u, b.Rows, c0); err != nil {
					return err
				}
			}
			for r := range n {
				logProbs(e.lp[i], m.cfg, mb, r)
				lps[i] = append(lps[i], e.lp[i]...)
			}
		}
		labels = append(labels, b.Labels[:n]...)
	}
	for i, m := range e.members {
		nll := func(logBeta float64) float64 { return calibrationNLL(lps[i], labels, C, math.Exp(logBeta)) }
		m.scale = math.Exp(-goldenMin(nll, -12, 12, 1e-6))
		if math.IsNaN(m.scale) || math.IsInf(m.scale, 0) || m.scale == 0 {
			return fmt.Errorf("train: calibrating %s: no finite temperature fits its scores (%v)", m.c.Dir(), m.scale)
		}
	}
	return nil
}

// calibrationNLL is the mean over the rows of lp (each C log-probabilities,
// −∞ allowed) of logsumexp(β·ℓ) − β·ℓ_y; a label whose class has
// probability 0 counts as a loss of β·1e4 (finite, so the search still
// orders the βs).
func calibrationNLL(lp []float64, labels []int64, C int, beta float64) float64 {
	var sum float64
	row := make([]float64, C)
	for r, y := range labels {
		for c, v := range lp[r*C : (r+1)*C] {
			row[c] = beta * v
		}
		ly := row[y]
		if math.IsInf(ly, -1) {
			ly = -beta * 1e4
		}
		sum += logSumExp(row) - ly
	}
	return sum / float64(max(len(labels), 1))
}

// goldenMin returns the x in [lo, hi] minimizing the unimodal f, to tol,
// by golden-section search.
func goldenMin(f func(float64) float64, lo, hi, tol float64) float64 {
	g := (math.Sqrt(5) - 1) / 2
	a, b := lo, hi
	c, d := b-g*(b-a), a+g*(b-a)
	fc, fd := f(c), f(d)
	for b-a > tol {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			fd = f(d)
		}
	}
	return (a + b) / 2
}

// Scales returns the members' calibration temperatures s_i (all 1 without
// calibration), in the order of the caches.
func (e *Ensemble) Scales() []float64 {
	s := make([]float64, len(e.members))
	for i, m := range e.members {
		s[i] = m.scale
	}
	return s
}

// ensembleWeights checks w (one per cache, or nil for equal weights) and
// returns it normalized to sum 1.
func ensembleWeights(w []float64, caches []*formats.Cache) ([]float64, error) {
	n := len(caches)
	if w == nil {
		w = slices.Repeat([]float64{1}, n)
	}
	if len(w) != n {
		return nil, fmt.Errorf("train: %d teacher weights for %d teachers: give one per teacher, in the order of the caches", len(w), n)
	}
	var sum float64
	for i, v := range w {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("train: teacher weight %v of %s: want a finite weight ≥ 0", v, caches[i].Dir())
		}
		sum += v
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return nil, fmt.Errorf("train: the teacher weights sum to %v: give at least one teacher a positive weight, and finite ones", sum)
	}
	out := make([]float64, n)
	for i, v := range w {
		out[i] = v / sum
	}
	return out, nil
}

// Config returns the primary's Config with full float32 scores (TopK 0).
func (e *Ensemble) Config() formats.Config { return e.cfg }

// NumRows returns the primary's row count.
func (e *Ensemble) NumRows() int64 { return e.primary.NumRows() }

// NumBatches returns the primary's unit count.
func (e *Ensemble) NumBatches() int { return e.primary.NumBatches() }

// Manifest returns the primary cache's manifest (its dataset recipe is
// where the inputs come from).
func (e *Ensemble) Manifest() formats.Manifest { return e.members[0].c.Manifest() }

// Dir returns the primary cache's directory.
func (e *Ensemble) Dir() string { return e.members[0].c.Dir() }

// Mode returns how the teachers are combined.
func (e *Ensemble) Mode() EnsembleMode { return e.mode }

// Weights returns the normalized weights, in the order of the caches.
func (e *Ensemble) Weights() []float64 {
	w := make([]float64, len(e.members))
	for i, m := range e.members {
		w[i] = m.weight
	}
	return w
}

// Digest is the hex sha256 of the mode, and each cache's normalized weight
// and Digest, one line each in the order of the caches.
func (e *Ensemble) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "distill ensemble\n%s\n", e.mode)
	if e.calibrated {
		fmt.Fprintf(h, "calibrated\n")
	}
	for _, m := range e.members {
		fmt.Fprintf(h, "%s %s", strconv.FormatFloat(m.weight, 'g', -1, 64), m.c.Digest())
		if e.calibrated {
			fmt.Fprintf(h, " %s", strconv.FormatFloat(m.scale, 'g', -1, 64))
		}
		fmt.Fprintf(h, "\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// EnsembleProvenance records an Ensemble's teachers in a checkpoint
// (Provenance.Ensemble).
type EnsembleProvenance struct {
	Mode       EnsembleMode      `json:"mode"`
	Calibrated bool              `json:"calibrated,omitempty"` // each teacher's Scale was fitted on the labels
	Teachers   []EnsembleTeacher `json:"teachers"`             // in the order of the caches; the first gave the inputs
}

// EnsembleTeacher is one teacher of an Ensemble: its cache and weight.
type EnsembleTeacher struct {
	Path          string  `json:"path,omitempty"` // the cache directory (its first shard's)
	Digest        string  `json:"digest"`         // formats.Cache.Digest
	TeacherFile   string  `json:"teacher_file,omitempty"`
	TeacherSHA256 string  `json:"teacher_sha256"`
	ScoreKind     string  `json:"score_kind,omitempty"`
	TopK          int     `json:"top_k"`
	Rows          int64   `json:"rows"`
	Weight        float64 `json:"weight"` // normalized: the weights sum to 1
	// Scale is the calibration temperature s_i its log-probabilities were
	// divided by (EnsembleOptions.Calibrate); omitted without calibration.
	Scale float64 `json:"scale,omitempty"`
}

// Provenance returns the teachers for a checkpoint.
func (e *Ensemble) Provenance() *EnsembleProvenance {
	p := &EnsembleProvenance{Mode: e.mode, Calibrated: e.calibrated}
	for _, m := range e.members {
		man := m.c.Manifest()
		t := EnsembleTeacher{Path: m.c.Dir(), Digest: m.c.Digest(), TeacherFile: man.Teacher.File,
			TeacherSHA256: man.Teacher.SHA256, ScoreKind: string(man.ScoreKind), TopK: m.cfg.TopK, Rows: m.c.NumRows(), Weight: m.weight}
		if e.calibrated {
			t.Scale = m.scale
		}
		p.Teachers = append(p.Teachers, t)
	}
	return p
}

// TeacherSHA256 returns the teachers' sha256s, comma-separated, in the
// order of the caches.
func (e *Ensemble) TeacherSHA256() string {
	s := make([]string, len(e.members))
	for i, m := range e.members {
		s[i] = m.c.Manifest().Teacher.SHA256
	}
	return strings.Join(s, ",")
}

// ReadBatch reads unit u of the primary into dst (rows, labels, hidden
// states, inputs) and replaces its teacher scores by the ensemble's full
// scores z̄ (see "Targets"). It returns an error naming the caches for a
// primary row missing from another cache, or a label that differs.
func (e *Ensemble) ReadBatch(u int, dst *formats.Batch) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.primary.ReadBatch(u, dst); err != nil {
		return err
	}
	n, C := dst.Len(), e.cfg.Classes
	p0 := e.members[0]
	if err := checkScores(p0.cfg, dst, n, &p0.seen); err != nil {
		return fmt.Errorf("train: %s unit %d: %w", p0.c.Dir(), u, err)
	}
	// The other members' rows, in the primary's order.
	for i, m := range e.members[1:] {
		if m.weight == 0 {
			continue
		}
		b, err := m.rowsFor(u, dst.Rows, p0.c)
		if err != nil {
			return err
		}
		e.rows[i+1] = b
	}
	var out []float32
	if p0.cfg.TopK == 0 {
		out = dst.Logits // row r is read (into e.lp[0]) before it is written
	} else {
		out = grow(dst.Logits, n*C)
	}
	for r := range n {
		if p0.weight > 0 {
			logProbs(e.lp[0], p0.cfg, dst, r)
		}
		for i, m := range e.members[1:] {
			if m.weight == 0 {
				continue
			}
			b := e.rows[i+1]
			if len(dst.Labels) == n && m.cfg.HasLabel && b.Labels[r] != dst.Labels[r] {
				return fmt.Errorf("train: row %d has label %d in %s and %d in %s: the caches are not over the same dataset rows",
					dst.Rows[r], dst.Labels[r], p0.c.Dir(), b.Labels[r], m.c.Dir())
			}
			logProbs(e.lp[i+1], m.cfg, b, r)
		}
		e.combine()
		for c, v := range e.zb {
			out[r*C+c] = float32(v)
		}
	}
	dst.Logits = out
	dst.TopKIndex, dst.TopKLogit, dst.LogSumExp, dst.SampleCount = dst.TopKIndex[:0], dst.TopKLogit[:0], dst.LogSumExp[:0], dst.SampleCount[:0]
	return nil
}

// combine writes z̄ of the members' log-probabilities e.lp into e.zb (see
// "Targets").
func (e *Ensemble) combine() {
	zb, invT := e.zb, 1/e.T
	for i, m := range e.members {
		if m.weight > 0 && m.scale != 1 {
			for c := range e.lp[i] {
				e.lp[i][c] /= m.scale // −∞ stays −∞
			}
		}
	}
	switch e.mode {
	case EnsembleLogits:
		clear(zb)
		for i, m := range e.members {
			if m.weight > 0 {
				for c, l := range e.lp[i] {
					zb[c] += m.weight * l
				}
			}
		}
	default: // EnsembleProbs
		// log p_i = ℓ_i/T − logsumexp(ℓ_i/T), written back into e.lp[i];
		// log p̄_c = log Σ_i w_i·exp(log p_i,c), shifted by its max over i.
		for i, m := range e.members {
			if m.weight > 0 {
				lp := e.lp[i]
				for c := range lp {
					lp[c] *= invT
				}
				z := logSumExp(lp)
				for c := range lp {
					lp[c] -= z
				}
			}
		}
		for c := range zb {
			mx := math.Inf(-1)
			for i, m := range e.members {
				if m.weight > 0 {
					mx = max(mx, e.lp[i][c])
				}
			}
			if math.IsInf(mx, -1) {
				zb[c] = mx
				continue
			}
			var s float64
			for i, m := range e.members {
				if m.weight > 0 {
					s += m.weight * math.Exp(e.lp[i][c]-mx)
				}
			}
			zb[c] = e.T * (mx + math.Log(s))
		}
	}
	top := math.Inf(-1)
	for _, v := range zb {
		top = max(top, v)
	}
	floor := -ensembleFloor * e.T
	for c, v := range zb {
		v -= top
		if v < floor { // not NaN, which stays for the trainer to report
			v = floor
		}
		zb[c] = v
	}
}

// logSumExp returns log Σ exp(v), −∞ for all −∞.
func logSumExp(v []float64) float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = max(mx, x)
	}
	if math.IsInf(mx, -1) {
		return mx
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - mx)
	}
	return mx + math.Log(s)
}

// logProbs writes the log-probabilities ℓ at T = 1 of row r of b, a batch
// of a cache of Config cfg, into lp (see "Targets").
func logProbs(lp []float64, cfg formats.Config, b *formats.Batch, r int) {
	C := cfg.Classes
	if k := cfg.TopK; k > 0 {
		lse := float64(b.LogSumExp[r])
		rest := 1.0
		for _, t := range b.TopKLogit[r*k : (r+1)*k] {
			rest -= math.Exp(float64(t) - lse)
		}
		lr := math.Inf(-1)
		if rest > 0 && C > k {
			lr = math.Log(rest / float64(C-k))
		}
		for c := range lp {
			lp[c] = lr
		}
		for j, c := range b.TopKIndex[r*k : (r+1)*k] {
			lp[c] = float64(b.TopKLogit[r*k+j]) - lse
		}
		return
	}
	z := b.Logits[r*C : (r+1)*C]
	for c, v := range z {
		lp[c] = float64(v)
	}
	l := logSumExp(lp)
	for c := range lp {
		lp[c] -= l
	}
}

// checkScores checks that b (n rows, of a cache of Config cfg) has its
// teacher columns, with top-k class ids in range and distinct per row;
// seen is scratch.
func checkScores(cfg formats.Config, b *formats.Batch, n int, seen *[]bool) error {
	C := cfg.Classes
	k := cfg.TopK
	if k == 0 {
		if len(b.Logits) != n*C {
			return fmt.Errorf("%d rows have %d logits, want %d per row", n, len(b.Logits), C)
		}
		return nil
	}
	if len(b.TopKIndex) != n*k || len(b.TopKLogit) != n*k || len(b.LogSumExp) != n {
		return fmt.Errorf("%d rows lack their top-%d columns", n, k)
	}
	if len(*seen) != C {
		*seen = make([]bool, C)
	}
	s := *seen
	for r := range n {
		idx := b.TopKIndex[r*k : (r+1)*k]
		for j, c := range idx {
			if c < 0 || int(c) >= C {
				return fmt.Errorf("row %d: top-k class id %d out of range [0, %d)", b.Rows[r], c, C)
			}
			if s[c] {
				for _, c := range idx[:j] {
					s[c] = false
				}
				return fmt.Errorf("row %d: top-k class id %d repeated", b.Rows[r], c)
			}
			s[c] = true
		}
		for _, c := range idx {
			s[c] = false
		}
	}
	return nil
}

// rowsFor returns a batch whose row r is the member's row rows[r] (the
// rows of primary unit u, of cache p): the member's unit u when aligned,
// else the rows gathered from the units holding them (their scores and
// labels).
func (m *ensembleMember) rowsFor(u int, rows []int64, p *formats.Cache) (*formats.Batch, error) {
	if m.aligned {
		b, err := m.unit(u)
		if err != nil {
			return nil, err
		}
		if slices.Equal(b.Rows, rows) {
			return b, nil
		}
		m.aligned = false // same unit sizes, other rows: join by the index
	}
	if err := m.index(); err != nil {
		return nil, err
	}
	g, k, C := &m.gathered, m.cfg.TopK, m.cfg.Classes
	g.Reset()
	for _, id := range rows {
		pos, ok := m.position(id)
		if !ok {
			return nil, fmt.Errorf("train: row %d of %s is not in %s (teacher %s): every cache of an ensemble must hold the first cache's rows",
				id, p.Dir(), m.c.Dir(), m.c.Manifest().Teacher.File)
		}
		// The unit holding position pos: the last with Offset <= pos.
		v := sort.Search(len(m.units), func(i int) bool { return m.units[i].Offset > pos }) - 1
		b, err := m.unit(v)
		if err != nil {
			return nil, err
		}
		r := int(pos - m.units[v].Offset)
		g.Rows = append(g.Rows, id)
		if m.cfg.HasLabel {
			g.Labels = append(g.Labels, b.Labels[r])
		}
		if k > 0 {
			g.TopKIndex = append(g.TopKIndex, b.TopKIndex[r*k:(r+1)*k]...)
			g.TopKLogit = append(g.TopKLogit, b.TopKLogit[r*k:(r+1)*k]...)
			g.LogSumExp = append(g.LogSumExp, b.LogSumExp[r])
		} else {
			g.Logits = append(g.Logits, b.Logits[r*C:(r+1)*C]...)
		}
	}
	return g, nil
}

// unit returns the decoded unit u, from the kept slots or read into the
// least recently used one. Pointers to earlier units stay valid while
// at most memberSlots distinct units are asked for.
func (m *ensembleMember) unit(u int) (*formats.Batch, error) {
	m.clock++
	for i := range m.slots {
		if s := &m.slots[i]; s.u == u {
			s.used = m.clock
			return &s.b, nil
		}
	}
	var s *memberSlot
	if len(m.slots) < memberSlots {
		m.slots = append(m.slots, memberSlot{})
		s = &m.slots[len(m.slots)-1]
	} else {
		s = &m.slots[0]
		for i := range m.slots {
			if m.slots[i].used < s.used {
				s = &m.slots[i]
			}
		}
	}
	s.u, s.used = -1, m.clock
	if err := m.c.ReadBatch(u, &s.b); err != nil {
		return nil, err
	}
	if err := checkScores(m.cfg, &s.b, s.b.Len(), &m.seen); err != nil {
		return nil, fmt.Errorf("train: %s unit %d: %w", m.c.Dir(), u, err)
	}
	if m.cfg.HasLabel && len(s.b.Labels) != s.b.Len() {
		return nil, fmt.Errorf("train: %s unit %d: %d rows have %d labels", m.c.Dir(), u, s.b.Len(), len(s.b.Labels))
	}
	s.u = u
	return &s.b, nil
}

// index reads the member's row ids once (rowAt, and byRow unless they
// ascend). A row id twice is an error.
func (m *ensembleMember) index() error {
	if m.indexed {
		return nil
	}
	m.rowAt = make([]int64, 0, m.c.NumRows())
	for u := range m.units {
		if err := m.c.ReadBatch(u, &m.read); err != nil {
			return err
		}
		m.rowAt = append(m.rowAt, m.read.Rows...)
	}
	m.read = formats.Batch{}
	ascending := true
	for i := 1; i < len(m.rowAt) && ascending; i++ {
		ascending = m.rowAt[i] > m.rowAt[i-1]
	}
	if !ascending {
		m.byRow = make([]int, len(m.rowAt))
		for i := range m.byRow {
			m.byRow[i] = i
		}
		slices.SortFunc(m.byRow, func(a, b int) int { return cmpInt64(m.rowAt[a], m.rowAt[b]) })
		for i := 1; i < len(m.byRow); i++ {
			if a := m.rowAt[m.byRow[i]]; a == m.rowAt[m.byRow[i-1]] {
				return fmt.Errorf("train: row %d is in %s twice: a cache of an ensemble must hold each row once", a, m.c.Dir())
			}
		}
	}
	m.indexed = true
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// position returns the position of row id in the member.
func (m *ensembleMember) position(id int64) (int64, bool) {
	if m.byRow == nil {
		i, ok := slices.BinarySearch(m.rowAt, id)
		return int64(i), ok
	}
	i := sort.Search(len(m.byRow), func(i int) bool { return m.rowAt[m.byRow[i]] >= id })
	if i < len(m.byRow) && m.rowAt[m.byRow[i]] == id {
		return int64(m.byRow[i]), true
	}
	return 0, false
}

package eval

import (
	"fmt"
	"math"
	"slices"

	"github.com/distill-ml/distill/formats"
)

// TeacherScores are the teacher's scores for n rows (or positions), in
// their order: either all C scores per row (logits or log-probabilities:
// softmax gives the teacher's distribution either way), or the top-k of a
// top-k cache with the log-sum-exp over all C.
type TeacherScores struct {
	N, Classes, TopK int
	Logits           []float32 // N×C when TopK == 0
	TopIdx           []int32   // N×k class ids, descending by score
	TopVal           []float32 // N×k scores
	LSE              []float32 // N values: log Σ_c exp(score_c)
	// Count, for a sampled cache (formats.Config.Samples), holds the draws
	// of each TopIdx id; a slot with count 0 is padding (it repeats the
	// last drawn id) and is skipped. nil for a top-k or dense teacher.
	Count   []int32
	Present []bool // nil = every row has teacher scores
}

// Has reports whether row r has teacher scores.
func (t *TeacherScores) Has(r int) bool { return t.Present == nil || t.Present[r] }

// Top1 returns the teacher's most probable class of row r (ties: the
// lowest class id, as formats.TopK orders them).
func (t *TeacherScores) Top1(r int) int {
	if t.TopK > 0 {
		return int(t.TopIdx[r*t.TopK])
	}
	return argmax(t.Logits[r*t.Classes : (r+1)*t.Classes])
}

// KL returns KL(teacher ‖ model) of row r at temperature 1, in nats,
// given the model's log-probabilities logq [C]:
//
//	KL(p ‖ q) = Σ_c p_c (log p_c − log q_c),  p = softmax(teacher scores)
//
// (gonum stat.KullbackLeibler's formula). For a top-k teacher the sum runs
// over the k cached classes plus one bucket holding the rest of the mass,
// p_rest = 1 − Σ_j p_j and q_rest = Σ_{c not cached} q_c, which is the KL
// of those k+1 buckets (exact for them; the teacher's split of the rest is
// unknown). A sampled teacher is treated the same way over its distinct
// drawn ids (their exact probabilities, from the cached scores and the
// log-sum-exp over all C) and the rest: a lower bound of the full KL, as
// for top-k, not the importance-weighted estimate training uses (train's
// KD, "Sampled teachers"). Terms with p = 0 contribute 0. Teacher scores
// holding NaN or +Inf give NaN: such a row has no KL.
func (t *TeacherScores) KL(r int, logq []float64) float64 {
	var kl float64
	if t.TopK == 0 {
		s := t.Logits[r*t.Classes : (r+1)*t.Classes]
		lse := formats.LogSumExp(s)
		if math.IsNaN(lse) || math.IsInf(lse, 0) {
			return math.NaN()
		}
		for c, v := range s {
			lp := float64(v) - lse
			if p := math.Exp(lp); p > 0 {
				kl += p * (lp - logq[c])
			}
		}
		return kl
	}
	k := t.TopK
	idx, val, lse := t.TopIdx[r*k:(r+1)*k], t.TopVal[r*k:(r+1)*k], float64(t.LSE[r])
	var cnt []int32
	if t.Count != nil {
		cnt = t.Count[r*k : (r+1)*k]
	}
	var pIn, qIn float64
	for j, c := range idx {
		if cnt != nil && cnt[j] == 0 {
			continue // padding: the last drawn id again
		}
		lp := float64(val[j]) - lse
		if math.IsNaN(lp) || math.IsInf(lp, 0) {
			return math.NaN()
		}
		p := math.Exp(lp)
		pIn += p
		qIn += math.Exp(logq[c])
		if p > 0 {
			kl += p * (lp - logq[c])
		}
	}
	if pRest := 1 - pIn; pRest > 1e-12 {
		// q_rest summed over the other classes directly: 1 − qIn would
		// lose everything to cancellation when qIn ≈ 1.
		var qRest float64
		for c, lq := range logq {
			if !slices.Contains(idx, int32(c)) {
				qRest += math.Exp(lq)
			}
		}
		kl += pRest * (math.Log(pRest) - math.Log(qRest))
	}
	return kl
}

// batchTeacher sets dst to the teacher scores of rows (positions, for a
// per-token cache) lo..hi of a cache batch b (of a cache with classes and
// topK; sampled when b has sample counts), sharing b's slices.
func batchTeacher(dst *TeacherScores, b *formats.Batch, lo, hi, classes, topK int) {
	*dst = TeacherScores{N: hi - lo, Classes: classes, TopK: topK}
	if k := topK; k > 0 {
		dst.TopIdx, dst.TopVal, dst.LSE = b.TopKIndex[lo*k:hi*k], b.TopKLogit[lo*k:hi*k], b.LogSumExp[lo:hi]
		if len(b.SampleCount) > 0 {
			dst.Count = b.SampleCount[lo*k : hi*k]
		}
	} else {
		dst.Logits = b.Logits[lo*classes : hi*classes]
	}
}

// TeacherTable holds a teacher cache's scores by row id, to compare a
// model with a teacher on data that is not that cache.
type TeacherTable struct {
	Classes, TopK int
	Info          TeacherInfo
	pos           map[int64]int
	logits        []float32
	topIdx        []int32
	topVal, lse   []float32
}

// LoadTeacherTable reads every row's scores of the cache at path into
// memory (rows × classes float32, or rows × k for a top-k cache). A row id
// that appears twice is an error.
func LoadTeacherTable(path string) (*TeacherTable, error) {
	c, err := formats.Open(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cfg := c.Config()
	if cfg.Positions > 0 {
		return nil, fmt.Errorf("%s is a per-token cache (%d positions per row), not a classifier teacher's", path, cfg.Positions)
	}
	t := &TeacherTable{Classes: cfg.Classes, TopK: cfg.TopK, pos: make(map[int64]int, c.NumRows()),
		Info: cacheTeacherInfo(path, c)}
	for b, err := range c.All() {
		if err != nil {
			return nil, err
		}
		for _, r := range b.Rows {
			if _, dup := t.pos[r]; dup {
				return nil, fmt.Errorf("%s: row id %d appears twice", path, r)
			}
			t.pos[r] = len(t.pos)
		}
		t.logits = append(t.logits, b.Logits...)
		t.topIdx = append(t.topIdx, b.TopKIndex...)
		t.topVal = append(t.topVal, b.TopKLogit...)
		t.lse = append(t.lse, b.LogSumExp...)
	}
	return t, nil
}

// cacheTeacherInfo describes the teacher of cache c at path.
func cacheTeacherInfo(path string, c *formats.Cache) TeacherInfo {
	m, cfg := c.Manifest(), c.Config()
	return TeacherInfo{Path: path, File: m.Teacher.File, SHA256: m.Teacher.SHA256, ScoreKind: string(m.ScoreKind),
		TopK: cfg.TopK, Samples: cfg.Samples, Rows: c.NumRows()}
}

// Gather fills dst with the teacher's scores of rows (Present[i] false for
// rows the table lacks), reusing dst's slices.
func (t *TeacherTable) Gather(rows []int64, dst *TeacherScores) {
	n, C, k := len(rows), t.Classes, t.TopK
	dst.N, dst.Classes, dst.TopK = n, C, k
	dst.Present = dst.Present[:0]
	dst.Logits, dst.TopIdx, dst.TopVal, dst.LSE = dst.Logits[:0], dst.TopIdx[:0], dst.TopVal[:0], dst.LSE[:0]
	for _, r := range rows {
		p, ok := t.pos[r]
		dst.Present = append(dst.Present, ok)
		if k == 0 {
			if ok {
				dst.Logits = append(dst.Logits, t.logits[p*C:(p+1)*C]...)
			} else {
				dst.Logits = append(dst.Logits, make([]float32, C)...)
			}
			continue
		}
		if ok {
			dst.TopIdx = append(dst.TopIdx, t.topIdx[p*k:(p+1)*k]...)
			dst.TopVal = append(dst.TopVal, t.topVal[p*k:(p+1)*k]...)
			dst.LSE = append(dst.LSE, t.lse[p])
		} else {
			dst.TopIdx = append(dst.TopIdx, make([]int32, k)...)
			dst.TopVal = append(dst.TopVal, make([]float32, k)...)
			dst.LSE = append(dst.LSE, 0)
		}
	}
}

// argmax returns the index of the largest value, the first on ties.
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

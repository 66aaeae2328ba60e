package train

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/formats"
)

// AttentionPair is one attention-distillation term of TrainLM: the
// attention probabilities of student block Layer (0-based, as the
// teacher's attentions.j and InitFromLayers count blocks) against the
// cached teacher attention map Teacher ([heads, T, T] per window, e.g.
// attentions.3), with Options.AttentionLoss and weight β.
type AttentionPair struct {
	Teacher string  `json:"teacher"`
	Layer   int     `json:"layer"`
	Weight  float64 `json:"weight"` // β; 0 means 1
}

// ParseAttentionPair parses an attention-distillation pair
// "TEACHER_ATTENTION=STUDENT_BLOCK[:WEIGHT]" (the --attention flag), e.g.
// "attentions.4=3:0.5", for a student of layers blocks: the teacher name
// is everything before the last '='; the block is 0-based, 0..layers−1;
// the weight, default 1, must be positive.
func ParseAttentionPair(s string, layers int) (AttentionPair, error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 || i == len(s)-1 {
		return AttentionPair{}, fmt.Errorf("train: attention pair %q: want TEACHER_ATTENTION=STUDENT_BLOCK[:WEIGHT], e.g. attentions.4=3", s)
	}
	name, rest := s[:i], s[i+1:]
	layer, weight, hasWeight := strings.Cut(rest, ":")
	l, err := strconv.Atoi(layer)
	if err != nil || l < 0 || l >= layers {
		return AttentionPair{}, fmt.Errorf("train: attention pair %q: student block %q, want 0..%d (0-based, as attentions.J counts the teacher's)", s, layer, layers-1)
	}
	w, ok := pairWeight(weight, hasWeight)
	if !ok {
		return AttentionPair{}, fmt.Errorf("train: attention pair %q: weight %q, want a positive number", s, weight)
	}
	return AttentionPair{Teacher: name, Layer: l, Weight: w}, nil
}

// pairWeight parses the WEIGHT of a distillation pair (--feature,
// --attention): 1 when not given (has false), else a positive number up
// to 1e30; ok is false for anything else.
func pairWeight(weight string, has bool) (w float64, ok bool) {
	if !has {
		return 1, true
	}
	w, err := strconv.ParseFloat(weight, 64)
	return w, err == nil && w > 0 && w <= 1e30
}

// resolveAttention fills the attention pairs' defaults (weight 1, KL when
// there are pairs) and checks them; the zero value of an Options without
// pairs stays as it is, so checkpoints of earlier runs compare equal.
func resolveAttention(o *Options) error {
	o.Attentions = slices.Clone(o.Attentions)
	for i := range o.Attentions {
		if o.Attentions[i].Weight == 0 {
			o.Attentions[i].Weight = 1
		}
		if w := o.Attentions[i].Weight; !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("train: attention pair %s weight %v, want > 0", o.Attentions[i].Teacher, w)
		}
	}
	if len(o.Attentions) > 0 && o.AttentionLoss == "" {
		o.AttentionLoss = AttentionLossKL
	}
	if o.AttentionLoss != "" {
		if _, err := ParseAttentionLoss(string(o.AttentionLoss)); err != nil {
			return err
		}
	}
	return nil
}

// lmAttention holds a TrainLM run's attention pairs: per pair the
// teacher's head count and the batch's teacher maps, per student block
// the summed loss gradient on its probabilities (Attention.DProbs).
type lmAttention struct {
	pairs   []AttentionPair
	loss    AttentionLoss
	heads   []int       // the teacher's heads, per pair
	target  [][]float32 // the batch's teacher maps, per pair
	dprobs  [][]float32 // per student block; nil without a pair
	scratch []float32   // a second pair's gradient on one block

	sum    float64 // Σ tokens·(attention terms) over the epoch so far
	tokens int
}

// setup checks the pairs against the cache (dcfg) and the model m of
// windows of T tokens.
func (a *lmAttention) setup(dcfg formats.Config, o Options, m *Transformer, T int) error {
	a.pairs, a.loss = o.Attentions, o.AttentionLoss
	a.dprobs = make([][]float32, m.Cfg.Layers)
	a.target = make([][]float32, len(a.pairs))
	for j, p := range a.pairs {
		what := fmt.Sprintf("attention pair %d (%s=%d)", j+1, p.Teacher, p.Layer)
		spec, err := hiddenSpec(dcfg, p.Teacher)
		if err != nil {
			return fmt.Errorf("train: %s: %s (attention maps: extract with --hidden attentions.J)", what, strings.TrimPrefix(err.Error(), "train: "))
		}
		if len(spec.Shape) != 3 || spec.Shape[1] != int64(T) || spec.Shape[2] != int64(T) {
			return fmt.Errorf("train: %s: teacher tensor %s has shape %v per window, not [heads, %d, %d]: pair an attention map (attentions.J)", what, p.Teacher, spec.Shape, T, T)
		}
		if p.Layer < 0 || p.Layer >= m.Cfg.Layers {
			return fmt.Errorf("train: %s: student block %d, the student has blocks 0..%d", what, p.Layer, m.Cfg.Layers-1)
		}
		Ht := int(spec.Shape[0])
		if err := checkAttentionHeads(m.Cfg.Heads, Ht); err != nil {
			return fmt.Errorf("train: %s: the teacher map has %d heads and the student %d: teacher heads are averaged in groups onto student heads, so one count must divide the other (e.g. --heads %d)", what, Ht, m.Cfg.Heads, Ht)
		}
		a.heads = append(a.heads, Ht)
	}
	return nil
}

// reset empties the batch's teacher maps.
func (a *lmAttention) reset() {
	for j := range a.target {
		a.target[j] = a.target[j][:0]
	}
}

// add appends window i's teacher maps of b (when b holds them: a
// validation cache need not).
func (a *lmAttention) add(b *formats.Batch, i, T int) {
	for j, p := range a.pairs {
		if h, ok := b.Hidden[p.Teacher]; ok {
			w := a.heads[j] * T * T
			a.target[j] = append(a.target[j], h[i*w:(i+1)*w]...)
		}
	}
}

// terms computes the pairs' weighted losses on m's last Forward (seqs
// windows of T), sets each paired block's Attention.DProbs to the summed
// gradient (nil on the other blocks) for m.Backward, and returns the sum.
func (a *lmAttention) terms(m *Transformer, seqs, T int) (float64, error) {
	if len(a.pairs) == 0 {
		return 0, nil
	}
	Hs := m.Cfg.Heads
	size := seqs * Hs * T * T
	done := make([]bool, len(a.dprobs))
	var total float64
	for j, p := range a.pairs {
		dst := &a.dprobs[p.Layer]
		first := !done[p.Layer]
		if first {
			*dst = grow(*dst, size)
		} else {
			a.scratch = grow(a.scratch, size)
			dst = &a.scratch
		}
		l, err := a.loss.Loss(*dst, m.Blocks[p.Layer].Attn.Probs()[:size], a.target[j], seqs, Hs, a.heads[j], T, p.Weight)
		if err != nil {
			return 0, fmt.Errorf("train: attention pair %d (%s=%d): %w", j+1, p.Teacher, p.Layer, err)
		}
		if !first {
			for i, v := range a.scratch {
				a.dprobs[p.Layer][i] += v
			}
		}
		done[p.Layer] = true
		total += l
	}
	for l, b := range m.Blocks {
		b.Attn.DProbs = nil
		if done[l] {
			b.Attn.DProbs = a.dprobs[l][:size]
		}
	}
	a.sum += total * float64(seqs*T)
	a.tokens += seqs * T
	return total, nil
}

// epochMean returns the mean per-token attention terms since the last
// call (0 without pairs) and starts a new epoch.
func (a *lmAttention) epochMean() float64 {
	v := a.sum / float64(max(a.tokens, 1))
	a.sum, a.tokens = 0, 0
	return v
}

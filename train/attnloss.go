package train

import (
	"fmt"
	"math"
)

// AttentionLoss is the loss of an attention-distillation pair: a student
// layer's attention probabilities P, [seqs][Hs][T][T] (Attention.Probs),
// against a teacher's attention map A, [seqs][Ht][T][T] (a cached
// attentions.j, softmax probabilities as ONNX exports of Hugging Face
// models give them), both causal.
//
// Heads. When Ht = g·Hs, each student head h learns the average of g
// consecutive teacher heads (an average of distributions is a
// distribution; for a grouped-query teacher such as stories260K, whose
// heads 2j and 2j+1 share K/V, g = 2 averages exactly the heads of a KV
// group); when Hs = r·Ht, each teacher head serves r consecutive student
// heads. Other head counts are refused (an error), since a group average
// needs one count to divide the other:
//
//	Ā_bhts = (1/g) Σ_{j<g} A_{b, h·g+j, t, s}   (Ht = g·Hs)
//	Ā_bhts = A_{b, ⌊h/r⌋, t, s}                 (Hs = r·Ht)
//
// Losses, each a mean over sequences, student heads and query positions
// (N = seqs·Hs·T), over the causal entries s ≤ t only; the masked entries
// s > t count in neither loss nor gradient, whatever either tensor holds
// there:
//
//	KL (MiniLM, Wang et al. 2020, https://arxiv.org/abs/2002.10957):
//	  L = (1/N) Σ_{b,h,t} Σ_{s≤t} Ā_bhts·log(Ā_bhts / P_bhts)
//	  ∂L/∂P_bhts = −Ā_bhts / (N·P_bhts)
//	MSE (TinyBERT's attention loss, Jiao et al. 2020, https://arxiv.org/abs/1909.10351):
//	  L = (1/N) Σ_{b,h,t} Σ_{s≤t} (P_bhts − Ā_bhts)²
//	  ∂L/∂P_bhts = 2·(P_bhts − Ā_bhts) / N
//
// KL terms with Ā = 0 are 0 (0·log 0 = 0); P under 1e-30 is taken as
// 1e-30, so a position the student all but masks gives a large finite
// loss, not +Inf. Two departures from the papers, both because the
// teacher gives probabilities: TinyBERT fits the unnormalized scores
// (torch MSELoss over all T² entries, which for probabilities equals this
// L / T); MiniLM also transfers value relations, not done here.
type AttentionLoss string

// Attention losses (see AttentionLoss).
const (
	AttentionLossKL  AttentionLoss = "kl"
	AttentionLossMSE AttentionLoss = "mse"
)

// ParseAttentionLoss returns the AttentionLoss named s; "" means KL.
func ParseAttentionLoss(s string) (AttentionLoss, error) {
	switch f := AttentionLoss(s); f {
	case AttentionLossKL, AttentionLossMSE:
		return f, nil
	case "":
		return AttentionLossKL, nil
	}
	return "", fmt.Errorf("train: unknown attention loss %q, want kl or mse", s)
}

// checkAttentionHeads returns an error unless Ht teacher heads can be
// averaged onto Hs student heads (one count divides the other).
func checkAttentionHeads(Hs, Ht int) error {
	if Hs < 1 || Ht < 1 || (Ht%Hs != 0 && Hs%Ht != 0) {
		return fmt.Errorf("train: attention distillation: %d teacher heads onto %d student heads: teacher heads are averaged in groups onto student heads (or one serves several), so one count must divide the other", Ht, Hs)
	}
	return nil
}

// Loss returns weight·L(P, A) for P, A as described at AttentionLoss and
// writes weight·∂L/∂P into dP (P's layout; 0 at the masked entries). It
// returns an error, and writes nothing, when the head counts do not
// divide or the lengths do not match seqs, Hs, Ht and T. The work is split
// by sequence and head over the threads (SetThreads); the result does not
// depend on their number.
func (f AttentionLoss) Loss(dP, P, A []float32, seqs, Hs, Ht, T int, weight float64) (float64, error) {
	if err := checkAttentionHeads(Hs, Ht); err != nil {
		return 0, err
	}
	if len(P) != seqs*Hs*T*T || len(A) != seqs*Ht*T*T || len(dP) != len(P) {
		return 0, fmt.Errorf("train: attention distillation: %d student and %d teacher values for %d sequences of %d, %d and %d heads",
			len(P), len(A), seqs, T, Hs, Ht)
	}
	if f == "" {
		f = AttentionLossKL
	}
	if f != AttentionLossKL && f != AttentionLossMSE {
		return 0, fmt.Errorf("train: unknown attention loss %q, want kl or mse", f)
	}
	N := float64(seqs * Hs * T)
	scale := weight / N
	g := max(1, Ht/Hs) // teacher heads averaged per student head
	r := max(1, Hs/Ht) // student heads per teacher head
	losses := make([]float64, seqs*Hs)
	par().run(seqs*Hs, 1, func(lo, hi int) {
		abar := make([]float64, T)
		for task := lo; task < hi; task++ {
			b, h := task/Hs, task%Hs
			var loss float64
			for t := range T {
				pr := P[(task*T+t)*T:][:t+1]
				dr := dP[(task*T+t)*T:][:T]
				a := abar[:t+1]
				if Ht >= Hs {
					clear(a)
					for j := range g {
						for s, v := range A[((b*Ht+h*g+j)*T+t)*T:][:t+1] {
							a[s] += float64(v)
						}
					}
					for s := range a {
						a[s] /= float64(g)
					}
				} else {
					for s, v := range A[((b*Ht+h/r)*T+t)*T:][:t+1] {
						a[s] = float64(v)
					}
				}
				switch f {
				case AttentionLossKL:
					for s, av := range a {
						if av <= 0 {
							dr[s] = 0
							continue
						}
						q := av / math.Max(float64(pr[s]), 1e-30) // Ā/P
						loss += av * math.Log(q)
						dr[s] = float32(-scale * q)
					}
				case AttentionLossMSE:
					for s, av := range a {
						e := float64(pr[s]) - av
						loss += e * e
						dr[s] = float32(2 * scale * e)
					}
				}
				clear(dr[t+1:])
			}
			losses[task] = loss
		}
	})
	var loss float64
	for _, l := range losses {
		loss += l
	}
	return weight * loss / N, nil
}

// AttentionKL is AttentionLossKL.Loss with weight 1: MiniLM's KL from the
// teacher's attention distributions A to the student's P (see
// AttentionLoss), its gradient written into dP.
func AttentionKL(dP, P, A []float32, seqs, Hs, Ht, T int) (float64, error) {
	return AttentionLossKL.Loss(dP, P, A, seqs, Hs, Ht, T, 1)
}

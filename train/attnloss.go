package train

import (
	"fmt"
	"math"
)

// AttentionKL is MiniLM's attention distillation (Wang et al. 2020,
// "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression
// of Pre-Trained Transformers", https://arxiv.org/abs/2002.10957): the KL
// from the teacher's attention distributions A to the student's P, per
// query position, averaged over sequences, student heads and positions:
//
//	L = (1/N) Σ_{b,h,t} Σ_{s ≤ t} A_bhts·(log A_bhts − log P_bhts),  N = seqs·Hs·T
//	∂L/∂P_bhts = −A_bhts / (N·P_bhts)
//
// P is [seqs][Hs][T][T] (Attention.Probs), A [seqs][Ht][T][T] (a cached
// attentions.j). When the head counts differ, the teacher's heads are
// averaged in groups of Ht/Hs consecutive heads onto each student head
// (Ht a multiple of Hs; an average of distributions is a distribution),
// or each teacher head serves Hs/Ht consecutive student heads (Hs a
// multiple of Ht). dP (P's layout) receives the gradient; the loss is
// returned. P_bhts under 1e-30 is taken as 1e-30, so a position the
// student all but masks gives a large finite loss, not +Inf.
func AttentionKL(dP, P, A []float32, seqs, Hs, Ht, T int) (float64, error) {
	if Hs < 1 || Ht < 1 || (Ht%Hs != 0 && Hs%Ht != 0) {
		return 0, fmt.Errorf("train: attention distillation: %d teacher heads onto %d student heads: one count must divide the other", Ht, Hs)
	}
	if len(P) != seqs*Hs*T*T || len(A) != seqs*Ht*T*T || len(dP) != len(P) {
		return 0, fmt.Errorf("train: attention distillation: %d student and %d teacher values for %d sequences of %d, %d and %d heads",
			len(P), len(A), seqs, T, Hs, Ht)
	}
	N := float64(seqs * Hs * T)
	g := max(1, Ht/Hs) // teacher heads averaged per student head
	var loss float64
	for b := range seqs {
		for h := range Hs {
			for t := range T {
				pr := P[((b*Hs+h)*T+t)*T:][:t+1]
				dr := dP[((b*Hs+h)*T+t)*T:][:T]
				clear(dr)
				for s := range pr {
					var a float64
					if Ht >= Hs {
						for j := range g {
							a += float64(A[((b*Ht+h*g+j)*T+t)*T+s])
						}
						a /= float64(g)
					} else {
						a = float64(A[((b*Ht+h/(Hs/Ht))*T+t)*T+s])
					}
					if a <= 0 {
						continue
					}
					p := math.Max(float64(pr[s]), 1e-30)
					loss += a * (math.Log(a) - math.Log(p))
					dr[s] = float32(-a / (N * p))
				}
			}
		}
	}
	return loss / N, nil
}

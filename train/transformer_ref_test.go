package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refTransformer is an independent float64 evaluation of a Transformer's
// forward pass, in plain loops over its parameters by Hugging Face name,
// written from the formulas (Hugging Face's LlamaForCausalLM, GPT-2's
// LayerNorm, tanh GELU and learned positions) and sharing no code with
// the model: RMSNorm x/√(mean(x²) + 1e-5)·γ; LayerNorm
// (x − μ)/√(σ² + 1e-5)·γ + β; RoPE rotate_half with θ^(−2i/head_dim);
// causal softmax(q·kᵀ/√head_dim) with query head h reading KV head
// h/(Heads/KVHeads); SwiGLU silu(g)·u or ½·u·(1 + tanh(√(2/π)·(u + 0.044715·u³))).
type refTransformer struct {
	c TransformerConfig // with its defaults
	w map[string][]float64
}

func newRefTransformer(m *Transformer) *refTransformer {
	r := &refTransformer{c: m.Cfg, w: map[string][]float64{}}
	for _, p := range m.Params() {
		r.w[p.Name] = f64(p.Data)
	}
	return r
}

// linear returns x·Wᵀ for W [out, len(x)].
func (r *refTransformer) linear(x []float64, name string) []float64 {
	W := r.w[name]
	out := make([]float64, len(W)/len(x))
	for o := range out {
		for i, v := range x {
			out[o] += W[o*len(x)+i] * v
		}
	}
	return out
}

func (r *refTransformer) norm(x []float64, name string) []float64 {
	d := float64(len(x))
	g := r.w[name+".weight"]
	y := make([]float64, len(x))
	if r.c.Norm == NormLayer {
		var mu, v float64
		for _, a := range x {
			mu += a / d
		}
		for _, a := range x {
			v += (a - mu) * (a - mu) / d
		}
		b := r.w[name+".bias"]
		for j, a := range x {
			y[j] = (a-mu)/math.Sqrt(v+1e-5)*g[j] + b[j]
		}
		return y
	}
	var ms float64
	for _, a := range x {
		ms += a * a / d
	}
	for j, a := range x {
		y[j] = a / math.Sqrt(ms+1e-5) * g[j]
	}
	return y
}

// rotate applies RoPE at position pos to each head of hd values of x.
func (r *refTransformer) rotate(x []float64, hd, pos int) {
	h := hd / 2
	for base := 0; base < len(x); base += hd {
		for i := range h {
			a := float64(pos) * math.Pow(r.c.RoPETheta, -2*float64(i)/float64(hd))
			x0, x1 := x[base+i], x[base+i+h]
			x[base+i], x[base+i+h] = x0*math.Cos(a)-x1*math.Sin(a), x1*math.Cos(a)+x0*math.Sin(a)
		}
	}
}

// logits returns the logits [len(ids)][Vocab] of whole sequences.
func (r *refTransformer) logits(ids []int32) [][]float64 {
	c := r.c
	D, T, H, KV := c.Dim, c.T, c.Heads, c.KVHeads
	hd := D / H
	n := len(ids)
	h := make([][]float64, n)
	for t, id := range ids {
		h[t] = slices.Clone(r.w["model.embed_tokens.weight"][int(id)*D : (int(id)+1)*D])
		if c.Pos == PosLearned {
			for j := range D {
				h[t][j] += r.w["model.embed_positions.weight"][(t%T)*D+j]
			}
		}
	}
	for l := range c.Layers {
		pre := fmt.Sprintf("model.layers.%d.", l)
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for t := range n {
			a := r.norm(h[t], pre+"input_layernorm")
			q[t], k[t], v[t] = r.linear(a, pre+"self_attn.q_proj.weight"), r.linear(a, pre+"self_attn.k_proj.weight"), r.linear(a, pre+"self_attn.v_proj.weight")
			if c.Pos == PosRoPE {
				r.rotate(q[t], hd, t%T)
				r.rotate(k[t], hd, t%T)
			}
		}
		for t := range n {
			start := t - t%T // the sequence's first row
			ctx := make([]float64, H*hd)
			for hh := range H {
				g := hh / (H / KV)
				s := make([]float64, t-start+1) // the causal prefix; later rows are masked
				mx := math.Inf(-1)
				for u := range s {
					for j := range hd {
						s[u] += q[t][hh*hd+j] * k[start+u][g*hd+j]
					}
					s[u] /= math.Sqrt(float64(hd))
					mx = max(mx, s[u])
				}
				var z float64
				for u := range s {
					s[u] = math.Exp(s[u] - mx)
					z += s[u]
				}
				for u := range s {
					for j := range hd {
						ctx[hh*hd+j] += s[u] / z * v[start+u][g*hd+j]
					}
				}
			}
			o := r.linear(ctx, pre+"self_attn.o_proj.weight")
			for j := range D {
				h[t][j] += o[j]
			}
		}
		for t := range n {
			m := r.norm(h[t], pre+"post_attention_layernorm")
			u := r.linear(m, pre+"mlp.up_proj.weight")
			s := make([]float64, len(u))
			if c.MLP == MLPGELU {
				for j, x := range u {
					s[j] = 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
				}
			} else {
				g := r.linear(m, pre+"mlp.gate_proj.weight")
				for j, x := range g {
					s[j] = x / (1 + math.Exp(-x)) * u[j]
				}
			}
			d := r.linear(s, pre+"mlp.down_proj.weight")
			for j := range D {
				h[t][j] += d[j]
			}
		}
	}
	head := "model.embed_tokens.weight"
	if c.Untied {
		head = "lm_head.weight"
	}
	out := make([][]float64, n)
	for t := range n {
		out[t] = r.linear(r.norm(h[t], "model.norm"), head)
	}
	return out
}

// refKDLoss is KD's loss in float64 from its formula: the mean over rows
// of α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·(log Σ e^s − s_y).
func refKDLoss(s [][]float64, teacher []float32, labels []int64, alpha, temp float64) float64 {
	logSoftmax := func(x []float64, temp float64) []float64 {
		mx := slices.Max(x)
		var z float64
		for _, v := range x {
			z += math.Exp((v - mx) / temp)
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = (v-mx)/temp - math.Log(z)
		}
		return out
	}
	var L float64
	for r, row := range s {
		lp := logSoftmax(f64(teacher[r*len(row):(r+1)*len(row)]), temp)
		lq := logSoftmax(row, temp)
		var kl float64
		for c := range row {
			kl += math.Exp(lp[c]) * (lp[c] - lq[c])
		}
		L += alpha*temp*temp*kl - (1-alpha)*logSoftmax(row, 1)[labels[r]]
	}
	return L / float64(len(s))
}

// TestTransformerFloat64 checks the whole model against refTransformer on
// every option combination (norm, MLP, position embedding; tied and
// untied; grouped-query attention, two layers, two sequences of 4): the
// Go model's float32 KD + CE loss (α 0.6, T 2, dense random teacher
// scores, random labels, every position) equals the float64 one within
// 1e-5 relative, and the analytic float32 gradient of every parameter
// value matches central differences of the float64 loss within 1e-3
// relative plus 1e-4 of the tensor's largest gradient. The step h = 1e-6
// keeps the differences' truncation (~h²·f⁽³⁾ ≈ 1e-12) and rounding
// (~1e-16/h ≈ 1e-10) far below float32's errors; the absolute part of
// the tolerance is for values near 0, where float32's rounding of the
// larger terms dominates (it reaches about 4e-6 of the largest here).
// The reference attends only to each query's prefix, so a leak past the
// causal mask would show in the loss of the earlier positions. Weights
// are N(0, 0.5²), norm gains 1 + N(0, 0.3²) (randomTransformer), so
// pre-activations and attention scores are of order 1 and every
// nonlinearity is exercised.
func TestTransformerFloat64(t *testing.T) {
	const alpha, temp = 0.6, 2.0
	var worst, worstLoss float64
	for _, norm := range []string{NormRMS, NormLayer} {
		for _, mlp := range []string{MLPSwiGLU, MLPGELU} {
			for _, pos := range []string{PosRoPE, PosLearned} {
				for _, untied := range []bool{false, true} {
					cfg := TransformerConfig{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 6, T: 4, Untied: untied, Norm: norm, MLP: mlp, Pos: pos}
					g, l := checkFloat64(t, cfg, alpha, temp)
					worst, worstLoss = max(worst, g), max(worstLoss, l)
				}
			}
		}
	}
	t.Logf("largest errors: loss %.3g relative, gradient %.3g of the tolerance", worstLoss, worst)
}

// checkFloat64 runs TestTransformerFloat64's check on one configuration
// and returns the largest gradient error as a fraction of its tolerance
// and the loss's relative error.
func checkFloat64(t *testing.T, cfg TransformerConfig, alpha, temp float64) (gradErr, lossErr float64) {
	name := fmt.Sprintf("%s, untied %v", cfg.Variant(), cfg.Untied)
	rng := rand.New(rand.NewPCG(7, 7))
	m := randomTransformer(t, cfg, rng, 0.5)
	ids := []int32{1, 4, 4, 9, 0, 10, 3, 7}
	n, V := len(ids), cfg.Vocab
	teacher := randMat(rng, n, V, 2)
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(rng.IntN(V))
	}
	logits := Mat{Rows: n, Cols: V, Data: make([]float32, n*V)}
	grad := Mat{Rows: n, Cols: V, Data: make([]float32, n*V)}
	m.Forward(logits, ids)
	kd := &KD{Temperature: temp, Alpha: alpha}
	loss, err := kd.Loss(grad, logits, &Targets{Labels: labels, Logits: teacher.Data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Backward(grad, nil)

	ref := newRefTransformer(m)
	f := func() float64 { return refKDLoss(ref.logits(ids), teacher.Data, labels, alpha, temp) }
	want := f()
	lossErr = math.Abs(loss-want) / math.Abs(want)
	if lossErr > 1e-5 {
		t.Errorf("%s: loss %.9g, float64 %.9g (relative error %.2g)", name, loss, want, lossErr)
	}
	const h = 1e-6
	for _, p := range m.Params() {
		w := ref.w[p.Name]
		fd := make([]float64, len(w))
		var scale float64
		for i := range w {
			old := w[i]
			w[i] = old + h
			up := f()
			w[i] = old - h
			down := f()
			w[i] = old
			fd[i] = (up - down) / (2 * h)
			scale = max(scale, math.Abs(fd[i]))
		}
		bad := 0
		for i, g := range p.Grad {
			tol := 1e-3*math.Abs(fd[i]) + 1e-4*scale
			err := math.Abs(float64(g) - fd[i])
			gradErr = max(gradErr, err/tol)
			if err > tol {
				if bad++; bad <= 3 {
					t.Errorf("%s: d/d%s[%d] = %.7g, float64 central differences %.7g", name, p.Name, i, g, fd[i])
				}
			}
		}
	}
	return gradErr, lossErr
}

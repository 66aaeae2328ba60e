//go:build cgo

package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/train"
)

// lmConfigs are the transformer options the parity tests cover: a Llama
// with tied embeddings and grouped-query attention, GPT-2's choices with
// an untied head, and a mixed one with multi-query attention.
var lmConfigs = []struct {
	name string
	cfg  train.TransformerConfig
}{
	{"llama_tied_gqa", train.TransformerConfig{Vocab: 97, Dim: 32, Layers: 2, Heads: 4, KVHeads: 2, FFN: 48, T: 96}},
	{"layernorm_gelu_learned_untied", train.TransformerConfig{Vocab: 83, Dim: 24, Layers: 2, Heads: 3, KVHeads: 3, FFN: 40, T: 96,
		Untied: true, Norm: train.NormLayer, MLP: train.MLPGELU, Pos: train.PosLearned}},
	{"rmsnorm_gelu_rope_untied_mqa", train.TransformerConfig{Vocab: 61, Dim: 32, Layers: 1, Heads: 4, KVHeads: 1, FFN: 24, T: 96,
		Untied: true, MLP: train.MLPGELU, RoPETheta: 500}},
}

// randomLM returns a transformer of cfg with random weights large enough
// for logits of a few units (Init's, times 8) and norm gains and biases
// away from 1 and 0.
func randomLM(t *testing.T, cfg train.TransformerConfig, seed uint64) *train.Transformer {
	t.Helper()
	m, err := train.NewTransformer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	train.NewParams(m.Params()...)
	rng := rand.New(rand.NewPCG(seed, 5))
	m.Init(rng)
	for _, p := range m.Params() {
		norm := strings.Contains(p.Name, "norm")
		for i := range p.Data {
			if norm {
				p.Data[i] += float32(0.2 * rng.NormFloat64())
			} else {
				p.Data[i] *= 8
			}
		}
	}
	return m
}

// roundedLM returns a copy of m whose weights are what the exported graph
// of opts computes with: float16-rounded matrices (F16) or the int8
// per-channel dequantized ones, float32(q)·scale (Int8, position table
// kept). With float32 weights it returns m.
func roundedLM(t *testing.T, m *train.Transformer, opts export.Options) *train.Transformer {
	t.Helper()
	if opts.Dtype != export.F16 && opts.Quantize == "" {
		return m
	}
	r, err := train.NewTransformer(m.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	train.NewParams(r.Params()...)
	src := m.Params()
	for i, p := range r.Params() {
		copy(p.Data, src[i].Data)
		if strings.Contains(p.Name, "norm") {
			continue
		}
		switch {
		case opts.Dtype == export.F16:
			for j, v := range p.Data {
				p.Data[j] = formats.Float16Value(formats.Float16Bits(v))
			}
		case p != r.Pos:
			out, in := p.Shape[0], p.Shape[1]
			q, scale := export.QuantizeWeights(p.Data, out, in)
			for o := range out {
				for j := range in {
					p.Data[o*in+j] = float32(int(q[j*out+o])-export.WeightZeroPoint) * scale[o]
				}
			}
		}
	}
	return r
}

// goLogits runs train's Forward over whole sequences of Cfg.T ids.
func goLogits(m *train.Transformer, ids []int32) []float32 {
	V := m.Cfg.Vocab
	dst := train.Mat{Rows: len(ids), Cols: V, Data: make([]float32, len(ids)*V)}
	m.Forward(dst, ids)
	return dst.Data
}

// cmpRows compares got [n, V] with want [n, V]: the largest |difference|
// and the largest |want|.
func cmpRows(got, want []float32) (diff, maxAbs float64) {
	for i, w := range want {
		diff = math.Max(diff, math.Abs(float64(got[i]-w)))
		maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
	}
	return diff, maxAbs
}

func argmax(x []float32) int64 { return int64(fixtures.Argmax(x)) }

// parity accumulates the worst |Δlogit| of a comparison and its bound.
type parity struct {
	diff, maxAbs float64
}

func (p *parity) add(got, want []float32) {
	d, a := cmpRows(got, want)
	p.diff, p.maxAbs = math.Max(p.diff, d), math.Max(p.maxAbs, a)
}

// check fails t if the worst difference exceeds tol × max(1, max |logit|).
func (p parity) check(t *testing.T, what string, tol float64) {
	t.Helper()
	bound := tol * math.Max(1, p.maxAbs)
	t.Logf("%s: max |Δlogit| %.3g (max |logit| %.3g, bound %.3g)", what, p.diff, p.maxAbs, bound)
	if !(p.diff <= bound) {
		t.Errorf("%s: max |Δlogit| %.3g exceeds %.3g", what, p.diff, bound)
	}
}

var lmFormats = []struct {
	name string
	opts export.Options
	tol  float64 // against the unrounded Go model
}{
	{"f32", export.Options{}, export.TolF32},
	{"f16", export.Options{Dtype: export.F16}, export.TolF16},
	{"int8", export.Options{Quantize: export.Int8}, export.TolInt8},
}

// TestLMExportParity exports random transformers of several option
// combinations in every weight format, as the full-sequence model and as
// the decoder with past, and runs them through onnxruntime against train's
// Forward:
//
//   - full sequence: the no-cache model on 2 sequences of T tokens and on
//     2 of 37 (Forward's first 37 rows: it is causal);
//   - prefill and decode: the KV model with an empty past on 2 prompts of
//     32 tokens, then 64 cached greedy steps of one token; each call's
//     logits against Forward's rows at its positions over the T = 96
//     tokens fed (the prompt and the decoded tokens).
//
// f32 must agree within TolF32 × max(1, max |logit|). f16 and int8 must
// agree within the same 1e-5 with a Go model holding the rounded weights
// the graph computes with (so the graph is exact, only the weights are
// rounded), and within TolF16 and TolInt8 with the original model.
func TestLMExportParity(t *testing.T) {
	requireRuntime(t)
	for ci, lc := range lmConfigs {
		m := randomLM(t, lc.cfg, uint64(10+ci))
		c := m.Cfg
		hd := c.HeadDim()
		rng := rand.New(rand.NewPCG(uint64(ci), 99))
		for _, f := range lmFormats {
			t.Run(lc.name+"/"+f.name, func(t *testing.T) {
				ref := roundedLM(t, m, f.opts)
				// Full sequence, no cache.
				full, err := export.MarshalLM(m, nil, &export.LMOptions{Options: f.opts, NoCache: true})
				if err != nil {
					t.Fatal(err)
				}
				ids := make([]int32, 2*c.T)
				ids64 := make([]int64, len(ids))
				for i := range ids {
					ids[i] = int32(rng.IntN(c.Vocab))
					ids64[i] = int64(ids[i])
				}
				want, wantOrig := goLogits(ref, ids), goLogits(m, ids)
				got := ortFull(t, full, ids64, 2, c.T)
				var exact, orig parity
				exact.add(got, want)
				orig.add(got, wantOrig)
				short := append(append([]int64(nil), ids64[:37]...), ids64[c.T:c.T+37]...)
				got = ortFull(t, full, short, 2, 37)
				for b := range 2 {
					exact.add(got[b*37*c.Vocab:(b+1)*37*c.Vocab], want[b*c.T*c.Vocab:(b*c.T+37)*c.Vocab])
				}
				exact.check(t, "no-cache vs Forward (exact weights)", export.TolF32)
				if f.name != "f32" {
					orig.check(t, "no-cache vs Forward (original weights)", f.tol)
				}

				// Prefill 32 tokens with an empty past, then 64 cached steps.
				kv, err := export.MarshalLM(m, nil, &export.LMOptions{Options: f.opts})
				if err != nil {
					t.Fatal(err)
				}
				const B, prompt, steps = 2, 32, 64
				d := newORTDecoder(t, kv, c.Layers, c.KVHeads, hd, c.Vocab)
				d.start(B)
				seqs := make([][]int32, B)
				in := make([]int64, 0, B*prompt)
				for b := range B {
					for range prompt {
						seqs[b] = append(seqs[b], int32(rng.IntN(c.Vocab)))
						in = append(in, int64(seqs[b][len(seqs[b])-1]))
					}
				}
				ones := func(n int) []int64 {
					s := make([]int64, n)
					for i := range s {
						s[i] = 1
					}
					return s
				}
				calls := [][]float32{d.step(in, prompt, ones(B*prompt), lm.Positions(ones(B*prompt), B, prompt))}
				if sh := d.presentShape(); fmt.Sprint(sh) != fmt.Sprint([]int64{B, int64(c.KVHeads), prompt, int64(hd)}) {
					t.Fatalf("present.0.key after the prefill has shape %v", sh)
				}
				for i := range steps {
					last := calls[len(calls)-1]
					s := len(last) / (B * c.Vocab)
					next := make([]int64, B)
					for b := range B {
						next[b] = argmax(last[((b+1)*s-1)*c.Vocab : (b+1)*s*c.Vocab])
						seqs[b] = append(seqs[b], int32(next[b]))
					}
					pos := []int64{int64(prompt + i), int64(prompt + i)}
					calls = append(calls, d.step(next, 1, ones(B), pos))
				}
				var flat []int32
				for b := range B {
					if len(seqs[b]) != c.T {
						t.Fatalf("fed %d tokens, want T = %d", len(seqs[b]), c.T)
					}
					flat = append(flat, seqs[b]...)
				}
				want, wantOrig = goLogits(ref, flat), goLogits(m, flat)
				var pre, dec, decOrig parity
				V := c.Vocab
				for b := range B {
					pre.add(calls[0][b*prompt*V:(b+1)*prompt*V], want[b*c.T*V:(b*c.T+prompt)*V])
					for i, call := range calls[1:] {
						row := b*c.T + prompt + i
						dec.add(call[b*V:(b+1)*V], want[row*V:(row+1)*V])
						decOrig.add(call[b*V:(b+1)*V], wantOrig[row*V:(row+1)*V])
					}
				}
				pre.check(t, "prefill (empty past) vs Forward", export.TolF32)
				dec.check(t, "64 cached steps vs Forward", export.TolF32)
				if f.name != "f32" {
					decOrig.check(t, "64 cached steps vs Forward (original weights)", f.tol)
				}
			})
		}
	}
}

// TestLMExportLeftPadding runs a left-padded batch of prompts of 20, 9
// and 3 tokens through the KV model (mask 0 at the pads, positions by
// the Hugging Face rule, lm.Positions), then 16 cached greedy steps, and
// compares every row's logits at its real positions with train's Forward
// on that row alone, unpadded. Every logit, pads included, must be
// finite.
func TestLMExportLeftPadding(t *testing.T) {
	requireRuntime(t)
	for ci, lc := range lmConfigs[:2] {
		t.Run(lc.name, func(t *testing.T) {
			m := randomLM(t, lc.cfg, uint64(20+ci))
			c := m.Cfg
			kv, err := export.MarshalLM(m, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, uint64(ci)))
			lens := []int{20, 9, 3}
			B := len(lens)
			prompts := make([][]int64, B)
			for b, n := range lens {
				for range n {
					prompts[b] = append(prompts[b], int64(rng.IntN(c.Vocab)))
				}
			}
			ids, mask, L := lm.LeftPad(prompts, 0)
			d := newORTDecoder(t, kv, c.Layers, c.KVHeads, c.HeadDim(), c.Vocab)
			d.start(B)
			V := c.Vocab
			calls := [][]float32{d.step(ids, L, mask, lm.Positions(mask, B, L))}
			full := append([]int64(nil), mask...) // the mask over everything fed
			const steps = 16
			for i := range steps {
				last := calls[len(calls)-1]
				s := len(last) / (B * V)
				next := make([]int64, B)
				for b := range B {
					next[b] = argmax(last[((b+1)*s-1)*V : (b+1)*s*V])
					prompts[b] = append(prompts[b], next[b])
				}
				total := L + i + 1
				nf := make([]int64, 0, B*total)
				for b := range B {
					nf = append(append(nf, full[b*(total-1):(b+1)*(total-1)]...), 1)
				}
				full = nf
				calls = append(calls, d.step(next, 1, []int64{1, 1, 1}, lm.Positions(full, B, 1)))
			}
			for _, call := range calls {
				for i, v := range call {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("logit %d is %v", i, v)
					}
				}
			}
			var p parity
			for b, n := range lens {
				seq := make([]int32, c.T)
				for j, v := range prompts[b] {
					seq[j] = int32(v)
				}
				want := goLogits(m, seq)
				pad := L - n
				p.add(calls[0][(b*L+pad)*V:(b+1)*L*V], want[:n*V])
				for i, call := range calls[1:] {
					p.add(call[b*V:(b+1)*V], want[(n+i)*V:(n+i+1)*V])
				}
			}
			p.check(t, "left-padded batch vs each row alone", export.TolF32)
		})
	}
}

// TestLMExportOpsets runs the forms the graph takes at other opsets (13:
// the oldest, LayerNormalization written out; 18: ReduceMean's axes an
// input; 20 and 23: the Gelu op) through onnxruntime: the no-cache model
// over 2 sequences of T and the KV model's prefill of 40 tokens plus 8
// cached steps, against train's Forward within TolF32.
func TestLMExportOpsets(t *testing.T) {
	requireRuntime(t)
	for ci, lc := range lmConfigs[:2] {
		m := randomLM(t, lc.cfg, uint64(30+ci))
		c, V := m.Cfg, m.Cfg.Vocab
		for _, opset := range []int{13, 18, 20, 23} {
			t.Run(fmt.Sprintf("%s/opset%d", lc.name, opset), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(opset), 1))
				ids := make([]int32, 2*c.T)
				ids64 := make([]int64, len(ids))
				for i := range ids {
					ids[i] = int32(rng.IntN(V))
					ids64[i] = int64(ids[i])
				}
				want := goLogits(m, ids)
				full, err := export.MarshalLM(m, nil, &export.LMOptions{Options: export.Options{Opset: opset}, NoCache: true})
				if err != nil {
					t.Fatal(err)
				}
				var p parity
				p.add(ortFull(t, full, ids64, 2, c.T), want)
				kv, err := export.MarshalLM(m, nil, &export.LMOptions{Options: export.Options{Opset: opset}})
				if err != nil {
					t.Fatal(err)
				}
				d := newORTDecoder(t, kv, c.Layers, c.KVHeads, c.HeadDim(), V)
				d.start(1)
				const prompt = 40
				mask := make([]int64, prompt)
				for i := range mask {
					mask[i] = 1
				}
				p.add(d.step(ids64[:prompt], prompt, mask, lm.Positions(mask, 1, prompt)), want[:prompt*V])
				for i := prompt; i < prompt+8; i++ {
					p.add(d.step(ids64[i:i+1], 1, []int64{1}, []int64{int64(i)}), want[i*V:(i+1)*V])
				}
				p.check(t, "no-cache and KV vs Forward", export.TolF32)
			})
		}
	}
}

package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// decodeConfigs are gradientConfigs (every option alone and mixed, tied
// and untied, two query heads on one KV head) at T 12, plus a wider
// grouped-query Llama (four query heads on two KV heads) whose 70-token
// prefill crosses decodeBlock.
func decodeConfigs() []TransformerConfig {
	var cs []TransformerConfig
	for _, c := range gradientConfigs() {
		c.T = 12
		cs = append(cs, c)
	}
	return append(cs, TransformerConfig{Vocab: 13, Dim: 16, Layers: 2, Heads: 4, KVHeads: 2, FFN: 12, T: 80})
}

// maxAbs returns max |x|.
func maxAbs(x []float32) float64 {
	var m float64
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// closeRows fails t if got and want differ by more than tol·max(1, max|want|).
func closeRows(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	lim := tol * max(1, maxAbs(want))
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= lim) {
			t.Fatalf("%s: value %d: %g, want %g (|diff| %.3g > %.3g)", what, i, got[i], want[i], d, lim)
		}
	}
}

// seqPositions returns positions from..from+n−1 for each of batch rows.
func seqPositions(batch, from, n int) []int64 {
	p := make([]int64, batch*n)
	for i := range p {
		p[i] = int64(from + i%n)
	}
	return p
}

func ones(n int) []int64 {
	m := make([]int64, n)
	for i := range m {
		m[i] = 1
	}
	return m
}

// TestDecoderMatchesForward feeds two sequences of T tokens to a Decoder
// as a prefill of 5 (70 for the wide model) then one token per step, and
// compares every call's logits with Forward's rows at the same positions
// (Forward is causal, so row t sees tokens ≤ t as the decoder's query t
// does), for each of decodeConfigs, at random weights of scale 0.3
// (attention far from uniform).
func TestDecoderMatchesForward(t *testing.T) {
	for _, cfg := range decodeConfigs() {
		t.Run(fmt.Sprintf("%s untied %v kv %d/%d", cfg.Variant(), cfg.Untied, cfg.KVHeads, cfg.Heads), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(cfg.T)))
			m := randomTransformer(t, cfg, rng, 0.3)
			T, V, B := cfg.T, cfg.Vocab, 2
			ids := make([]int32, B*T)
			for i := range ids {
				ids[i] = int32(rng.IntN(V))
			}
			want := Mat{Rows: B * T, Cols: V, Data: make([]float32, B*T*V)}
			m.Forward(want, ids)
			d, err := NewDecoder(m, B)
			if err != nil {
				t.Fatal(err)
			}
			pre := 5
			if T > decodeBlock {
				pre = decodeBlock + 6
			}
			for past := 0; past < T; {
				s := 1
				if past == 0 {
					s = pre
				}
				step := make([]int64, B*s)
				for b := range B {
					for j := range s {
						step[b*s+j] = int64(ids[b*T+past+j])
					}
				}
				got, err := d.Step(step, s, ones(B*(past+s)), seqPositions(B, past, s))
				if err != nil {
					t.Fatal(err)
				}
				if d.Past() != past+s {
					t.Fatalf("Past %d after feeding %d", d.Past(), past+s)
				}
				for b := range B {
					closeRows(t, fmt.Sprintf("row %d, positions %d..%d", b, past, past+s-1),
						got[b*s*V:(b+1)*s*V], want.Data[(b*T+past)*V:(b*T+past+s)*V], 2e-5)
				}
				past += s
			}
		})
	}
}

// TestDecoderPadding runs three prompts of lengths 2, 7 and 4 as one
// left-padded batch (Hugging Face's positions: cumsum(mask) − 1, 1 at
// pads) and decodes 4 tokens: every real position's logits equal those
// of the same row decoded alone. A fourth row has a masked token in the
// middle of its prompt (mask 0 there, positions skipping it), the masked
// softmax's general path, and equals its prompt without that token run
// alone.
func TestDecoderPadding(t *testing.T) {
	for _, cfg := range []TransformerConfig{decodeConfigs()[0], decodeConfigs()[5]} {
		t.Run(cfg.Variant(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, 3))
			m := randomTransformer(t, cfg, rng, 0.3)
			V := cfg.Vocab
			lens := []int{2, 7, 4, 6}
			hole := 3 // row 3's masked prompt token
			L, steps, B := 7, 4, len(lens)
			prompts := make([][]int64, B)
			for b, n := range lens {
				for range n {
					prompts[b] = append(prompts[b], int64(rng.IntN(V)))
				}
			}
			next := make([][]int64, B) // the tokens fed after the prompt
			for b := range B {
				for range steps {
					next[b] = append(next[b], int64(rng.IntN(V)))
				}
			}
			// Each row alone: the prompt (row 3 without its hole), then the steps.
			alone := make([][][]float32, B) // [row][call] logits of the call's last token
			for b := range B {
				p := prompts[b]
				if b == 3 {
					p = append(append([]int64{}, p[:hole]...), p[hole+1:]...)
				}
				d, _ := NewDecoder(m, 1)
				out, err := d.Step(p, len(p), ones(len(p)), seqPositions(1, 0, len(p)))
				if err != nil {
					t.Fatal(err)
				}
				alone[b] = append(alone[b], append([]float32{}, out[(len(p)-1)*V:]...))
				for i, id := range next[b] {
					out, err := d.Step([]int64{id}, 1, ones(len(p)+i+1), []int64{int64(len(p) + i)})
					if err != nil {
						t.Fatal(err)
					}
					alone[b] = append(alone[b], append([]float32{}, out...))
				}
			}
			// The batch: left padding (pad id 0, any id would do), row 3's hole.
			ids, mask, pos := make([]int64, B*L), make([]int64, B*L), make([]int64, B*L)
			for b, p := range prompts {
				off := L - len(p)
				var c int64
				for j := range L {
					if j >= off && !(b == 3 && j-off == hole) {
						ids[b*L+j], mask[b*L+j] = p[j-off], 1
						c++
						pos[b*L+j] = c - 1
					} else {
						pos[b*L+j] = 1
						if j >= off {
							ids[b*L+j] = p[j-off]
						}
					}
				}
			}
			d, _ := NewDecoder(m, B)
			out, err := d.Step(ids, L, mask, pos)
			if err != nil {
				t.Fatal(err)
			}
			for b := range B {
				closeRows(t, fmt.Sprintf("row %d prefill", b), out[(b*L+L-1)*V:(b*L+L)*V], alone[b][0], 2e-5)
			}
			for i := range steps {
				step, p := make([]int64, B), make([]int64, B)
				for b := range B {
					step[b] = next[b][i]
					n := lens[b]
					if b == 3 {
						n--
					}
					p[b] = int64(n + i)
				}
				total := L + i + 1
				full := make([]int64, B*total)
				for b := range B {
					copy(full[b*total:], mask[b*L:(b+1)*L])
					for j := L; j < total; j++ {
						full[b*total+j] = 1
					}
				}
				out, err := d.Step(step, 1, full, p)
				if err != nil {
					t.Fatal(err)
				}
				for b := range B {
					closeRows(t, fmt.Sprintf("row %d step %d", b, i), out[b*V:(b+1)*V], alone[b][i+1], 2e-5)
				}
			}
		})
	}
}

// TestDecoderErrors: bad calls are errors naming the problem, and feed
// nothing.
func TestDecoderErrors(t *testing.T) {
	cfg := decodeConfigs()[0]
	m := randomTransformer(t, cfg, rand.New(rand.NewPCG(4, 5)), 0.3)
	d, err := NewDecoder(m, 2)
	if err != nil {
		t.Fatal(err)
	}
	T := int64(cfg.T)
	for _, tc := range []struct {
		ids, mask, pos []int64
		s              int
		want           string
	}{
		{[]int64{1, 2}, ones(2), []int64{0, T}, 1, "position 12 (row 1) out of range [0, 12)"},
		{[]int64{1, 2}, ones(2), []int64{-1, 0}, 1, "position -1"},
		{[]int64{1, 11}, ones(2), []int64{0, 0}, 1, "token id 11 (row 1) out of range [0, 11)"},
		{[]int64{1, 2}, ones(3), []int64{0, 0}, 1, "mask of 3 values"},
		{[]int64{1, 2}, []int64{1, 2}, []int64{0, 0}, 1, "mask value 2"},
		{[]int64{1, 2, 3}, ones(3), []int64{0, 0, 0}, 1, "3 ids"},
		{nil, nil, nil, 0, "at least 1"},
	} {
		if _, err := d.Step(tc.ids, tc.s, tc.mask, tc.pos); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v %v: %v, want %q", tc.ids, tc.mask, tc.pos, err, tc.want)
		}
		if d.Past() != 0 {
			t.Fatalf("a refused step fed %d tokens", d.Past())
		}
	}
	if _, err := NewDecoder(m, 0); err == nil {
		t.Error("batch 0 accepted")
	}
}

// greedyStories decodes the stories260K Hugging Face directory greedily
// from BOS for n tokens in a batch of batch identical rows, returning row
// 0's ids (BOS first) and checking that every row got the same.
func greedyStories(t testing.TB, batch, n int) []int {
	t.Helper()
	m, err := LoadHFLlama(sharedtest.Dir(t, "teachers", "seq", "stories260K-hf"), 512)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(m, batch)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Cfg.Vocab
	cur := make([]int64, batch)
	for b := range cur {
		cur[b] = 1 // BOS
	}
	out := []int{1}
	for i := range n {
		logits, err := d.Step(cur, 1, ones(batch*(i+1)), seqPositions(batch, i, 1))
		if err != nil {
			t.Fatal(err)
		}
		for b := range batch {
			row := logits[b*V : (b+1)*V]
			best := 0
			for c, v := range row {
				if v > row[best] {
					best = c
				}
			}
			cur[b] = int64(best)
			if cur[b] != cur[0] {
				t.Fatalf("step %d: row %d chose %d, row 0 %d", i, b, cur[b], cur[0])
			}
		}
		out = append(out, int(cur[0]))
	}
	return out
}

// TestDecoderStories260K decodes the real stories260K teacher (the
// Hugging Face directory, through LoadHFLlama) greedily from BOS with the
// KV cache, one token per call, in batches of 1 and 3: the 200 tokens
// decode with tok512 to llama2.c's expected text, byte for byte.
func TestDecoderStories260K(t *testing.T) {
	tok, _, err := tokenizer.Load(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 3} {
		ids := greedyStories(t, batch, 200)
		if got := tok.Decode(ids, true); got != sharedtest.StoriesGreedy {
			t.Errorf("batch %d: greedy text\n%q\nwant\n%q", batch, got, sharedtest.StoriesGreedy)
		}
	}
}

// BenchmarkDecoderStories260K measures cached greedy decoding of
// stories260K from BOS, 200 tokens per row, at batch 1 and 16, reporting
// generated tokens per second (all rows).
func BenchmarkDecoderStories260K(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			for b.Loop() {
				greedyStories(b, batch, 200)
			}
			b.ReportMetric(float64(200*batch*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

package train

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// markovAttention is the teacher attention map of writeLMCache's windows,
// [H, T, T], the same for every window: head j attends to the previous
// token with probability c = (j+1)/(H+1) and uniformly over s ≤ t with
// the rest (row 0 attends to itself). A pattern of positions only, which
// a RoPE student can learn, and different per head, so that averaging
// heads in groups matters.
func markovAttention(H, T int) []float32 {
	A := make([]float32, H*T*T)
	for j := range H {
		c := float64(j+1) / float64(H+1)
		for t := range T {
			row := A[(j*T+t)*T:][:T]
			if t == 0 {
				row[0] = 1
				continue
			}
			for s := 0; s <= t; s++ {
				row[s] = float32((1 - c) / float64(t+1))
			}
			row[t-1] += float32(c)
		}
	}
	return A
}

// TestAttentionTermsGradient checks TrainLM's attention-pair wiring on a
// tiny transformer (two sequences, two blocks, 2 heads): three pairs, two
// of them on block 0 (their gradients summed; one from a 4-head teacher
// map averaged in pairs, one from a 2-head map), one on block 1 with
// weight 2, with random causal teacher maps holding garbage at the masked
// entries. The gradient m.Backward gives every parameter, from the
// DProbs lmAttention.terms sets and no logit gradient, is compared with
// central finite differences of the summed terms, for KL and MSE.
func TestAttentionTermsGradient(t *testing.T) {
	const T, seqs = 4, 2
	cfg := TransformerConfig{Vocab: 11, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 6, T: T}
	heads := map[string]int{"attentions.0": 4, "attentions.1": 2} // the teacher maps'
	dcfg := formats.Config{Hidden: []formats.TensorSpec{
		{Name: "attentions.0", Shape: []int64{4, T, T}}, {Name: "attentions.1", Shape: []int64{2, T, T}}}}
	pairs := []AttentionPair{{"attentions.0", 0, 0.5}, {"attentions.1", 0, 1}, {"attentions.1", 1, 2}}
	for f, scale := range map[AttentionLoss]float64{AttentionLossKL: 1, AttentionLossMSE: 8} {
		m, err := NewTransformer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		NewParams(m.Params()...)
		// Weights of 0.3: at 0.5 the attention is sharp enough that
		// central differences of step 1e-2 are a few percent off MSE's
		// gradient (at step 2.5e-3 they agree again).
		rng := rand.New(rand.NewPCG(4, 4))
		for _, p := range m.Params() {
			for i := range p.Data {
				p.Data[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
		ps := make([]AttentionPair, len(pairs))
		for i, p := range pairs { // MSE's terms are smaller: scaled up above the tolerance
			p.Weight *= scale
			ps[i] = p
		}
		var at lmAttention
		if err := at.setup(dcfg, Options{Attentions: ps, AttentionLoss: f}, m, T); err != nil {
			t.Fatal(err)
		}
		b := &formats.Batch{Hidden: map[string][]float32{
			"attentions.0": randAttention(rng, seqs, heads["attentions.0"], T), "attentions.1": randAttention(rng, seqs, heads["attentions.1"], T)}}
		at.reset()
		for i := range seqs {
			at.add(b, i, T)
		}
		ids := []int32{1, 4, 4, 9, 0, 10, 3, 7}
		logits := Mat{Rows: len(ids), Cols: cfg.Vocab, Data: make([]float32, len(ids)*cfg.Vocab)}
		fn := func() float64 {
			m.Forward(logits, ids)
			l, err := at.terms(m, seqs, T)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		l := fn()
		var want float64 // the formula on each pair's block and whole teacher tensor
		for _, p := range ps {
			want += attentionLoss64(f, m.Blocks[p.Layer].Attn.Probs(), b.Hidden[p.Teacher], seqs, cfg.Heads, heads[p.Teacher], T, p.Weight)
		}
		if !(l > 0) || math.Abs(l-want) > 1e-6*want {
			t.Fatalf("%s: attention terms %v, formula %v", f, l, want)
		}
		m.Backward(Mat{Rows: logits.Rows, Cols: logits.Cols, Data: make([]float32, len(logits.Data))}, nil)
		largest := checkParamGradients(t, string(f), m.Params(), fn)
		if largest < 20*gradAbs {
			t.Errorf("%s: the largest gradient is %v: too small for the check to mean much", f, largest)
		}
	}
}

// attentionKLOf returns the KL of block l's attention in m to
// markovAttention(H, T) on the first windows of c (seqs of them).
func attentionKLOf(t *testing.T, m *Transformer, c *formats.Cache, l, H, seqs int) float64 {
	t.Helper()
	T := m.Cfg.T
	var b formats.Batch
	if err := c.ReadBatch(0, &b); err != nil {
		t.Fatal(err)
	}
	ids := make([]int32, seqs*T)
	for i, v := range b.Inputs[lmInput][:seqs*T] {
		ids[i] = int32(v)
	}
	m.Forward(Mat{Rows: len(ids), Cols: m.Cfg.Vocab, Data: make([]float32, len(ids)*m.Cfg.Vocab)}, ids)
	var A []float32
	for range seqs {
		A = append(A, markovAttention(H, T)...)
	}
	P := m.Blocks[l].Attn.Probs()[:seqs*m.Cfg.Heads*T*T]
	kl, err := AttentionKL(make([]float32, len(P)), P, A, seqs, m.Cfg.Heads, H, T)
	if err != nil {
		t.Fatal(err)
	}
	return kl
}

// TestTrainLMAttention distils the Markov teacher with an attention pair
// (student block 1, 2 heads, onto a cached 4-head teacher map averaged in
// pairs), with KL and with MSE: the pair's term falls over the epochs to
// well under half its first epoch's, the trained block's attention is far
// closer to the teacher's (KL on held-out windows) than that of the same
// run without the pair, and the logit distillation does as well as
// without it. Pairs that cannot work are refused, naming the problem.
func TestTrainLMAttention(t *testing.T) {
	const T, V, H = 16, 16, 4
	cfg := TransformerConfig{Dim: 16, Layers: 2, Heads: 2, KVHeads: 1, FFN: 32}
	maps := formats.Config{TopK: 4, Hidden: []formats.TensorSpec{
		{Name: "attentions.1", Shape: []int64{H, T, T}}, {Name: "attentions.0", Shape: []int64{3, T, T}}}}
	data, val := writeLMCache(t, 192, T, V, maps, 1), writeLMCache(t, 64, T, V, formats.Config{TopK: 4}, 2)
	base := Options{Epochs: 6, BatchSize: 16, LR: 1e-2, Alpha: 1, Temperature: 1, Seed: 5, Val: val, Threads: 1}
	plain, err := TrainLM(context.Background(), cfg, data, &base, nil)
	if err != nil {
		t.Fatal(err)
	}
	plainKL := attentionKLOf(t, plain.Model, val, 1, H, 16)
	if e := plain.Epochs[5]; e.TrainAttention != 0 {
		t.Errorf("no pairs: attention share %v of the loss", e.TrainAttention)
	}
	for f, w := range map[AttentionLoss]float64{AttentionLossKL: 1, AttentionLossMSE: 10} {
		o := base
		o.Attentions, o.AttentionLoss = []AttentionPair{{Teacher: "attentions.1", Layer: 1, Weight: w}}, f
		res, err := TrainLM(context.Background(), cfg, data, &o, nil)
		if err != nil {
			t.Fatal(err)
		}
		first, last := res.Epochs[0], res.Epochs[5]
		kl := attentionKLOf(t, res.Model, val, 1, H, 16)
		t.Logf("%s: attention term %.4f → %.4f (of loss %.3f → %.3f); block 1's held-out attention KL %.4f, %.4f without the pair; held-out NLL %.3f (%.3f without)",
			f, first.TrainAttention, last.TrainAttention, first.TrainLoss, last.TrainLoss, kl, plainKL, last.ValNLL, plain.Epochs[5].ValNLL)
		if !(first.TrainAttention > 0) || !(last.TrainAttention < first.TrainAttention/2) || !(first.TrainAttention < first.TrainLoss) {
			t.Errorf("%s: the attention term went %v → %v (loss %v)", f, first.TrainAttention, last.TrainAttention, first.TrainLoss)
		}
		if !(kl < plainKL/2) {
			t.Errorf("%s: block 1's attention KL %v with the pair, %v without", f, kl, plainKL)
		}
		if last.ValNLL > 1.1 {
			t.Errorf("%s: held-out NLL %v (teacher 0.79, uniform 2.77)", f, last.ValNLL)
		}
	}
	for _, tc := range []struct {
		pair AttentionPair
		loss AttentionLoss
		want string
	}{
		{AttentionPair{Teacher: "attentions.9", Layer: 0}, "", `"attentions.9" was not cached`},
		{AttentionPair{Teacher: "hidden_states.1", Layer: 0}, "", "not [heads, 16, 16]"},
		{AttentionPair{Teacher: "attentions.1", Layer: 2}, "", "blocks 0..1"},
		{AttentionPair{Teacher: "attentions.0", Layer: 0}, "", "3 heads and the student 2"},
		{AttentionPair{Teacher: "attentions.1", Layer: 0, Weight: -1}, "", "weight -1"},
		{AttentionPair{Teacher: "attentions.1", Layer: 0}, "l1", `unknown attention loss "l1"`},
	} {
		o := base
		o.Attentions, o.AttentionLoss = []AttentionPair{tc.pair}, tc.loss
		if _, err := TrainLM(context.Background(), cfg, data, &o, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pair %+v, loss %q: error %v, want one naming %q", tc.pair, tc.loss, err, tc.want)
		}
	}
	c := writeSynth(t, t.TempDir(), synth{Rows: 8, Classes: 3, Inputs: 2})
	o := &Options{Attentions: []AttentionPair{{Teacher: "attentions.1", Layer: 0}}}
	if _, err := Train(context.Background(), Config{Hidden: []int{4}}, c, o); err == nil || !strings.Contains(err.Error(), "transformer") {
		t.Errorf("attention pairs for an MLP: %v", err)
	}
}

// TestParseAttentionPair checks the --attention syntax.
func TestParseAttentionPair(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want AttentionPair
		ok   bool
	}{
		{"attentions.3=2", AttentionPair{"attentions.3", 2, 1}, true},
		{"attentions.4=0:0.5", AttentionPair{"attentions.4", 0, 0.5}, true},
		{"a=b=3", AttentionPair{"a=b", 3, 1}, true},
		{"attentions.3=4", AttentionPair{}, false}, // 4 blocks: 0..3
		{"attentions.3=-1", AttentionPair{}, false},
		{"attentions.3=x", AttentionPair{}, false},
		{"attentions.3=1:0", AttentionPair{}, false},
		{"attentions.3=1:nan", AttentionPair{}, false},
		{"=1", AttentionPair{}, false},
		{"attentions.3", AttentionPair{}, false},
		{"attentions.3=", AttentionPair{}, false},
	} {
		got, err := ParseAttentionPair(tc.s, 4)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAttentionPair(%q) = %+v, %v; want %+v, ok %v", tc.s, got, err, tc.want, tc.ok)
		}
	}
}

package train

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/distill-ml/distill/formats"
)

// writeLMCache writes a per-token cache of windows of T tokens over a
// vocabulary of V from a Markov chain: the next token is (3·cur + 1) mod
// V with probability 0.85, else uniform; the teacher's logits are the log
// of those transition probabilities, the labels the tokens that came, and
// the input ids are cached (as extract --keep-input does). cfg picks the
// targets (TopK, Samples); its Hidden specs, if any, are [heads, T, T]
// attention maps added beside hidden_states.1 (markovAttention).
func writeLMCache(t *testing.T, windows, T, V int, cfg formats.Config, seed uint64) *formats.Cache {
	t.Helper()
	cfg.Classes, cfg.Positions, cfg.HasLabel = V, T, true
	cfg.Inputs = []formats.TensorSpec{{Name: lmInput, Shape: []int64{int64(T)}}}
	// The teacher's hidden state: a fixed 6-value code of the rule's next token.
	const H = 6
	maps := cfg.Hidden
	cfg.Hidden = append([]formats.TensorSpec{{Name: "hidden_states.1", Shape: []int64{int64(T), H}}}, maps...)
	code := rand.New(rand.NewPCG(77, 77))
	codes := make([]float32, V*H)
	for i := range codes {
		codes[i] = float32(code.NormFloat64())
	}
	dir := filepath.Join(t.TempDir(), "cache")
	m := formats.Manifest{Teacher: formats.Teacher{File: "markov.onnx", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Dataset: formats.Dataset{Path: "markov", Rows: int64(windows)}}
	rng := rand.New(rand.NewPCG(seed, 1))
	const stay = 0.85
	b := &formats.Batch{Inputs: map[string][]float32{}, Hidden: map[string][]float32{}}
	cur := rng.IntN(V)
	for w := range windows {
		b.Rows = append(b.Rows, int64(w))
		for range T {
			next := (3*cur + 1) % V
			if rng.Float64() > stay {
				next = rng.IntN(V)
			}
			b.Inputs[lmInput] = append(b.Inputs[lmInput], float32(cur))
			rule := (3*cur + 1) % V
			b.Hidden["hidden_states.1"] = append(b.Hidden["hidden_states.1"], codes[rule*H:(rule+1)*H]...)
			b.Labels = append(b.Labels, int64(next))
			for c := range V {
				p := (1 - stay) / float64(V)
				if c == (3*cur+1)%V {
					p += stay
				}
				b.Logits = append(b.Logits, float32(math.Log(p)))
			}
			cur = next
		}
		for _, m := range maps {
			b.Hidden[m.Name] = append(b.Hidden[m.Name], markovAttention(int(m.Shape[0]), T)...)
		}
	}
	return writeCache(t, dir, m, cfg, &formats.WriterOptions{Format: formats.FormatArrow, RowsPerBatch: 32}, b)
}

// TestTrainLM distils the Markov teacher into a 2-layer transformer with
// dense, top-4 and sampled targets: the held-out NLL falls from about
// ln 16 = 2.77 to near the teacher's entropy (0.79 nats/token) and the
// student agrees with the teacher's most probable token almost always;
// training again gives the same numbers; the checkpoint written to Out
// reads back (config.json, model.safetensors) into the same model.
func TestTrainLM(t *testing.T) {
	const T, V = 16, 16
	cfg := TransformerConfig{Dim: 16, Layers: 2, Heads: 2, KVHeads: 1, FFN: 32}
	for _, tc := range []struct {
		name string
		c    formats.Config
	}{
		{"dense", formats.Config{}},
		{"top4", formats.Config{TopK: 4}},
		{"sampled", formats.Config{Samples: 16, SampleSeed: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := writeLMCache(t, 192, T, V, tc.c, 1)
			val := writeLMCache(t, 64, T, V, tc.c, 2)
			out := filepath.Join(t.TempDir(), "student")
			o := &Options{Epochs: 6, BatchSize: 16, LR: 1e-2, Alpha: 1, Temperature: 1, Seed: 5, Val: val, Out: out, Threads: 1}
			res, err := TrainLM(context.Background(), cfg, data, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			last := res.Epochs[len(res.Epochs)-1]
			t.Logf("%s: train loss %.3f → %.3f; held-out NLL %.3f, agreement %.3f", tc.name, res.Epochs[0].TrainLoss, last.TrainLoss, last.ValNLL, last.ValAgreement)
			if last.ValNLL > 1.1 || last.ValAgreement < 0.95 || last.TrainLoss >= res.Epochs[0].TrainLoss {
				t.Errorf("%s: held-out NLL %.3f (teacher 0.79, uniform 2.77), agreement %.3f, train loss %.3f → %.3f", tc.name, last.ValNLL, last.ValAgreement, res.Epochs[0].TrainLoss, last.TrainLoss)
			}
			again, err := TrainLM(context.Background(), cfg, data, &Options{Epochs: 6, BatchSize: 16, LR: 1e-2, Alpha: 1, Temperature: 1, Seed: 5, Val: val, Threads: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range res.Epochs { // wall time differs
				res.Epochs[i].Seconds, res.Epochs[i].TokensPerSec = 0, 0
				again.Epochs[i].Seconds, again.Epochs[i].TokensPerSec = 0, 0
			}
			if !slices.Equal(again.Epochs, res.Epochs) {
				t.Errorf("a second run differs: %+v, %+v", again.Epochs, res.Epochs)
			}
			m2, err := LoadHFLlama(out, T)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range m2.Params() {
				if !slices.Equal(p.Data, res.Model.Params()[i].Data) {
					t.Fatalf("checkpoint tensor %s differs from the trained model's", p.Name)
				}
			}
		})
	}
	// Targets of another kind in the validation cache than in the
	// training cache: sampled training, top-4 validation, and back.
	for _, pair := range [][2]formats.Config{{{Samples: 16}, {TopK: 4}}, {{TopK: 4}, {Samples: 16}}} {
		data, val := writeLMCache(t, 64, T, V, pair[0], 3), writeLMCache(t, 32, T, V, pair[1], 4)
		res, err := TrainLM(context.Background(), cfg, data, &Options{Epochs: 2, BatchSize: 16, LR: 1e-2, Alpha: 1, Temperature: 1, Val: val, Threads: 1}, nil)
		if err != nil {
			t.Fatalf("%+v: %v", pair, err)
		}
		if e := res.Epochs[1]; !(e.ValNLL > 0 && e.ValNLL < 3) {
			t.Errorf("%+v: held-out NLL %v", pair, e.ValNLL)
		}
	}
	// A hidden-state pair (student layer 2, width 16, onto the teacher's
	// 6-value code through a projection): its term adds to the first
	// epoch's loss and is learned away (the student's layers adapting, not
	// only the projection); the held-out figures stay good.
	data, val := writeLMCache(t, 192, T, V, formats.Config{TopK: 4}, 1), writeLMCache(t, 64, T, V, formats.Config{TopK: 4}, 2)
	base := Options{Epochs: 6, BatchSize: 16, LR: 1e-2, Alpha: 1, Temperature: 1, Seed: 5, Val: val, Threads: 1}
	plain, err := TrainLM(context.Background(), cfg, data, &base, nil)
	if err != nil {
		t.Fatal(err)
	}
	withF := base
	withF.Features = []FeaturePair{{Teacher: "hidden_states.1", Layer: 2, Weight: 1}}
	feat, err := TrainLM(context.Background(), cfg, data, &withF, nil)
	if err != nil {
		t.Fatal(err)
	}
	f0, f5, p0 := feat.Epochs[0].TrainLoss, feat.Epochs[5].TrainLoss, plain.Epochs[0].TrainLoss
	t.Logf("with the hidden-state pair: loss %.3f → %.3f (without: %.3f → %.3f); held-out NLL %.3f", f0, f5, p0, plain.Epochs[5].TrainLoss, feat.Epochs[5].ValNLL)
	// Without the gradient into the student's hidden state (only the
	// projection learning) the term stays near 0.3; with it, under 0.02.
	if !(f0 > p0+0.1) || !(f5-plain.Epochs[5].TrainLoss < 0.1) || feat.Epochs[5].ValNLL > 1.1 {
		t.Errorf("feature pair: loss %.3f → %.3f against %.3f without; held-out NLL %.3f", f0, f5, p0, feat.Epochs[5].ValNLL)
	}
	for _, bad := range []FeaturePair{{Teacher: "hidden_states.9", Layer: 1}, {Teacher: "hidden_states.1", Layer: 3}} {
		o := base
		o.Features = []FeaturePair{bad}
		if _, err := TrainLM(context.Background(), cfg, data, &o, nil); err == nil {
			t.Errorf("feature pair %+v accepted", bad)
		}
	}
	// A per-sample cache and one without token ids are refused, naming the fix.
	c := writeSynth(t, t.TempDir(), synth{Rows: 8, Classes: 3, Inputs: 2})
	if _, err := TrainLM(context.Background(), cfg, c, &Options{Alpha: 1}, nil); err == nil {
		t.Error("a per-sample cache was accepted")
	}
}

package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchSizes are the students of the project's PyTorch peer
// (../shared/peers: 784-800-800-10 at ≈10.5k samples/s and 784-128-10 at
// ≈73k samples/s, batch 128, 2 threads).
var benchSizes = []struct {
	name   string
	hidden []int
	cfg    Config // activation, LayerNorm, dropout
}{
	{"784-128-10", []int{128}, Config{}},
	{"784-800-800-10", []int{800, 800}, Config{}},
	{"784-800-800-10-gelu-layernorm-dropout", []int{800, 800}, Config{Activation: GELU, LayerNorm: true, Dropout: 0.1}},
}

// BenchmarkStep measures one training step (forward, KD loss, backward,
// AdamW) on a batch already in memory.
func BenchmarkStep(b *testing.B) {
	for _, threads := range []int{1, 2} {
		for _, sz := range benchSizes {
			b.Run(fmt.Sprintf("%s/threads=%d", sz.name, threads), func(b *testing.B) {
				defer SetThreads(Threads())
				const B = 128
				t := &trainer{o: Options{BatchSize: B, Alpha: 0.9, Temperature: 4, Threads: threads}}
				t.o, _ = t.o.resolve()
				SetThreads(threads)
				t.kd = KD{Temperature: 4, Alpha: 0.9}
				var err error
				cfg := sz.cfg
				cfg.Inputs, cfg.Hidden, cfg.Classes = 784, sz.hidden, 10
				if t.s, err = NewStudent(cfg, 1); err != nil {
					b.Fatal(err)
				}
				t.headPs = NewParams()
				t.opt = NewAdamW(0, t.s.Params, t.headPs)
				t.alloc()
				rng := rand.New(rand.NewPCG(1, 1))
				bt := &batch{n: B, rows: make([]int64, B), x: randMat(rng, B, 784, 1).Data,
					t: Targets{Labels: make([]int64, B), Logits: randMat(rng, B, 10, 3).Data}}
				for i := range bt.t.Labels {
					bt.t.Labels[i] = int64(i % 10)
				}
				t.s.SetTraining(true, rng)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := t.step(bt, 1e-3); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(B*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkTrain measures whole epochs of Train on a 20k-row synthetic
// cache with 784 inputs (data loading included, evaluation excluded).
func BenchmarkTrain(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "cache")
	data := writeSynth(b, dir, synth{Rows: 20000, Inputs: 784, Classes: 10, RowsPerBatch: 4096, RowsPerPart: 10000, Seed: 1})
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			var secs float64
			var rows int64
			o := Options{Epochs: 1, BatchSize: 128, Alpha: 0.9, Temperature: 4, Threads: 2,
				OnEpoch: func(e Epoch) error { secs += e.Seconds; rows += int64(e.SamplesPerSec * e.Seconds); return nil }}
			for b.Loop() {
				cfg := sz.cfg
				cfg.Hidden = sz.hidden
				if _, err := Train(context.Background(), cfg, data, &o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)/secs, "samples/s")
		})
	}
}

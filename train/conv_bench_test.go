package train

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// cnnStep is one training step of a CNN student on a fixed batch, as
// Train runs it: Forward in training mode, the KD loss (α 0.9, T 4) and
// its gradient, Backward, AdamW.
type cnnStep struct {
	net    *CNN
	ps     *Params
	opt    *AdamWOptimizer
	kd     KD
	x, y   Mat
	dlogit Mat
	t      Targets
}

// newCNNStep builds arch for MNIST-shaped samples [1, 28, 28] and a batch
// of n random images with random teacher logits (seeded).
func newCNNStep(tb testing.TB, arch string, n int, seed uint64) *cnnStep {
	tb.Helper()
	net, err := NewCNN(arch, 1, 28, 28, 10)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &cnnStep{net: net, ps: NewParams(net.Params()...), kd: KD{Temperature: 4, Alpha: 0.9}}
	net.Init(rng)
	net.SetTraining(true, rng)
	s.opt = NewAdamW(0, s.ps)
	s.x = randMat(rng, n, net.InSize(), 1)
	for i, v := range s.x.Data { // pixels in [0, 1] as extract --scale 1/255 gives them
		s.x.Data[i] = min(max(v*0.3+0.3, 0), 1)
	}
	s.y = Mat{Rows: n, Cols: 10, Data: make([]float32, n*10)}
	s.dlogit = Mat{Rows: n, Cols: 10, Data: make([]float32, n*10)}
	s.t = Targets{Labels: make([]int64, n), Logits: randMat(rng, n, 10, 3).Data}
	for i := range s.t.Labels {
		s.t.Labels[i] = int64(i % 10)
	}
	return s
}

// run does one step and returns its loss.
func (s *cnnStep) run(tb testing.TB) float64 {
	s.net.Forward(s.y, s.x)
	loss, err := s.kd.Loss(s.dlogit, s.y, &s.t, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s.net.Backward(Mat{}, s.dlogit)
	s.opt.Step(1e-3)
	return loss
}

// newCNNTrainer returns Train's step for arch (a Student of Type "cnn" on
// [1, 28, 28] inputs, KD α 0.9 T 4, AdamW) and a batch of n random
// images with random teacher logits.
func newCNNTrainer(tb testing.TB, arch string, n int, seed uint64) (*trainer, *batch) {
	tb.Helper()
	t := &trainer{o: Options{BatchSize: n, Alpha: 0.9, Temperature: 4, Threads: Threads()}}
	t.o, _ = t.o.resolve()
	t.kd = KD{Temperature: 4, Alpha: 0.9}
	var err error
	if t.s, err = NewStudent(Config{Type: "cnn", Arch: arch, Inputs: 784, InputShape: []int{1, 28, 28}, Classes: 10}, seed); err != nil {
		tb.Fatal(err)
	}
	t.headPs = NewParams()
	t.opt = NewAdamW(0, t.s.Params, t.headPs)
	t.alloc()
	rng := rand.New(rand.NewPCG(seed, 2))
	bt := &batch{n: n, rows: make([]int64, n), x: randMat(rng, n, 784, 1).Data,
		t: Targets{Labels: make([]int64, n), Logits: randMat(rng, n, 10, 3).Data}}
	for i, v := range bt.x {
		bt.x[i] = min(max(v*0.3+0.3, 0), 1)
	}
	for i := range bt.t.Labels {
		bt.t.Labels[i] = int64(i % 10)
	}
	t.s.SetTraining(true, rng)
	return t, bt
}

// BenchmarkCNNStep measures one training step (forward, KD loss, backward,
// AdamW) of each of the PyTorch peer's CNN presets at batch 128 on
// MNIST-shaped input, in samples/s, and in samples per CPU-second of the
// process (which the other jobs of a shared machine inflate less; with 2
// threads it counts both). "student" is Train's step (trainer.step: the
// Student runs the layers one by one); "sequential" runs the same network
// through CNN's Sequential, which fuses each ReLU/ReLU6 into the
// BatchNorm2d or Conv2d before it. The peer (../shared/peers,
// torch_kd_train.py --arch cnn:PRESET, 2 threads) trains tiny at ≈6.4k
// samples/s, dws at 1.4–2k and lenet5 at ≈11k on this machine when it is
// quiet (its README).
func BenchmarkCNNStep(b *testing.B) {
	for _, arch := range []string{"tiny", "dws", "lenet5"} {
		for _, path := range []string{"student", "sequential"} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", arch, path, threads), func(b *testing.B) {
					defer SetThreads(Threads())
					SetThreads(threads)
					const n = 128
					step := func() {}
					if path == "student" {
						t, bt := newCNNTrainer(b, arch, n, 1)
						step = func() {
							if _, err := t.step(bt, 1e-3); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						s := newCNNStep(b, arch, n, 1)
						step = func() { s.run(b) }
					}
					step()
					b.ReportAllocs()
					cpu := cpuSeconds()
					for b.Loop() {
						step()
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
					if cpu := cpuSeconds() - cpu; cpu > 0 {
						b.ReportMetric(float64(n*b.N)/cpu, "samples/cpu-s")
					}
				})
			}
		}
	}
}

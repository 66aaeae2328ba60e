package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// TestOptimizers runs a few steps of each optimizer on random gradients
// and compares with a float64 transcription of torch.optim's update.
func TestOptimizers(t *testing.T) {
	const n, steps = 50000, 5 // n > the parallel grain, so both threads work
	defer SetThreads(Threads())
	SetThreads(2)
	for _, name := range []string{"adamw", "sgd", "sgd-momentum"} {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, 8))
			p := &Param{Name: "w", Shape: []int{n}}
			ps := NewParams(p)
			w := make([]float64, n)
			for i := range w {
				ps.Data[i] = float32(rng.NormFloat64())
				w[i] = float64(ps.Data[i])
			}
			var opt Optimizer
			const lr, wd, mom = 0.01, 0.1, 0.9
			switch name {
			case "adamw":
				opt = NewAdamW(wd, ps)
			case "sgd":
				opt = NewSGD(0, wd, ps)
			default:
				opt = NewSGD(mom, wd, ps)
			}
			m, v := make([]float64, n), make([]float64, n)
			for step := 1; step <= steps; step++ {
				for i := range ps.Grad {
					ps.Grad[i] = float32(rng.NormFloat64())
				}
				opt.Step(lr)
				for i := range w {
					g := float64(ps.Grad[i])
					switch name {
					case "adamw":
						w[i] *= 1 - lr*wd
						m[i] = 0.9*m[i] + 0.1*g
						v[i] = 0.999*v[i] + 0.001*g*g
						bc1, bc2 := 1-math.Pow(0.9, float64(step)), 1-math.Pow(0.999, float64(step))
						w[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + 1e-8)
					case "sgd":
						w[i] -= lr * (g + wd*w[i])
					default:
						m[i] = mom*m[i] + g + wd*w[i]
						w[i] -= lr * m[i]
					}
				}
			}
			for i := range w {
				if !scalar.EqualWithinAbsOrRel(float64(ps.Data[i]), w[i], 1e-5, 1e-5) {
					t.Fatalf("w[%d] = %v, reference %v", i, ps.Data[i], w[i])
				}
			}
			if opt.Steps() != steps {
				t.Errorf("Steps() = %d", opt.Steps())
			}
		})
	}
}

func TestScheduleLR(t *testing.T) {
	for _, c := range []struct {
		sched               string
		step, total, warmup int64
		want                float64
	}{
		{ScheduleConstant, 0, 100, 0, 1},
		{ScheduleConstant, 1, 100, 4, 0.5},
		{ScheduleCosine, 0, 100, 0, 1},
		{ScheduleCosine, 50, 100, 0, 0.5},
		{ScheduleCosine, 100, 100, 0, 0},
		{ScheduleCosine, 3, 100, 4, 1},
		{ScheduleCosine, 52, 100, 4, 0.5},
	} {
		if got := ScheduleLR(c.sched, 1, c.step, c.total, c.warmup); !scalar.EqualWithinAbs(got, c.want, 1e-12) {
			t.Errorf("%s step %d/%d warmup %d: %v, want %v", c.sched, c.step, c.total, c.warmup, got, c.want)
		}
	}
}

// TestAdamBeta2Option: Options.AdamBeta2 sets AdamW's β₂ (0: 0.999), which
// changes the second step's update, and resolve refuses 1.
func TestAdamBeta2Option(t *testing.T) {
	step := func(beta2 float64) []float32 {
		p := &Param{Name: "w", Shape: []int{3}}
		ps := NewParams(p)
		copy(p.Data, []float32{1, -2, 3})
		opt, err := newOptimizer(&Options{Optimizer: AdamW, AdamBeta2: beta2}, ps)
		if err != nil {
			t.Fatal(err)
		}
		if a := opt.(*AdamWOptimizer); beta2 != 0 && a.Beta2 != beta2 || beta2 == 0 && a.Beta2 != 0.999 {
			t.Fatalf("AdamBeta2 %v: β₂ %v", beta2, a.Beta2)
		}
		for _, g := range [][]float32{{1, 1, 1}, {0.1, -3, 2}} {
			copy(p.Grad, g)
			opt.Step(0.1)
		}
		return append([]float32(nil), p.Data...)
	}
	if a, b := step(0), step(0.95); slices.Equal(a, b) {
		t.Fatalf("β₂ 0.95 gave the default's weights %v", a)
	}
	if _, err := (Options{AdamBeta2: 1}).resolve(); err == nil {
		t.Fatal("AdamBeta2 1 accepted")
	}
}

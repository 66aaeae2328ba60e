package train

import (
	"math"
	"math/rand/v2"
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

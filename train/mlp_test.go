package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// TestStudentGradient checks the gradient of a whole training objective —
// student (LayerNorm, GELU or Tanh, dropout), KD loss and a feature
// projection into the first hidden block — with respect to every student
// parameter against finite differences. Smooth activations avoid ReLU's
// kinks; the dropout mask is redrawn identically for every evaluation.
func TestStudentGradient(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"gelu-layernorm-dropout", Config{Inputs: 4, Hidden: []int{5, 3}, Classes: 3, Activation: GELU, LayerNorm: true, Dropout: 0.2}},
		{"tanh", Config{Inputs: 4, Hidden: []int{6}, Classes: 3, Activation: Tanh}},
		{"no-hidden", Config{Inputs: 4, Classes: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4
			s, err := NewStudent(tc.cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Standardize.Set([]float32{0.5, -1, 0, 2}, []float32{2, 1, 0.5, 3}); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(2, 2))
			x := randMat(rng, n, 4, 2)
			tg := Targets{Labels: []int64{0, 2, 1, 2}, Logits: randMat(rng, n, 3, 2).Data}
			kd := KD{Temperature: 2, Alpha: 0.6}
			var head *Linear
			var hid Mat
			if len(tc.cfg.Hidden) > 0 {
				head = NewLinear("feature.0", tc.cfg.Hidden[0], 2, Identity)
				NewParams(head.Params()...)
				head.Init(rng)
				hid = randMat(rng, n, 2, 1)
			}
			grad := Mat{Rows: n, Cols: 3, Data: make([]float32, n*3)}
			pred := Mat{Rows: n, Cols: 2, Data: make([]float32, n*2)}
			dpred := Mat{Rows: n, Cols: 2, Data: make([]float32, n*2)}
			// objective runs forward (and, if backward, backward) and
			// returns the loss.
			objective := func(backward bool) float64 {
				s.SetTraining(true, rand.New(rand.NewPCG(3, 3)))
				logits := s.Forward(x)
				l, err := kd.Loss(grad, logits, &tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				var taps []Mat
				if head != nil {
					head.Forward(pred, s.Hidden(1))
					l += Cosine.Loss(dpred, pred, hid, 0.5, nil)
					if backward {
						dx := Mat{Rows: n, Cols: tc.cfg.Hidden[0], Data: make([]float32, n*tc.cfg.Hidden[0])}
						head.Backward(dx, dpred)
						taps = []Mat{dx}
					}
				}
				if backward {
					s.Backward(grad, taps)
				}
				return l
			}
			objective(true)
			for _, p := range s.Params.List {
				g := append([]float32(nil), p.Grad...)
				want := fd.Gradient(nil, func(v []float64) float64 {
					old := append([]float32(nil), p.Data...)
					for i := range v {
						p.Data[i] = float32(v[i])
					}
					l := objective(false)
					copy(p.Data, old)
					return l
				}, f64(p.Data), &fd.Settings{Formula: fd.Central, Step: fdStep})
				for i := range want {
					if !scalar.EqualWithinAbsOrRel(float64(g[i]), want[i], gradAbs, gradRel) {
						t.Errorf("d/d%s[%d] = %.6g, finite differences %.6g", p.Name, i, g[i], want[i])
					}
				}
			}
		})
	}
}

func TestStudentNames(t *testing.T) {
	s, err := NewStudent(Config{Inputs: 784, Hidden: []int{800, 800}, Classes: 10, LayerNorm: true, Dropout: 0.1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range s.Tensors() {
		names = append(names, p.Name)
	}
	want := []string{"input_mean", "input_std", "fc1.weight", "fc1.bias", "ln1.weight", "ln1.bias",
		"fc2.weight", "fc2.bias", "ln2.weight", "ln2.bias", "fc3.weight", "fc3.bias"}
	if len(names) != len(want) {
		t.Fatalf("tensors %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("tensors %v, want %v", names, want)
		}
	}
	if w := s.Params.Lookup("fc1.weight"); w.Shape[0] != 800 || w.Shape[1] != 784 {
		t.Errorf("fc1.weight shape %v, want [800 784]", w.Shape)
	}
	// PyTorch's default init: |w| <= 1/√in.
	for _, v := range s.Params.Lookup("fc2.weight").Data {
		if math.Abs(float64(v)) > 1/math.Sqrt(800) {
			t.Fatalf("fc2.weight value %v outside ±1/√800", v)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Inputs: 0, Classes: 3},
		{Inputs: 3, Classes: 3, Hidden: []int{0}},
		{Inputs: 3, Classes: 3, Dropout: 1},
		{Inputs: 3, Classes: 3, Activation: "swish"},
		{Inputs: 3, Classes: 3, Type: "cnn"},
		{Inputs: 6, InputShape: []int{2, 2}, Classes: 3},
		{Inputs: 1 << 20, Hidden: []int{1 << 20}, Classes: 3},
	} {
		if _, err := NewStudent(c, 0); err == nil {
			t.Errorf("NewStudent(%+v): no error", c)
		}
	}
}

func TestTrainFlops(t *testing.T) {
	s, err := NewStudent(Config{Inputs: 784, Hidden: []int{800, 800}, Classes: 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Forward and weight gradient for all three layers, input gradient for
	// the last two: 2·(784·800 + 800·800 + 800·10)·2 + 2·(800·800 + 800·10)·1.
	want := 4*(784*800+800*800+800*10) + 2*(800*800+800*10)
	if got := s.TrainFlops(); got != float64(want) {
		t.Errorf("TrainFlops = %v, want %v", got, want)
	}
}

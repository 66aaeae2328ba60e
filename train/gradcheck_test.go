package train

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats/scalar"
)

// checkParamGradients compares every value of each parameter's Grad (from
// a Backward already run) with fourth-order central differences of f (step
// fdStep, tolerance gradAbs + gradRel·|want|), reporting up to three
// mismatches per parameter with label, and returns the largest |finite
// difference| seen.
func checkParamGradients(t *testing.T, label string, params []*Param, f func() float64) (largest float64) {
	t.Helper()
	for _, p := range params {
		grad := append([]float32(nil), p.Grad...)
		want := fd.Gradient(nil, func(v []float64) float64 {
			old := append([]float32(nil), p.Data...)
			for i := range p.Data {
				p.Data[i] = float32(v[i])
			}
			s := f()
			copy(p.Data, old)
			return s
		}, f64(p.Data), &fd.Settings{Formula: central5, Step: fdStep})
		bad := 0
		for i := range want {
			largest = math.Max(largest, math.Abs(want[i]))
			if !scalar.EqualWithinAbsOrRel(float64(grad[i]), want[i], gradAbs, gradRel) {
				if bad++; bad <= 3 {
					t.Errorf("%s: d/d%s[%d] = %.6g, finite differences %.6g", label, p.Name, i, grad[i], want[i])
				}
			}
		}
	}
	return largest
}

package train

import (
	"math"
	"testing"
)

// TestGELUTanhForward checks GELUTanh against its formula in float64
// (math.Tanh) on a grid over [−10, 10], and tanh32 against math.Tanh: the
// float32 tanh from fastmath.Exp32 is within 1.5e-7 of tanh (as its doc
// comment says; 1.1e-7 here), so y is within that times ½|x| plus
// float32's rounding of y (6e-8 relative).
func TestGELUTanhForward(t *testing.T) {
	const n = 20001
	x := Mat{Rows: 1, Cols: n, Data: make([]float32, n)}
	for i := range x.Data {
		x.Data[i] = float32(-10 + 20*float64(i)/(n-1))
	}
	y := Mat{Rows: 1, Cols: n, Data: make([]float32, n)}
	NewGELUTanh(n).Forward(y, x)
	var worstTanh, worstY float64
	for i, v := range x.Data {
		xv := float64(v)
		u := math.Sqrt(2/math.Pi) * (xv + 0.044715*xv*xv*xv)
		worstTanh = max(worstTanh, math.Abs(float64(tanh32(float32(u)))-math.Tanh(u)))
		want := 0.5 * xv * (1 + math.Tanh(u))
		if err := math.Abs(float64(y.Data[i]) - want); err > 1.5e-7*0.5*math.Abs(xv)+6e-8*math.Abs(want)+1e-45 {
			t.Errorf("gelu(%g) = %g, want %g", v, y.Data[i], want)
		}
		worstY = max(worstY, math.Abs(float64(y.Data[i])-want)/max(1, math.Abs(want)))
	}
	if worstTanh > 1.5e-7 {
		t.Errorf("tanh32 is %.3g from math.Tanh", worstTanh)
	}
	t.Logf("largest error: tanh %.3g, gelu %.3g relative", worstTanh, worstY)
}

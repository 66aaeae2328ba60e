package train

import (
	"fmt"
	"math"
)

// Activation is an elementwise nonlinearity. Linear and LayerNorm apply one
// fused with their own output pass; ActivationLayer applies one alone.
type Activation string

// Activations. The zero value "" means Identity.
const (
	Identity Activation = "identity"
	ReLU     Activation = "relu" // max(0, z), as torch.nn.ReLU; derivative 0 at z = 0
	// GELU is the erf form, torch.nn.GELU's default (approximate='none'),
	// not the tanh approximation:
	//
	//	gelu(z)  = z·Φ(z) = ½·z·(1 + erf(z/√2))
	//	gelu'(z) = Φ(z) + z·φ(z),  φ(z) = exp(−z²/2)/√(2π)
	//
	// erf is evaluated as Abramowitz & Stegun 7.1.26 (the form PyTorch's
	// vectorized CPU kernel uses), within 1.5e-7 of the exact value, below
	// float32's resolution of Φ; one exp(−z²/2) serves both Φ and φ.
	GELU Activation = "gelu"
	Tanh Activation = "tanh" // tanh(z); derivative 1 − tanh²(z)
)

// ParseActivation returns the Activation named s ("relu", "gelu", "tanh",
// "identity"), or an error listing the names.
func ParseActivation(s string) (Activation, error) {
	switch a := Activation(s); a {
	case ReLU, GELU, Tanh, Identity:
		return a, nil
	case "":
		return Identity, nil
	}
	return "", fmt.Errorf("train: unknown activation %q, want relu, gelu, tanh or identity", s)
}

func (a Activation) norm() Activation {
	if a == "" {
		return Identity
	}
	return a
}

// needsInput reports whether the derivative needs the pre-activation z
// (otherwise it is computed from the output y).
func (a Activation) needsInput() bool { return a.norm() == GELU }

const (
	invSqrt2   = 0.70710678118654752440
	invSqrt2Pi = 0.39894228040143267794
)

// normCDF returns the standard normal Φ(x) = ½·(1 + erf(x/√2)) and
// density φ(x), with erf from Abramowitz & Stegun 7.1.26 (absolute error
// <= 1.5e-7):
//
//	erf(u) ≈ 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^{−u²},  t = 1/(1 + p·u),  u >= 0
func normCDF(x float64) (cdf, pdf float64) {
	const (
		p  = 0.3275911
		a1 = 0.254829592
		a2 = -0.284496736
		a3 = 1.421413741
		a4 = -1.453152027
		a5 = 1.061405429
	)
	u := math.Abs(x) * invSqrt2
	e := math.Exp(-u * u) // = exp(−x²/2)
	t := 1 / (1 + p*u)
	erf := 1 - ((((a5*t+a4)*t+a3)*t+a2)*t+a1)*t*e
	if x < 0 {
		erf = -erf
	}
	return 0.5 * (1 + erf), invSqrt2Pi * e
}

// apply writes y = a(z) elementwise; y and z may be the same slice.
func (a Activation) apply(y, z []float32) {
	switch a.norm() {
	case Identity:
		copy(y, z)
	case ReLU: // max(v, 0) in AVX2: (v − 0)·1 + 0 turns −0 into +0 as max does, and NaN stays NaN
		affine(y, z[:len(y)], 0, 1, 0, 0, posInf)
	case GELU:
		for i, v := range z[:len(y)] {
			x := float64(v)
			cdf, _ := normCDF(x)
			y[i] = float32(x * cdf)
		}
	case Tanh:
		for i, v := range z[:len(y)] {
			y[i] = float32(math.Tanh(float64(v)))
		}
	default:
		panic("train: unknown activation " + string(a))
	}
}

// backward overwrites d with d·a'(z) elementwise, from the output y (ReLU,
// Tanh) or the input z (GELU; y may be nil).
func (a Activation) backward(d, y, z []float32) {
	switch a.norm() {
	case Identity:
	case ReLU: // d where y > 0, in AVX2 (a branch per value mispredicts on half of them)
		clampMask(d, d, y[:len(d)], 0, posInf)
	case GELU:
		z = z[:len(d)]
		for i, v := range z {
			x := float64(v)
			cdf, pdf := normCDF(x)
			d[i] = float32(float64(d[i]) * (cdf + x*pdf))
		}
	case Tanh:
		y = y[:len(d)]
		for i, v := range y {
			d[i] *= 1 - v*v
		}
	default:
		panic("train: unknown activation " + string(a))
	}
}

// ActivationLayer applies an Activation on its own: y = a(x), dx = dy·a'(x).
type ActivationLayer struct {
	Fn   Activation
	Size int
	x, y Mat
}

// NewActivationLayer returns an ActivationLayer of size values per sample.
func NewActivationLayer(fn Activation, size int) *ActivationLayer {
	return &ActivationLayer{Fn: fn.norm(), Size: size}
}

func (l *ActivationLayer) InSize() int      { return l.Size }
func (l *ActivationLayer) OutSize() int     { return l.Size }
func (l *ActivationLayer) Params() []*Param { return nil }

// Forward writes dst = a(x); dst may be x.
func (l *ActivationLayer) Forward(dst, x Mat) {
	checkShapes("ActivationLayer", dst, x, l.Size, l.Size)
	n := x.Rows * l.Size
	if n > 0 && l.Fn.needsInput() && &dst.Data[0] == &x.Data[0] {
		panic("train: ActivationLayer: GELU cannot run in place")
	}
	l.Fn.apply(dst.Data[:n], x.Data[:n])
	l.x, l.y = x, dst
}

// Backward writes dx = dy·a'(x); dx may be dy.
func (l *ActivationLayer) Backward(dx, dy Mat) {
	n := dy.Rows * l.Size
	if l.Fn == ReLU && dx.Data != nil { // one pass, straight into dx
		clampMask(dx.Data[:n], dy.Data[:n], l.y.Data[:n], 0, posInf)
		return
	}
	l.Fn.backward(dy.Data[:n], l.y.Data[:n], l.x.Data[:n])
	if dx.Data != nil {
		copy(dx.Data[:n], dy.Data[:n])
	}
}

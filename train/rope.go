package train

import (
	"fmt"
	"math"
)

// RoPETheta is the rotary base θ of Llama and of stories260K.
const RoPETheta = 10000

// RoPE rotates query or key vectors by their position (Su et al. 2021,
// "RoFormer: Enhanced Transformer with Rotary Position Embedding"), in the
// Hugging Face Llama convention (`rotate_half`): within each head of
// HeadDim = 2h values, dimension i pairs with i + h. Rows are tokens,
// sequence after sequence of T positions (the position of row r is
// r mod T); columns are Heads × HeadDim. With ω_i = θ^(−2i/HeadDim) and
// the angle a = pos·ω_i, for i < h:
//
//	y_i   = x_i·cos a − x_{i+h}·sin a
//	y_i+h = x_{i+h}·cos a + x_i·sin a
//
// A rotation is orthogonal, so Backward rotates dy by −a:
//
//	dx_i   =  dy_i·cos a + dy_{i+h}·sin a
//	dx_i+h = −dy_i·sin a + dy_{i+h}·cos a
//
// The angles are computed in float64 and rounded once; Hugging Face takes
// them in float32 (inv_freq, then position × inv_freq), which differs by
// at most a few float32 ulps of the angle.
type RoPE struct {
	T, Heads, HeadDim int
	Theta             float64

	cos, sin []float32 // [T][HeadDim/2]

	rot   ropeCall         // the arguments of rotateBlock's call, for rows
	rowFn func(lo, hi int) // r.rows, bound once so a call allocates nothing
}

// ropeCall holds a rotateBlock call's arguments.
type ropeCall struct {
	dst, x        []float32
	stride, heads int
	sign          float32
}

// NewRoPE returns the rotary embedding of T positions for heads of
// headDim (even) values with base theta.
func NewRoPE(T, heads, headDim int, theta float64) *RoPE {
	if T < 1 || heads < 1 || headDim < 2 || headDim%2 != 0 || !(theta > 1) {
		panic(fmt.Sprintf("train: RoPE: T %d, %d heads of %d, θ %v: want T, heads ≥ 1, an even head size and θ > 1", T, heads, headDim, theta))
	}
	h := headDim / 2
	r := &RoPE{T: T, Heads: heads, HeadDim: headDim, Theta: theta, cos: make([]float32, T*h), sin: make([]float32, T*h)}
	r.rowFn = r.rows
	for p := range T {
		for i := range h {
			a := float64(p) * math.Pow(theta, -2*float64(i)/float64(headDim))
			r.cos[p*h+i], r.sin[p*h+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return r
}

func (r *RoPE) InSize() int      { return r.Heads * r.HeadDim }
func (r *RoPE) OutSize() int     { return r.Heads * r.HeadDim }
func (r *RoPE) Params() []*Param { return nil }

// Forward computes dst = RoPE(x); dst may be x.
func (r *RoPE) Forward(dst, x Mat) {
	checkShapes("RoPE", dst, x, r.InSize(), r.OutSize())
	if x.Rows%r.T != 0 {
		panic(fmt.Sprintf("train: RoPE: %d rows are not whole sequences of %d", x.Rows, r.T))
	}
	r.rotate(dst, x, 1)
}

// Backward computes dx = RoPE⁻¹(dy); dx may be dy. With dx.Data nil it
// does nothing (RoPE has no parameters).
func (r *RoPE) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	checkShapes("RoPE", dx, dy, r.OutSize(), r.InSize())
	r.rotate(dx, dy, -1)
}

// rotate writes x rotated by sign·a to dst.
func (r *RoPE) rotate(dst, x Mat, sign float32) {
	w := r.InSize()
	r.rotateBlock(dst.Data, x.Data, x.Rows, w, r.Heads, sign)
}

// rotateBlock rotates, in rows of stride values, the first heads·HeadDim
// values of each row of x (the row's position is its index mod T) by
// sign·a into dst; dst may be x. Attention uses it on the q and k blocks
// of its fused rows.
func (r *RoPE) rotateBlock(dst, x []float32, rows, stride, heads int, sign float32) {
	r.rot = ropeCall{dst: dst, x: x, stride: stride, heads: heads, sign: sign}
	par().run(rows, max(1, 4096/(heads*r.HeadDim)), r.rowFn)
	r.rot = ropeCall{}
}

// rows rotates rows [lo, hi) of rotateBlock's call.
func (r *RoPE) rows(lo, hi int) {
	c := &r.rot
	for row := lo; row < hi; row++ {
		p := row % r.T
		r.rotateRow(c.dst, c.x, row*c.stride, c.heads, p, c.sign)
	}
}

// rotateRow rotates heads heads of HeadDim values from x[o:] into dst[o:]
// (dst may be x) by sign times the angles of position p.
func (r *RoPE) rotateRow(dst, x []float32, o, heads, p int, sign float32) {
	h := r.HeadDim / 2
	cs, sn := r.cos[p*h:(p+1)*h], r.sin[p*h:(p+1)*h]
	for hd := range heads {
		o := o + hd*r.HeadDim
		a, b := x[o:o+h], x[o+h:o+2*h]
		ya, yb := dst[o:o+h], dst[o+h:o+2*h]
		for i := range h {
			cv, sv := cs[i], sign*sn[i]
			u, v := a[i], b[i]
			ya[i], yb[i] = u*cv-v*sv, v*cv+u*sv
		}
	}
}

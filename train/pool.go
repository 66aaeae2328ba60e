package train

import (
	"fmt"
	"math"
)

// Pool2d is max or average pooling over samples of shape [C, H, W], as
// torch.nn.MaxPool2d / AvgPool2d with a K×K window, stride S and no
// padding (Ho = ⌊(H − K)/S⌋ + 1):
//
//	max: y[c, i, j] = max_{u,v < K} x[c, S·i + u, S·j + v]
//	avg: y[c, i, j] = (1/K²) Σ_{u,v < K} x[c, S·i + u, S·j + v]
//
// Backward: max sends dy[c, i, j] to the input that was the maximum (the
// first one on ties, as torch; −0 counts below +0 and NaN above all), avg spreads dy/K² over the window; windows
// that overlap (S < K) add up.
//
// Samples are split over the threads (SetThreads); every output is
// computed by one thread in the same order whatever their number.
type Pool2d struct {
	Max         bool
	C, H, W     int
	K, Stride   int
	Ho, Wo      int
	arg         []int32 // max: the input index of each output of the last Forward
	rows        int
	lastX       Mat // the input of the last Forward
	global      bool
	inSz, outSz int
	hw          int
	kk          float32 // inputs per window

	y, dx, dy Mat // the call in progress
	fwd, bwd  func(lo, hi int)
}

// NewPool2d returns K×K pooling with stride S (max if max, else average).
func NewPool2d(max bool, c, h, w, k, stride int) (*Pool2d, error) {
	if c < 1 || h < 1 || w < 1 || k < 1 || stride < 1 || k > h || k > w {
		return nil, fmt.Errorf("train: pool: a %dx%d window (stride %d) does not fit %dx%dx%d samples", k, k, stride, c, h, w)
	}
	p := &Pool2d{Max: max, C: c, H: h, W: w, K: k, Stride: stride, Ho: (h-k)/stride + 1, Wo: (w-k)/stride + 1}
	p.init()
	return p, nil
}

// NewGlobalAvgPool returns the average over each channel's H×W map
// ([C, H, W] → [C], torch.nn.AdaptiveAvgPool2d(1) then flatten).
func NewGlobalAvgPool(c, h, w int) *Pool2d {
	p := &Pool2d{C: c, H: h, W: w, K: 0, Stride: 1, Ho: 1, Wo: 1, global: true}
	p.init()
	return p
}

func (p *Pool2d) init() {
	p.hw = p.H * p.W
	p.inSz, p.outSz = p.C*p.hw, p.C*p.Ho*p.Wo
	if p.global {
		p.kk = float32(p.hw)
	} else {
		p.kk = float32(p.K * p.K)
	}
	p.fwd, p.bwd = p.forwardRows, p.backwardRows
}

func (p *Pool2d) InSize() int      { return p.inSz }
func (p *Pool2d) OutSize() int     { return p.outSz }
func (p *Pool2d) Params() []*Param { return nil }

// poolGrain is the input values per thread below which pooling is not
// split.
const poolGrain = 1 << 14

// Forward pools x into dst. It panics on a shape mismatch.
func (p *Pool2d) Forward(dst, x Mat) {
	checkShapes("Pool2d", dst, x, p.inSz, p.outSz)
	p.rows, p.lastX, p.y = x.Rows, x, dst
	if p.Max {
		p.arg = growInt32(p.arg, x.Rows*p.outSz)
	}
	par().run(x.Rows, max(1, poolGrain/p.inSz), p.fwd)
	p.y = Mat{}
}

// forwardRows pools samples [lo, hi).
func (p *Pool2d) forwardRows(lo, hi int) {
	for r := lo; r < hi; r++ {
		xs, ys := p.lastX.Row(r), p.y.Row(r)
		switch {
		case p.global:
			for c := range p.C {
				ys[c] = sum(xs[c*p.hw:(c+1)*p.hw]) / p.kk
			}
		case p.Max && p.K == 2 && p.Stride == 2:
			p.max2(ys, p.arg[r*p.outSz:(r+1)*p.outSz], xs)
		case p.Max:
			p.maxK(ys, p.arg[r*p.outSz:(r+1)*p.outSz], xs)
		default:
			p.avgK(ys, xs)
		}
	}
}

// max2 is 2×2 max pooling with stride 2 of one sample, a channel map at
// a time (maxPool2Map: AVX2, masked for the last outputs of a row).
func (p *Pool2d) max2(ys []float32, arg []int32, xs []float32) {
	n := p.Ho * p.Wo
	for c := range p.C {
		maxPool2Map(ys[c*n:(c+1)*n], arg[c*n:(c+1)*n], xs[c*p.hw:(c+1)*p.hw], p.W, p.Ho, p.Wo, c*p.hw)
	}
}

// maxPool2MapGo is 2×2 max pooling with stride 2 of the map x (rows of w
// values) into y [ho, wo], idx[i·wo + j] the index in x of each maximum
// plus base. It compares the values' sortable integer keys (orderKey) so
// that the selects compile to conditional moves, not branches that
// random data mispredicts.
func maxPool2MapGo(y []float32, idx []int32, x []float32, w, ho, wo, base int) {
	for i := range ho {
		row := 2 * i * w
		r0, r1 := x[row:row+2*wo], x[row+w:row+w+2*wo]
		yo, ao := y[i*wo:(i+1)*wo], idx[i*wo:(i+1)*wo]
		for j := range yo {
			q := 2 * j
			k0, k1, k2, k3 := orderKey(r0[q]), orderKey(r0[q+1]), orderKey(r1[q]), orderKey(r1[q+1])
			// The first maximum of each pair, then of both pairs, as 0/1
			// flags (SETcc) and arithmetic, not branches.
			var i01, i23, sel int32
			if k1 > k0 {
				i01 = 1
			}
			if k3 > k2 {
				i23 = 1
			}
			if max(k2, k3) > max(k0, k1) {
				sel = 1
			}
			i23 += int32(w)
			bi := int32(row+q) + i01 + sel*(i23-i01)
			ao[j], yo[j] = bi+int32(base), x[bi]
		}
	}
}

// orderKey maps a float32 to an int32 with the same order (−0 below +0,
// NaN with the sign bit clear above +Inf, so it wins the max and
// propagates): the bits, with the magnitude bits of negatives flipped.
func orderKey(v float32) int32 {
	b := int32(math.Float32bits(v))
	return b ^ (b >> 31 & 0x7fffffff)
}

// maxK is K×K max pooling with stride S of one sample: the first maximum
// of each window in row-major order.
func (p *Pool2d) maxK(ys []float32, arg []int32, xs []float32) {
	for c := range p.C {
		for i := range p.Ho {
			for j := range p.Wo {
				base := c*p.hw + i*p.Stride*p.W + j*p.Stride
				best, bi := xs[base], base
				for u := range p.K {
					row := base + u*p.W
					for q := row; q < row+p.K; q++ {
						if xs[q] > best {
							best, bi = xs[q], q
						}
					}
				}
				o := (c*p.Ho+i)*p.Wo + j
				ys[o], arg[o] = best, int32(bi)
			}
		}
	}
}

// avgK is K×K average pooling with stride S of one sample.
func (p *Pool2d) avgK(ys, xs []float32) {
	for c := range p.C {
		for i := range p.Ho {
			for j := range p.Wo {
				base := c*p.hw + i*p.Stride*p.W + j*p.Stride
				var s float32
				for u := range p.K {
					for _, v := range xs[base+u*p.W : base+u*p.W+p.K] {
						s += v
					}
				}
				ys[(c*p.Ho+i)*p.Wo+j] = s / p.kk
			}
		}
	}
}

// Backward computes dx from dy of the last Forward (no parameters).
func (p *Pool2d) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	checkShapes("Pool2d", dy, dx, p.inSz, p.outSz)
	p.dx, p.dy = dx, dy
	par().run(p.rows, max(1, poolGrain/p.inSz), p.bwd)
	p.dx, p.dy = Mat{}, Mat{}
}

// backwardRows computes dx of samples [lo, hi).
func (p *Pool2d) backwardRows(lo, hi int) {
	for r := lo; r < hi; r++ {
		ds, gs := p.dx.Row(r), p.dy.Row(r)
		if p.global {
			for c := range p.C {
				g := gs[c] / p.kk
				seg := ds[c*p.hw : (c+1)*p.hw]
				for q := range seg {
					seg[q] = g
				}
			}
			continue
		}
		clear(ds)
		if p.Max {
			for o, a := range p.arg[r*p.outSz : (r+1)*p.outSz] {
				ds[a] += gs[o]
			}
			continue
		}
		for c := range p.C {
			for i := range p.Ho {
				for j := range p.Wo {
					g := gs[(c*p.Ho+i)*p.Wo+j] / p.kk
					base := c*p.hw + i*p.Stride*p.W + j*p.Stride
					for u := range p.K {
						seg := ds[base+u*p.W : base+u*p.W+p.K]
						for q := range seg {
							seg[q] += g
						}
					}
				}
			}
		}
	}
}

// growInt32 is grow for int32 buffers.
func growInt32(buf []int32, n int) []int32 {
	if cap(buf) < n {
		return make([]int32, n)
	}
	return buf[:n]
}

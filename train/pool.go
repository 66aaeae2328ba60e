package train

import "fmt"

// Pool2d is max or average pooling over samples of shape [C, H, W], as
// torch.nn.MaxPool2d / AvgPool2d with a K×K window, stride S and no
// padding (Ho = ⌊(H − K)/S⌋ + 1):
//
//	max: y[c, i, j] = max_{u,v < K} x[c, S·i + u, S·j + v]
//	avg: y[c, i, j] = (1/K²) Σ_{u,v < K} x[c, S·i + u, S·j + v]
//
// Backward: max sends dy[c, i, j] to the input that was the maximum (the
// first one on ties, as torch), avg spreads dy/K² over the window; windows
// that overlap (S < K) add up.
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
}

func (p *Pool2d) InSize() int      { return p.inSz }
func (p *Pool2d) OutSize() int     { return p.outSz }
func (p *Pool2d) Params() []*Param { return nil }

// window calls f(input index) for every input of output (c, i, j).
func (p *Pool2d) window(c, i, j int, f func(int)) {
	if p.global {
		for q := range p.hw {
			f(c*p.hw + q)
		}
		return
	}
	for u := range p.K {
		base := c*p.hw + (i*p.Stride+u)*p.W + j*p.Stride
		for v := range p.K {
			f(base + v)
		}
	}
}

// Forward pools x into dst. It panics on a shape mismatch.
func (p *Pool2d) Forward(dst, x Mat) {
	checkShapes("Pool2d", dst, x, p.inSz, p.outSz)
	p.rows, p.lastX = x.Rows, x
	if p.Max {
		p.arg = growInt32(p.arg, x.Rows*p.outSz)
	}
	for r := range x.Rows {
		xs, ys := x.Row(r), dst.Row(r)
		for c := range p.C {
			for i := range p.Ho {
				for j := range p.Wo {
					o := (c*p.Ho+i)*p.Wo + j
					if p.Max {
						best := -1
						p.window(c, i, j, func(q int) {
							if best < 0 || xs[q] > xs[best] {
								best = q
							}
						})
						ys[o] = xs[best]
						p.arg[r*p.outSz+o] = int32(best)
						continue
					}
					var s float32
					p.window(c, i, j, func(q int) { s += xs[q] })
					ys[o] = s / p.kk
				}
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
	for r := range p.rows {
		ds, gs := dx.Row(r), dy.Row(r)
		clear(ds)
		for c := range p.C {
			for i := range p.Ho {
				for j := range p.Wo {
					o := (c*p.Ho+i)*p.Wo + j
					if p.Max {
						ds[p.arg[r*p.outSz+o]] += gs[o]
						continue
					}
					g := gs[o] / p.kk
					p.window(c, i, j, func(q int) { ds[q] += g })
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

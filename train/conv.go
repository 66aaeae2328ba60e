package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// Conv2d is a 2-D convolution over samples of shape [C, H, W] (flattened
// row-major in a Mat row), as torch.nn.Conv2d with stride, zero padding,
// dilation and groups (groups = C with F = C·m is a depthwise
// convolution):
//
//	Ho = ⌊(H + 2P − D(Kh−1) − 1)/S⌋ + 1, likewise Wo
//	y[f, i, j] = b[f] + Σ_{c∈g(f), u, v} W[f, c−c₀(g), u, v] · x[c, S·i − P + D·u, S·j − P + D·v]
//
// with x zero outside the image; W is [F, C/G, Kh, Kw], b is [F]. Per
// sample and group g the sum is one matrix product through im2col
// (Chellapilla et al. 2006; Caffe's im2col): col = im2col(x_g), a
// [C/G·Kh·Kw, Ho·Wo] matrix, and y_g = W_g · col + b, W_g [F/G, C/G·Kh·Kw].
// Backward, with g = dy_g [F/G, Ho·Wo]:
//
//	dW_g = Σ_samples g · colᵀ
//	db   = Σ_samples, positions dy
//	dx_g = col2im(W_gᵀ · g)   (col2im adds each column entry back at its pixel)
//
// Both products go through sgemm, the GEMM seam. The im2col buffer is
// recomputed in Backward instead of kept per sample, so memory is one
// sample's col whatever the batch; buffers are grown once and reused.
type Conv2d struct {
	C, H, W       int // input channels and size
	F, Kh, Kw     int // output channels, kernel size
	Stride, Pad   int
	Dilation      int
	Groups        int
	Ho, Wo        int
	Weight, Bias  *Param // "NAME.weight" [F, C/G, Kh, Kw], "NAME.bias" [F] (nil: no bias)
	x             Mat
	col, dcol     []float32
	cg, fg, kk, p int // C/G, F/G, C/G·Kh·Kw, Ho·Wo
}

// NewConv2d returns a convolution of C×H×W samples to F channels with a
// Kh×Kw kernel, named name (parameters name+".weight", name+".bias"). It
// returns an error for sizes that make no output or groups that do not
// divide C and F.
func NewConv2d(name string, c, h, w, f, kh, kw, stride, pad, dilation, groups int) (*Conv2d, error) {
	if c < 1 || h < 1 || w < 1 || f < 1 || kh < 1 || kw < 1 || stride < 1 || pad < 0 || dilation < 1 || groups < 1 {
		return nil, fmt.Errorf("train: conv %s: bad sizes C %d H %d W %d F %d kernel %dx%d stride %d pad %d dilation %d groups %d", name, c, h, w, f, kh, kw, stride, pad, dilation, groups)
	}
	if c%groups != 0 || f%groups != 0 {
		return nil, fmt.Errorf("train: conv %s: groups %d must divide the %d input and %d output channels", name, groups, c, f)
	}
	ho := (h+2*pad-dilation*(kh-1)-1)/stride + 1
	wo := (w+2*pad-dilation*(kw-1)-1)/stride + 1
	if ho < 1 || wo < 1 {
		return nil, fmt.Errorf("train: conv %s: a %dx%d kernel (dilation %d, padding %d) does not fit a %dx%d input", name, kh, kw, dilation, pad, h, w)
	}
	l := &Conv2d{C: c, H: h, W: w, F: f, Kh: kh, Kw: kw, Stride: stride, Pad: pad, Dilation: dilation, Groups: groups, Ho: ho, Wo: wo,
		Weight: &Param{Name: name + ".weight", Shape: []int{f, c / groups, kh, kw}},
		Bias:   &Param{Name: name + ".bias", Shape: []int{f}},
	}
	l.cg, l.fg, l.kk, l.p = c/groups, f/groups, c/groups*kh*kw, ho*wo
	return l, nil
}

func (l *Conv2d) InSize() int  { return l.C * l.H * l.W }
func (l *Conv2d) OutSize() int { return l.F * l.Ho * l.Wo }

// Params returns the weight and, unless the layer has none (Bias nil: a
// convolution followed by BatchNorm), the bias.
func (l *Conv2d) Params() []*Param {
	if l.Bias == nil {
		return []*Param{l.Weight}
	}
	return []*Param{l.Weight, l.Bias}
}

// Init sets the weights and bias uniformly in ±1/√(C/G·Kh·Kw),
// torch.nn.Conv2d's default (kaiming_uniform_ with a = √5; the same bound
// for the bias).
func (l *Conv2d) Init(rng *rand.Rand) {
	bound := 1 / math.Sqrt(float64(l.kk))
	for i := range l.Weight.Data {
		l.Weight.Data[i] = float32((2*rng.Float64() - 1) * bound)
	}
	if l.Bias != nil {
		for i := range l.Bias.Data {
			l.Bias.Data[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
}

// im2col fills col [C/G·Kh·Kw, Ho·Wo] from group g of one sample x.
func (l *Conv2d) im2col(col, x []float32, g int) {
	for c := range l.cg {
		img := x[(g*l.cg+c)*l.H*l.W:]
		for u := range l.Kh {
			for v := range l.Kw {
				row := col[((c*l.Kh+u)*l.Kw+v)*l.p:][:l.p]
				for i := range l.Ho {
					y := i*l.Stride - l.Pad + u*l.Dilation
					out := row[i*l.Wo : (i+1)*l.Wo]
					if y < 0 || y >= l.H {
						clear(out)
						continue
					}
					for j := range l.Wo {
						xx := j*l.Stride - l.Pad + v*l.Dilation
						if xx < 0 || xx >= l.W {
							out[j] = 0
						} else {
							out[j] = img[y*l.W+xx]
						}
					}
				}
			}
		}
	}
}

// col2im adds col [C/G·Kh·Kw, Ho·Wo] back into group g of one sample dx:
// the adjoint of im2col.
func (l *Conv2d) col2im(dx, col []float32, g int) {
	for c := range l.cg {
		img := dx[(g*l.cg+c)*l.H*l.W:]
		for u := range l.Kh {
			for v := range l.Kw {
				row := col[((c*l.Kh+u)*l.Kw+v)*l.p:][:l.p]
				for i := range l.Ho {
					y := i*l.Stride - l.Pad + u*l.Dilation
					if y < 0 || y >= l.H {
						continue
					}
					for j := range l.Wo {
						if xx := j*l.Stride - l.Pad + v*l.Dilation; xx >= 0 && xx < l.W {
							img[y*l.W+xx] += row[i*l.Wo+j]
						}
					}
				}
			}
		}
	}
}

// Forward computes dst = conv(x) + b. It panics on a shape mismatch.
func (l *Conv2d) Forward(dst, x Mat) {
	checkShapes("Conv2d", dst, x, l.InSize(), l.OutSize())
	l.x = x
	l.col = grow(l.col, l.kk*l.p)
	for r := range x.Rows {
		xs, ys := x.Row(r), dst.Row(r)
		for g := range l.Groups {
			l.im2col(l.col, xs, g)
			yg := ys[g*l.fg*l.p : (g+1)*l.fg*l.p]
			for f := range l.fg {
				var b float32
				if l.Bias != nil {
					b = l.Bias.Data[g*l.fg+f]
				}
				row := yg[f*l.p : (f+1)*l.p]
				for i := range row {
					row[i] = b
				}
			}
			sgemm(blas.NoTrans, blas.NoTrans, l.fg, l.p, l.kk, 1, l.Weight.Data[g*l.fg*l.kk:], l.kk, l.col, l.p, 1, yg, l.p)
		}
	}
}

// Backward computes the weight and bias gradients (overwritten) and, if
// dx.Data is non-nil, dx, from dy of the last Forward.
func (l *Conv2d) Backward(dx, dy Mat) {
	checkShapes("Conv2d", dy, l.x, l.InSize(), l.OutSize())
	clear(l.Weight.Grad)
	if l.Bias != nil {
		clear(l.Bias.Grad)
	}
	l.col = grow(l.col, l.kk*l.p)
	if dx.Data != nil {
		l.dcol = grow(l.dcol, l.kk*l.p)
	}
	for r := range l.x.Rows {
		xs, gs := l.x.Row(r), dy.Row(r)
		if dx.Data != nil {
			clear(dx.Row(r))
		}
		for g := range l.Groups {
			gg := gs[g*l.fg*l.p : (g+1)*l.fg*l.p]
			for f := range l.fg {
				if l.Bias == nil {
					break
				}
				var s float32
				for _, v := range gg[f*l.p : (f+1)*l.p] {
					s += v
				}
				l.Bias.Grad[g*l.fg+f] += s
			}
			l.im2col(l.col, xs, g)
			wg := l.Weight.Data[g*l.fg*l.kk:]
			sgemm(blas.NoTrans, blas.Trans, l.fg, l.kk, l.p, 1, gg, l.p, l.col, l.p, 1, l.Weight.Grad[g*l.fg*l.kk:], l.kk)
			if dx.Data != nil {
				sgemm(blas.Trans, blas.NoTrans, l.kk, l.p, l.fg, 1, wg, l.kk, gg, l.p, 0, l.dcol, l.p)
				l.col2im(dx.Row(r), l.dcol, g)
			}
		}
	}
}

package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/distill-ml/distill/train/gemm"
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
// with x zero outside the image; W is [F, C/G, Kh, Kw], b is [F].
// Backward, with dy = dL/dy:
//
//	dW[f, c, u, v] = Σ_samples, i, j dy[f, i, j] · x[c, S·i − P + D·u, S·j − P + D·v]
//	db[f]          = Σ_samples, i, j dy[f, i, j]
//	dx             = the adjoint: each dy[f, i, j]·W[f, c, u, v] added back at its pixel
//
// # How it is computed
//
// In general (C/G > 1 input channels per output) the sum is a matrix
// product through im2col (Chellapilla et al. 2006; Caffe's im2col): for a
// chunk of cs samples and group g, col = im2col(x_g) is the
// [C/G·Kh·Kw, cs·Ho·Wo] matrix whose column (s, i, j) holds the inputs
// under output (i, j) of sample s, and with W_g [F/G, C/G·Kh·Kw] and
// dy_g the [F/G, cs·Ho·Wo] gradient of the chunk,
//
//	y_g  = W_g · col + b
//	dW_g = Σ_chunks dy_g · colᵀ
//	dx_g = col2im(W_gᵀ · dy_g)   (col2im adds each column entry back at its pixel)
//
// all three through the GEMM seam (package gemm, one gemm.Scratch per
// thread). Samples are batched into one product of about 512 columns
// (cs = 1 for maps that large), so small late maps (7×7, 4×4) still fill
// the GEMM's register tiles. Three forms of col:
//
//   - stride 1 ("gridded"): each input channel is padded once into a
//     buffer of row stride gw = W + 2P, and the outputs are computed on
//     the Ho×gw grid of that stride (the columns j >= Wo are dropped), so
//     row (c, u, v) of col is a single copy of the padded channel from
//     offset D·(u·gw + v), and col2im one vector add per row;
//   - 1×1 with stride 1 and no padding: col is x itself (a chunk of one
//     sample; y and dx are then written in place) or its channel rows
//     gathered for the chunk, no im2col at all;
//   - otherwise: im2col proper, a gather per output row.
//
// The col buffer is recomputed in Backward instead of kept, so memory is a
// chunk's col per thread whatever the batch.
//
// When each output channel reads one input channel (C/G = 1: depthwise,
// or a one-channel input such as an MNIST image) a product would have one
// row per output channel, so the layer convolves directly. The padded
// input channel (row stride wp = W + 2P) is split into S row phases,
// ph_a[r] = xpad[S·r + a], and flattened; then the outputs on the Ho×wp
// grid are
//
//	y[q] = Σ_{u,v} W[f, 0, u, v] · ph_{D·u mod S}[q + ⌊D·u/S⌋·wp + D·v]
//
// one pass of the taps kernel (convkern.go, AVX2) per output map, of
// which the layer keeps every S-th column up to Wo. Backward puts dy on
// the same grid (zero elsewhere): dW[f, 0, u, v] is one dot product per
// tap, and dx of each phase the taps kernel over dy with the offsets of
// the phase's taps reversed.
//
// # Threads and determinism
//
// Forward and Backward split the batch into min(n, 16) fixed groups of
// consecutive samples and run the groups on the threads (SetThreads),
// each with its own scratch. The weight and bias gradients are summed per
// group, then over the groups in order, so every result depends on the
// batch size but not on the thread count or the scheduling: 1, 2 and 3
// threads give the same bits. Buffers are grown once and reused; a step
// allocates nothing after the first.
type Conv2d struct {
	C, H, W       int // input channels and size
	F, Kh, Kw     int // output channels, kernel size
	Stride, Pad   int
	Dilation      int
	Groups        int
	Ho, Wo        int
	Weight, Bias  *Param // "NAME.weight" [F, C/G, Kh, Kw], "NAME.bias" [F] (nil: no bias)
	x             Mat
	cg, fg, kk, p int // C/G, F/G, C/G·Kh·Kw, Ho·Wo

	direct   bool // C/G = 1: the taps path
	oneByOne bool // 1×1, stride 1, no padding: col is x
	gridded  bool // stride 1 otherwise: im2col rows are shifted copies of the padded input
	cs       int  // GEMM path: samples per chunk

	// Gridded path geometry: each input channel padded to gh×gw (stored
	// in padSize values, the slack zero), outputs on the Ho×gw grid (ng
	// values per sample; the columns j >= Wo dropped).
	gw, padSize, ng int

	// Direct path geometry: an input channel padded to (H+2P)×wp and
	// split into S row phases (padded row yp is row ⌊yp/S⌋ of phase
	// yp mod S), each in phLen values (the slack zero); outputs computed
	// on the Ho×wp grid (grid values, rounded up to 8), of which every
	// S-th column up to Wo is kept.
	wp, phLen, grid int
	offs            []int32   // per tap (u, v): phase·phLen + ⌊D·u/S⌋·wp + D·v
	phaseTaps       [][]int   // per phase: its taps (u·Kw + v)
	back            [][]int32 // per phase: front − the in-phase offsets of its taps, for dx
	front           int       // zeros in front of dy in its grid buffer (the largest in-phase offset)
	dxPh            int       // dx values per phase: ⌈(H+2P)/S⌉·wp rounded up to 8

	ws        []convScratch // per part of the parallel loop
	pw, pb    []float32     // per sample group: weight and bias gradient partials
	y         Mat           // the output of the last Forward
	lo, hi    float32       // its clamp (−Inf, +Inf: none)
	dst       Mat           // Forward's output, Backward's dx, dy: the call in progress
	dy        Mat
	groups    int
	maxGroups int // tests: fewer sample groups than convMaxGroups, so that chunks hold several samples
	fwdFn     func(part, lo, hi int)
	bwdFn     func(part, lo, hi int)
}

// convScratch is one thread's buffers.
type convScratch struct {
	gemm          gemm.Scratch // every product through the GEMM seam, on this thread, in buffers of its own
	col, yc, dcol []float32    // GEMM path
	xp, dxp, dyc  []float32    // gridded and direct paths: padded input and dx channels; dy on the grid
	yq, dyq, wt   []float32    // direct path: the output grid, dy on it, a phase's tap weights
}

// convMaxGroups is the number of sample groups a batch is split into for
// the threads (fewer for a smaller batch): the unit of the deterministic
// gradient sums.
const convMaxGroups = 16

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
	l.direct = l.cg == 1
	l.oneByOne = kh == 1 && kw == 1 && stride == 1 && pad == 0
	cols := l.p
	switch {
	case l.direct:
		l.planDirect()
	case l.oneByOne:
	case stride == 1:
		l.gridded = true
		l.gw = w + 2*pad
		l.ng = ho * l.gw
		// The last tap reads ng values from D·((Kh−1)·gw + Kw−1).
		l.padSize = (h+2*pad)*l.gw + dilation*(kw-1)
		cols = l.ng
	}
	// Chunks of about 512 output columns, col at most 64k values (256 KiB).
	l.cs = max(1, min((512+cols-1)/cols, (1<<16)/max(l.kk*cols, 1)))
	l.fwdFn, l.bwdFn = l.forwardPart, l.backwardPart
	return l, nil
}

// planDirect lays out the row phases and the taps of the direct path.
func (l *Conv2d) planDirect() {
	d, st := l.Dilation, l.Stride
	hp := l.H + 2*l.Pad
	l.wp = l.W + 2*l.Pad
	l.grid = roundUp8(l.Ho * l.wp)
	l.dxPh = roundUp8((hp + st - 1) / st * l.wp)
	l.phaseTaps, l.back = make([][]int, st), make([][]int32, st)
	in := make([]int, 0, l.Kh*l.Kw)
	for u := range l.Kh {
		for v := range l.Kw {
			o := d*u/st*l.wp + d*v
			in = append(in, o)
			l.front = max(l.front, o)
		}
	}
	l.phLen = max(l.dxPh, l.front+l.grid) // every tap reads grid values from its offset
	for t, o := range in {
		a := d * (t / l.Kw) % st
		l.offs = append(l.offs, int32(a*l.phLen+o))
		l.phaseTaps[a] = append(l.phaseTaps[a], t)
		l.back[a] = append(l.back[a], int32(l.front-o))
	}
}

func roundUp8(n int) int { return (n + 7) &^ 7 }

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

// Forward computes dst = conv(x) + b. It panics on a shape mismatch.
func (l *Conv2d) Forward(dst, x Mat) { l.forwardClamp(dst, x, negInf, posInf) }

// forwardClamp is Forward followed by y = min(max(y, lo), hi) in the same
// pass (a fused ReLU); the next Backward differentiates both.
func (l *Conv2d) forwardClamp(dst, x Mat, lo, hi float32) {
	checkShapes("Conv2d", dst, x, l.InSize(), l.OutSize())
	l.x, l.dst, l.y, l.lo, l.hi = x, dst, dst, lo, hi
	l.run()
	l.dst = Mat{}
}

// Backward computes the weight and bias gradients (overwritten) and, if
// dx.Data is non-nil, dx, from dy of the last Forward. After forwardClamp
// it first sets dy to 0 where the clamp was active (it overwrites dy).
func (l *Conv2d) Backward(dx, dy Mat) {
	checkShapes("Conv2d", dy, l.x, l.InSize(), l.OutSize())
	if dx.Data != nil {
		checkShapes("Conv2d", dy, dx, l.InSize(), l.OutSize())
	}
	l.dst, l.dy = dx, dy
	l.run()
	l.dst, l.dy = Mat{}, Mat{}
	if l.groups == 0 {
		clear(l.Weight.Grad)
		if l.Bias != nil {
			clear(l.Bias.Grad)
		}
		return
	}
	// The gradients: the groups' partial sums in group order.
	nw := len(l.Weight.Grad)
	copy(l.Weight.Grad, l.pw[:nw])
	for g := 1; g < l.groups; g++ {
		addTo(l.Weight.Grad, l.pw[g*nw:(g+1)*nw])
	}
	if l.Bias != nil {
		copy(l.Bias.Grad, l.pb[:l.F])
		for g := 1; g < l.groups; g++ {
			addTo(l.Bias.Grad, l.pb[g*l.F:(g+1)*l.F])
		}
	}
}

// run runs Forward's (l.dy.Data nil) or Backward's work over the sample
// groups on the threads.
func (l *Conv2d) run() {
	p := par()
	l.groups = min(l.x.Rows, convMaxGroups)
	if l.maxGroups > 0 {
		l.groups = min(l.groups, l.maxGroups)
	}
	for len(l.ws) < p.n {
		l.ws = append(l.ws, convScratch{})
	}
	fn := l.fwdFn
	if l.dy.Data != nil {
		fn = l.bwdFn
		l.pw = grow(l.pw, convMaxGroups*len(l.Weight.Data))
		l.pb = grow(l.pb, convMaxGroups*l.F)
	}
	if l.groups > 0 {
		p.runParts(l.groups, fn)
	}
}

// groupSamples returns the samples [lo, hi) of group g.
func (l *Conv2d) groupSamples(g int) (lo, hi int) {
	n := l.x.Rows
	return n * g / l.groups, n * (g + 1) / l.groups
}

// forwardPart computes the outputs of sample groups [g0, g1).
func (l *Conv2d) forwardPart(part, g0, g1 int) {
	ws := &l.ws[part]
	s0, _ := l.groupSamples(g0)
	_, s1 := l.groupSamples(g1 - 1)
	if l.direct {
		for s := s0; s < s1; s++ {
			l.forwardDirect(ws, s)
		}
		return
	}
	for g := g0; g < g1; g++ {
		lo, hi := l.groupSamples(g)
		for c0 := lo; c0 < hi; c0 += l.cs {
			if l.gridded {
				l.forwardGrid(ws, c0, min(c0+l.cs, hi))
			} else {
				l.forwardChunk(ws, c0, min(c0+l.cs, hi))
			}
		}
	}
}

// backwardPart computes dx and the gradient partials of sample groups
// [g0, g1).
func (l *Conv2d) backwardPart(part, g0, g1 int) {
	ws := &l.ws[part]
	nw := len(l.Weight.Data)
	for g := g0; g < g1; g++ {
		pw, pb := l.pw[g*nw:(g+1)*nw], l.pb[g*l.F:(g+1)*l.F]
		clear(pw)
		clear(pb)
		lo, hi := l.groupSamples(g)
		if l.lo != negInf || l.hi != posInf {
			for s := lo; s < hi; s++ {
				clampMask(l.dy.Row(s), l.dy.Row(s), l.y.Row(s), l.lo, l.hi)
			}
		}
		if l.direct {
			for s := lo; s < hi; s++ {
				l.backwardDirect(ws, s, pw, pb)
			}
			continue
		}
		for c0 := lo; c0 < hi; c0 += l.cs {
			if l.gridded {
				l.backwardGrid(ws, c0, min(c0+l.cs, hi), pw, pb)
			} else {
				l.backwardChunk(ws, c0, min(c0+l.cs, hi), pw, pb)
			}
		}
	}
}

// cols returns the col matrix of group g for samples [c0, c1) and its
// leading dimension: x itself for a 1×1 convolution of one sample, else
// im2col (or, 1×1, the channel rows) in ws.col.
func (l *Conv2d) cols(ws *convScratch, c0, c1, g int) ([]float32, int) {
	nc := c1 - c0
	if l.oneByOne && nc == 1 {
		return l.x.Row(c0)[g*l.cg*l.p:], l.p
	}
	ld := nc * l.p
	ws.col = grow(ws.col, l.kk*ld)
	for s := c0; s < c1; s++ {
		xs := l.x.Row(s)
		if l.oneByOne {
			for c := range l.cg {
				copy(ws.col[c*ld+(s-c0)*l.p:][:l.p], xs[(g*l.cg+c)*l.p:][:l.p])
			}
			continue
		}
		l.im2col(ws.col[(s-c0)*l.p:], ld, xs, g)
	}
	return ws.col, ld
}

// forwardChunk computes the outputs of samples [c0, c1) (GEMM path).
func (l *Conv2d) forwardChunk(ws *convScratch, c0, c1 int) {
	nc := c1 - c0
	for g := range l.Groups {
		col, ldb := l.cols(ws, c0, c1, g)
		wg := l.Weight.Data[g*l.fg*l.kk:]
		if nc == 1 {
			y := l.dst.Row(c0)[g*l.fg*l.p:]
			ws.gemm.Sgemm(blas.NoTrans, blas.NoTrans, l.fg, l.p, l.kk, 1, wg, l.kk, col, ldb, 0, y, l.p)
			if l.Bias != nil || l.lo != negInf || l.hi != posInf {
				for f := range l.fg {
					row := y[f*l.p : (f+1)*l.p]
					affine(row, row, 0, 1, l.bias(g*l.fg+f), l.lo, l.hi)
				}
			}
			continue
		}
		ld := nc * l.p
		ws.yc = grow(ws.yc, l.fg*ld)
		ws.gemm.Sgemm(blas.NoTrans, blas.NoTrans, l.fg, ld, l.kk, 1, wg, l.kk, col, ldb, 0, ws.yc, ld)
		for s := c0; s < c1; s++ {
			ys := l.dst.Row(s)
			for f := range l.fg {
				src := ws.yc[f*ld+(s-c0)*l.p:][:l.p]
				out := ys[(g*l.fg+f)*l.p:][:l.p]
				affine(out, src, 0, 1, l.bias(g*l.fg+f), l.lo, l.hi)
			}
		}
	}
}

var negInf, posInf = float32(math.Inf(-1)), float32(math.Inf(1))

// bias returns b[f], 0 without a bias.
func (l *Conv2d) bias(f int) float32 {
	if l.Bias == nil {
		return 0
	}
	return l.Bias.Data[f]
}

// backwardChunk adds the gradients of samples [c0, c1) to pw, pb and
// computes their dx (GEMM path).
func (l *Conv2d) backwardChunk(ws *convScratch, c0, c1 int, pw, pb []float32) {
	nc := c1 - c0
	ld := nc * l.p
	hasDx := l.dst.Data != nil
	if hasDx && !l.oneByOne {
		for s := c0; s < c1; s++ {
			clear(l.dst.Row(s))
		}
	}
	for g := range l.Groups {
		// dy of the chunk as [F/G, ld] (in place for one sample).
		gm, ldg := l.dy.Row(c0)[g*l.fg*l.p:], l.p
		if nc > 1 {
			ws.yc = grow(ws.yc, l.fg*ld)
			gm, ldg = ws.yc, ld
			for s := c0; s < c1; s++ {
				ds := l.dy.Row(s)
				for f := range l.fg {
					copy(ws.yc[f*ld+(s-c0)*l.p:][:l.p], ds[(g*l.fg+f)*l.p:][:l.p])
				}
			}
		}
		if l.Bias != nil {
			for s := c0; s < c1; s++ {
				ds := l.dy.Row(s)
				for f := range l.fg {
					pb[g*l.fg+f] += sum(ds[(g*l.fg+f)*l.p:][:l.p])
				}
			}
		}
		col, ldb := l.cols(ws, c0, c1, g)
		ws.gemm.Sgemm(blas.NoTrans, blas.Trans, l.fg, l.kk, ld, 1, gm, ldg, col, ldb, 1, pw[g*l.fg*l.kk:], l.kk)
		if !hasDx {
			continue
		}
		wg := l.Weight.Data[g*l.fg*l.kk:]
		if l.oneByOne && nc == 1 { // dx = Wᵀ·dy straight into the sample's rows
			ws.gemm.Sgemm(blas.Trans, blas.NoTrans, l.kk, l.p, l.fg, 1, wg, l.kk, gm, ldg, 0, l.dst.Row(c0)[g*l.cg*l.p:], l.p)
			continue
		}
		ws.dcol = grow(ws.dcol, l.kk*ld)
		ws.gemm.Sgemm(blas.Trans, blas.NoTrans, l.kk, ld, l.fg, 1, wg, l.kk, gm, ldg, 0, ws.dcol, ld)
		for s := c0; s < c1; s++ {
			dxs := l.dst.Row(s)
			if l.oneByOne {
				for c := range l.cg {
					copy(dxs[(g*l.cg+c)*l.p:][:l.p], ws.dcol[c*ld+(s-c0)*l.p:][:l.p])
				}
				continue
			}
			l.col2im(dxs, ws.dcol[(s-c0)*l.p:], ld, g)
		}
	}
}

// growGrid sizes ws for the gridded path; the padded input and the dy
// grid are allocated once, zeroed, and only their image positions are
// ever written.
func (ws *convScratch) growGrid(l *Conv2d) {
	ld := l.cs * l.ng
	if len(ws.xp) != l.cg*l.padSize {
		ws.xp = make([]float32, l.cg*l.padSize)
		ws.dxp = make([]float32, l.cg*l.padSize)
	}
	if len(ws.dyc) != l.fg*ld {
		ws.dyc = make([]float32, l.fg*ld)
	}
	ws.col = grow(ws.col, l.kk*ld)
	ws.yc = grow(ws.yc, l.fg*ld)
	ws.dcol = grow(ws.dcol, l.kk*ld)
}

// gridCols pads group g of sample xs into ws.xp and writes its im2col
// rows on the output grid into col (leading dimension ld): row (c, u, v)
// is the padded channel c read from offset D·(u·gw + v), one copy.
func (l *Conv2d) gridCols(ws *convScratch, col []float32, ld int, xs []float32, g int) {
	for c := range l.cg {
		img := xs[(g*l.cg+c)*l.H*l.W:]
		xp := ws.xp[c*l.padSize : (c+1)*l.padSize]
		for y := range l.H {
			copy(xp[(y+l.Pad)*l.gw+l.Pad:], img[y*l.W:(y+1)*l.W])
		}
		for u := range l.Kh {
			for v := range l.Kw {
				off := l.Dilation * (u*l.gw + v)
				copy(col[((c*l.Kh+u)*l.Kw+v)*ld:][:l.ng], xp[off:off+l.ng])
			}
		}
	}
}

// forwardGrid computes the outputs of samples [c0, c1) (gridded path):
// one product [F/G, (c1−c0)·ng] per group, its valid columns copied out.
func (l *Conv2d) forwardGrid(ws *convScratch, c0, c1 int) {
	ws.growGrid(l)
	ld, n := l.cs*l.ng, (c1-c0)*l.ng
	for g := range l.Groups {
		for s := c0; s < c1; s++ {
			l.gridCols(ws, ws.col[(s-c0)*l.ng:], ld, l.x.Row(s), g)
		}
		ws.gemm.Sgemm(blas.NoTrans, blas.NoTrans, l.fg, n, l.kk, 1, l.Weight.Data[g*l.fg*l.kk:], l.kk, ws.col, ld, 0, ws.yc, ld)
		for s := c0; s < c1; s++ {
			ys := l.dst.Row(s)
			for f := range l.fg {
				src, out := ws.yc[f*ld+(s-c0)*l.ng:], ys[(g*l.fg+f)*l.p:][:l.p]
				for i := range l.Ho {
					copy(out[i*l.Wo:(i+1)*l.Wo], src[i*l.gw:])
				}
				if b := l.bias(g*l.fg + f); b != 0 || l.lo != negInf || l.hi != posInf {
					affine(out, out, 0, 1, b, l.lo, l.hi)
				}
			}
		}
	}
}

// backwardGrid adds the gradients of samples [c0, c1) to pw, pb and
// computes their dx (gridded path): dy goes on the grid (the dropped
// columns zero), dW = dy·colᵀ, and dcol = Wᵀ·dy is added back into the
// padded dx channels a row (c, u, v) at a time.
func (l *Conv2d) backwardGrid(ws *convScratch, c0, c1 int, pw, pb []float32) {
	ws.growGrid(l)
	ld, n := l.cs*l.ng, (c1-c0)*l.ng
	for g := range l.Groups {
		for s := c0; s < c1; s++ {
			l.gridCols(ws, ws.col[(s-c0)*l.ng:], ld, l.x.Row(s), g)
			ds := l.dy.Row(s)
			for f := range l.fg {
				src, dst := ds[(g*l.fg+f)*l.p:][:l.p], ws.dyc[f*ld+(s-c0)*l.ng:]
				for i := range l.Ho {
					copy(dst[i*l.gw:][:l.Wo], src[i*l.Wo:(i+1)*l.Wo])
				}
				if l.Bias != nil {
					pb[g*l.fg+f] += sum(src)
				}
			}
		}
		ws.gemm.Sgemm(blas.NoTrans, blas.Trans, l.fg, l.kk, n, 1, ws.dyc, ld, ws.col, ld, 1, pw[g*l.fg*l.kk:], l.kk)
		if l.dst.Data == nil {
			continue
		}
		ws.gemm.Sgemm(blas.Trans, blas.NoTrans, l.kk, n, l.fg, 1, l.Weight.Data[g*l.fg*l.kk:], l.kk, ws.dyc, ld, 0, ws.dcol, ld)
		for s := c0; s < c1; s++ {
			dxs := l.dst.Row(s)
			for c := range l.cg {
				dxp := ws.dxp[c*l.padSize : (c+1)*l.padSize]
				clear(dxp)
				for u := range l.Kh {
					for v := range l.Kw {
						off := l.Dilation * (u*l.gw + v)
						addTo(dxp[off:off+l.ng], ws.dcol[((c*l.Kh+u)*l.Kw+v)*ld+(s-c0)*l.ng:])
					}
				}
				img := dxs[(g*l.cg+c)*l.H*l.W:]
				for y := range l.H {
					copy(img[y*l.W:(y+1)*l.W], dxp[(y+l.Pad)*l.gw+l.Pad:])
				}
			}
		}
	}
}

// im2col fills col [C/G·Kh·Kw, Ho·Wo] (leading dimension ld) from group g
// of one sample x.
func (l *Conv2d) im2col(col []float32, ld int, x []float32, g int) {
	for c := range l.cg {
		img := x[(g*l.cg+c)*l.H*l.W:]
		for u := range l.Kh {
			for v := range l.Kw {
				row := col[((c*l.Kh+u)*l.Kw+v)*ld:][:l.p]
				// Output columns [j0, j1) read inside the image.
				dv := v*l.Dilation - l.Pad
				j0, j1 := l.validCols(dv)
				for i := range l.Ho {
					y := i*l.Stride - l.Pad + u*l.Dilation
					out := row[i*l.Wo : (i+1)*l.Wo]
					if y < 0 || y >= l.H || j0 >= j1 {
						clear(out)
						continue
					}
					clear(out[:j0])
					clear(out[j1:])
					src := img[y*l.W:]
					if l.Stride == 1 {
						copy(out[j0:j1], src[j0+dv:j1+dv])
						continue
					}
					for j := j0; j < j1; j++ {
						out[j] = src[j*l.Stride+dv]
					}
				}
			}
		}
	}
}

// validCols returns the output columns [j0, j1) whose input column
// S·j + dv lies in [0, W).
func (l *Conv2d) validCols(dv int) (j0, j1 int) {
	// S·j + dv >= 0  ⇔  j >= ⌈−dv/S⌉;  S·j + dv < W  ⇔  j < ⌈(W − dv)/S⌉.
	if dv < 0 {
		j0 = (-dv + l.Stride - 1) / l.Stride
	}
	j1 = l.Wo
	if l.W-dv <= 0 {
		j1 = 0
	} else {
		j1 = min(j1, (l.W-dv+l.Stride-1)/l.Stride)
	}
	return min(j0, l.Wo), j1
}

// col2im adds col [C/G·Kh·Kw, Ho·Wo] (leading dimension ld) back into
// group g of one sample dx: the adjoint of im2col.
func (l *Conv2d) col2im(dx, col []float32, ld, g int) {
	for c := range l.cg {
		img := dx[(g*l.cg+c)*l.H*l.W:]
		for u := range l.Kh {
			for v := range l.Kw {
				row := col[((c*l.Kh+u)*l.Kw+v)*ld:][:l.p]
				dv := v*l.Dilation - l.Pad
				j0, j1 := l.validCols(dv)
				if j0 >= j1 {
					continue
				}
				for i := range l.Ho {
					y := i*l.Stride - l.Pad + u*l.Dilation
					if y < 0 || y >= l.H {
						continue
					}
					dst := img[y*l.W:]
					src := row[i*l.Wo:]
					if l.Stride == 1 {
						addTo(dst[j0+dv:j1+dv], src[j0:j1])
						continue
					}
					for j := j0; j < j1; j++ {
						dst[j*l.Stride+dv] += src[j]
					}
				}
			}
		}
	}
}

// padChannel writes image channel img [H, W] into its row phases xp
// (padded row yp goes to row ⌊yp/S⌋ of phase yp mod S, row stride wp);
// the padding and slack positions are never written, so they stay zero.
func (l *Conv2d) padChannel(xp, img []float32) {
	for y := range l.H {
		yp := y + l.Pad
		copy(xp[(yp%l.Stride)*l.phLen+(yp/l.Stride)*l.wp+l.Pad:], img[y*l.W:(y+1)*l.W])
	}
}

func (ws *convScratch) growDirect(l *Conv2d) {
	if len(ws.xp) != l.Stride*l.phLen { // zeroed once: only image positions are ever written
		ws.xp = make([]float32, l.Stride*l.phLen)
		ws.dxp = make([]float32, l.Stride*l.phLen)
		ws.yq = make([]float32, l.grid)
		ws.dyq = make([]float32, l.front+max(l.grid, l.dxPh))
		ws.wt = make([]float32, l.Kh*l.Kw)
	}
}

// forwardDirect computes the outputs of sample s (direct path): per
// output channel one taps pass over the output grid, then every S-th
// column of it.
func (l *Conv2d) forwardDirect(ws *convScratch, s int) {
	ws.growDirect(l)
	xs, ys := l.x.Row(s), l.dst.Row(s)
	nt := l.Kh * l.Kw
	st := l.Stride
	for c := range l.C {
		l.padChannel(ws.xp, xs[c*l.H*l.W:])
		for f := c * l.fg; f < (c+1)*l.fg; f++ {
			taps(ws.yq, ws.xp, l.offs, l.Weight.Data[f*nt:(f+1)*nt], false)
			out := ys[f*l.p : (f+1)*l.p]
			for i := range l.Ho {
				row, src := out[i*l.Wo:(i+1)*l.Wo], ws.yq[i*l.wp:]
				if st == 1 {
					copy(row, src)
					continue
				}
				for j := range row {
					row[j] = src[st*j]
				}
			}
			if b := l.bias(f); b != 0 || l.lo != negInf || l.hi != posInf {
				affine(out, out, 0, 1, b, l.lo, l.hi)
			}
		}
	}
}

// backwardDirect adds the gradients of sample s to pw, pb and computes
// its dx (direct path): dy on the output grid (zero between the strided
// columns and in the dropped ones), a dot product per tap for dW, and for
// dx of each row phase the taps pass over dy with the offsets of the
// phase's taps reversed.
func (l *Conv2d) backwardDirect(ws *convScratch, s int, pw, pb []float32) {
	ws.growDirect(l)
	xs, ds := l.x.Row(s), l.dy.Row(s)
	nt := l.Kh * l.Kw
	st := l.Stride
	dyg := ws.dyq[l.front:]
	for c := range l.C {
		l.padChannel(ws.xp, xs[c*l.H*l.W:])
		for f := c * l.fg; f < (c+1)*l.fg; f++ {
			dyf := ds[f*l.p : (f+1)*l.p]
			for i := range l.Ho {
				row, dst := dyf[i*l.Wo:(i+1)*l.Wo], dyg[i*l.wp:]
				if st == 1 {
					copy(dst, row)
					continue
				}
				for j, v := range row {
					dst[st*j] = v
				}
			}
			if l.Bias != nil {
				pb[f] += sum(dyf)
			}
			wf := pw[f*nt : (f+1)*nt]
			dotTaps(wf, dyg[:l.grid], ws.xp, l.offs)
			if l.dst.Data == nil {
				continue
			}
			w := l.Weight.Data[f*nt : (f+1)*nt]
			for a, back := range l.back {
				dph := ws.dxp[a*l.phLen:][:l.dxPh]
				if len(back) == 0 {
					clear(dph)
					continue
				}
				wt := ws.wt[:len(back)]
				for k, t := range l.phaseTaps[a] {
					wt[k] = w[t]
				}
				taps(dph, ws.dyq, back, wt, f > c*l.fg)
			}
		}
		if l.dst.Data != nil {
			img := l.dst.Row(s)[c*l.H*l.W:]
			for y := range l.H {
				yp := y + l.Pad
				copy(img[y*l.W:(y+1)*l.W], ws.dxp[(yp%st)*l.phLen+(yp/st)*l.wp+l.Pad:])
			}
		}
	}
}

package train

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// CNNPresets are the convolutional students of the PyTorch peer
// (../shared/peers/torch_kd_train.py, CNN_PRESETS), so that the same name
// builds the same network on both sides.
var CNNPresets = map[string]string{
	"lenet5": "conv5x5:6,relu,maxpool2,conv5x5:16:p0,relu,maxpool2,flatten,fc:120,relu,fc:84,relu,fc:10",
	"tiny":   "conv3x3:8,bn,relu,maxpool2,conv3x3:16,bn,relu,maxpool2,conv3x3:32,bn,relu,maxpool2,flatten,fc:10",
	"dws": "conv3x3:16,bn,relu6," +
		"dwconv3x3:s2,bn,relu6,conv1x1:32,bn,relu6,dwconv3x3,bn,relu6,conv1x1:32,bn,relu6," +
		"dwconv3x3:s2,bn,relu6,conv1x1:64,bn,relu6,dwconv3x3,bn,relu6,conv1x1:64,bn,relu6," +
		"dwconv3x3:s2,bn,relu6,conv1x1:128,bn,relu6,dwconv3x3,bn,relu6,conv1x1:128,bn,relu6," +
		"gap,fc:10",
}

// CNN is a convolutional student built from a spec in the grammar of the
// PyTorch peer's --arch cnn:SPEC (its README, "CNN students"): token i of
// the expanded spec is module i of one nn.Sequential, so parameters are
// named "i.weight", "i.bias" and load into that module with
// load_state_dict (BatchNorm's running statistics are the layer's
// buffers). A conv or fc directly followed by bn has no bias.
type CNN struct {
	Spec   string   // the expanded spec
	Tokens []string // its layers
	Layers []Layer  // the layers that compute (flatten is none: samples are already flat)
	seq    *Sequential
}

var convRE = regexp.MustCompile(`^(dw)?conv(\d+)x(\d+)$`)

// NewCNN parses arch (a preset name or a spec, with or without "cnn:")
// for samples of shape [c, h, w] and builds the network, checking every
// shape; it must end with classes values. An error names the layer and
// the input shape it got, in the peer's words.
func NewCNN(arch string, c, h, w, classes int) (*CNN, error) {
	body := strings.TrimSpace(strings.TrimPrefix(arch, "cnn:"))
	spec := body
	if p, ok := CNNPresets[body]; ok {
		spec = p
	}
	toks := strings.Split(spec, ",")
	for i := range toks {
		toks[i] = strings.TrimSpace(toks[i])
		if toks[i] == "" || body == "" {
			return nil, fmt.Errorf("--arch %s: empty layer in the list (presets: lenet5, tiny, dws)", arch)
		}
	}
	shape := []int{c, h, w}
	n := &CNN{Spec: strings.Join(toks, ","), Tokens: toks}
	for i, t := range toks {
		fail := func(msg string) (*CNN, error) {
			return nil, fmt.Errorf("--arch %s: layer %d '%s': %s (input shape %v)", arch, i, t, msg, shape)
		}
		f := strings.Split(t, ":")
		nextBN := i+1 < len(toks) && toks[i+1] == "bn"
		name := strconv.Itoa(i)
		if m := convRE.FindStringSubmatch(f[0]); m != nil {
			k, _ := strconv.Atoi(m[2])
			k2, _ := strconv.Atoi(m[3])
			if k != k2 || k < 1 {
				return fail("the kernel must be square and at least 1x1")
			}
			if len(shape) != 3 {
				return fail("a convolution needs [C,H,W] maps (it cannot follow gap/flatten/fc)")
			}
			opts := f[1:]
			cout, groups := shape[0], shape[0]
			if m[1] == "" {
				if len(opts) == 0 {
					return fail("expected convKxK:C[:sS][:pP] with C >= 1 output channels")
				}
				v, err := strconv.Atoi(opts[0])
				if err != nil || v < 1 || strings.ContainsAny(opts[0], "+-") {
					return fail("expected convKxK:C[:sS][:pP] with C >= 1 output channels")
				}
				cout, groups, opts = v, 1, opts[1:]
			}
			stride, pad := 1, k/2
			for _, o := range opts {
				switch {
				case regexp.MustCompile(`^s[1-9][0-9]*$`).MatchString(o):
					stride, _ = strconv.Atoi(o[1:])
				case regexp.MustCompile(`^p[0-9]+$`).MatchString(o):
					pad, _ = strconv.Atoi(o[1:])
				default:
					return fail(fmt.Sprintf("unknown option '%s' (sS = stride, pP = padding)", o))
				}
			}
			conv, err := NewConv2d(name, shape[0], shape[1], shape[2], cout, k, k, stride, pad, 1, groups)
			if err != nil {
				return fail("output would be empty")
			}
			if nextBN {
				conv.Bias = nil
			}
			n.Layers = append(n.Layers, conv)
			shape = []int{cout, conv.Ho, conv.Wo}
			continue
		}
		if f[0] == "fc" {
			if len(f) != 2 {
				return fail("expected fc:N with N >= 1")
			}
			v, err := strconv.Atoi(f[1])
			if err != nil || v < 1 || strings.ContainsAny(f[1], "+-") {
				return fail("expected fc:N with N >= 1")
			}
			if len(shape) != 1 {
				return fail("fc needs flat features: put gap or flatten before it")
			}
			if nextBN {
				return fail("an fc followed by bn (a Linear without bias) is not supported by distill yet")
			}
			n.Layers = append(n.Layers, NewLinear(name, shape[0], v, Identity))
			shape = []int{v}
			continue
		}
		if len(f) > 1 {
			return fail("this layer takes no options")
		}
		size := 1
		for _, d := range shape {
			size *= d
		}
		switch t {
		case "bn":
			if len(shape) == 3 {
				n.Layers = append(n.Layers, NewBatchNorm2d(name, shape[0], shape[1], shape[2]))
			} else {
				n.Layers = append(n.Layers, NewBatchNorm2d(name, shape[0], 1, 1)) // BatchNorm1d
			}
		case "relu":
			n.Layers = append(n.Layers, NewActivationLayer(ReLU, size))
		case "relu6":
			n.Layers = append(n.Layers, NewReLU6(size))
		case "maxpool2", "avgpool2":
			if len(shape) != 3 || shape[1] < 2 || shape[2] < 2 {
				return fail("pooling needs [C,H,W] maps of at least 2x2")
			}
			p, err := NewPool2d(t == "maxpool2", shape[0], shape[1], shape[2], 2, 2)
			if err != nil {
				return fail(err.Error())
			}
			n.Layers = append(n.Layers, p)
			shape = []int{shape[0], p.Ho, p.Wo}
		case "gap", "flatten":
			if len(shape) != 3 {
				return fail("the input is already flat")
			}
			if t == "gap" {
				n.Layers = append(n.Layers, NewGlobalAvgPool(shape[0], shape[1], shape[2]))
				shape = []int{shape[0]}
			} else {
				shape = []int{size} // [C,H,W] rows are already flat in torch's order
			}
		default:
			return fail("unknown layer; known: convKxK:C[:sS][:pP], dwconvKxK[:sS][:pP], fc:N, bn, relu, relu6, maxpool2, avgpool2, gap, flatten; presets: lenet5, tiny, dws")
		}
	}
	if len(shape) != 1 || shape[0] != classes {
		return nil, fmt.Errorf("--arch %s: the last layer gives shape %v; it must give %d logits (end with fc:%d)", arch, shape, classes, classes)
	}
	n.seq = NewSequential(n.Layers...)
	return n, nil
}

func (n *CNN) InSize() int        { return n.seq.InSize() }
func (n *CNN) OutSize() int       { return n.seq.OutSize() }
func (n *CNN) Params() []*Param   { return n.seq.Params() }
func (n *CNN) Forward(dst, x Mat) { n.seq.Forward(dst, x) }
func (n *CNN) Backward(dx, dy Mat) {
	n.seq.Backward(dx, dy)
}

// Init draws every layer's parameters as torch's defaults do (Conv2d and
// Linear uniform in ±1/√fan_in, BatchNorm γ = 1, β = 0), in layer order.
// The values are not torch's own draws.
func (n *CNN) Init(rng *rand.Rand) {
	for _, l := range n.Layers {
		if in, ok := l.(interface{ Init(*rand.Rand) }); ok {
			in.Init(rng)
		}
	}
}

// SetTraining switches every BatchNorm between batch and running
// statistics.
func (n *CNN) SetTraining(training bool, rng *rand.Rand) {
	for _, l := range n.Layers {
		if s, ok := l.(Stochastic); ok {
			s.SetTraining(training, rng)
		}
	}
}

// Sequential chains layers: Forward runs them in order through buffers it
// keeps, Backward in reverse. It is a Layer.
//
// A ReLU (ActivationLayer) or ReLU6 directly after a Conv2d or
// BatchNorm2d is fused into it: that layer clamps its output in its own
// output pass (forwardClamp) and its Backward masks dy by the clamped
// output, so the activation costs no pass of its own either way (the
// activation layer's Forward and Backward are not called). The results
// are those of the two layers run one after the other.
type Sequential struct {
	Layers []Layer
	outs   []Mat // output of layer i of the last Forward (not kept for a fused layer: its activation's)
	grads  []Mat // gradient buffers of Backward
	x      Mat
	fused  []bool    // layer i applies layer i+1, a clamp, itself
	lo, hi []float32 // that clamp
}

// clampLayer is a layer that can apply y = min(max(y, lo), hi) in its own
// output pass, and whose next Backward then differentiates the clamp too.
type clampLayer interface {
	forwardClamp(dst, x Mat, lo, hi float32)
}

// clampOf returns the clamp [lo, hi] that l computes, if it is one.
func clampOf(l Layer) (lo, hi float32, ok bool) {
	switch a := l.(type) {
	case *ActivationLayer:
		if a.Fn == ReLU {
			return 0, posInf, true
		}
	case *ReLU6:
		return 0, 6, true
	}
	return 0, 0, false
}

// NewSequential returns the chain of layers (their sizes must match).
func NewSequential(layers ...Layer) *Sequential {
	for i := 1; i < len(layers); i++ {
		if layers[i-1].OutSize() != layers[i].InSize() {
			panic(fmt.Sprintf("train: Sequential: layer %d gives %d values, layer %d takes %d", i-1, layers[i-1].OutSize(), i, layers[i].InSize()))
		}
	}
	s := &Sequential{Layers: layers, outs: make([]Mat, len(layers)), grads: make([]Mat, len(layers)),
		fused: make([]bool, len(layers)), lo: make([]float32, len(layers)), hi: make([]float32, len(layers))}
	for i := 0; i+1 < len(layers); i++ {
		if _, ok := layers[i].(clampLayer); !ok {
			continue
		}
		if lo, hi, ok := clampOf(layers[i+1]); ok {
			s.fused[i], s.lo[i], s.hi[i] = true, lo, hi
			i++ // the activation is not fused again into the next layer
		}
	}
	return s
}

func (s *Sequential) InSize() int  { return s.Layers[0].InSize() }
func (s *Sequential) OutSize() int { return s.Layers[len(s.Layers)-1].OutSize() }
func (s *Sequential) Params() []*Param {
	var ps []*Param
	for _, l := range s.Layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// Forward runs every layer; the last writes dst.
func (s *Sequential) Forward(dst, x Mat) {
	checkShapes("Sequential", dst, x, s.InSize(), s.OutSize())
	s.x = x
	in := x
	for i := 0; i < len(s.Layers); i++ {
		l, last := s.Layers[i], i
		if s.fused[i] {
			last = i + 1
		}
		out := dst
		if last < len(s.Layers)-1 {
			size := s.Layers[last].OutSize()
			s.outs[last].Data = grow(s.outs[last].Data, x.Rows*size)
			s.outs[last].Rows, s.outs[last].Cols = x.Rows, size
			out = s.outs[last]
		}
		if s.fused[i] {
			l.(clampLayer).forwardClamp(out, in, s.lo[i], s.hi[i])
		} else {
			l.Forward(out, in)
		}
		in, i = out, last
	}
}

// Backward runs every layer's Backward in reverse order.
func (s *Sequential) Backward(dx, dy Mat) {
	g := dy
	for i := len(s.Layers) - 1; i >= 0; i-- {
		if i > 0 && s.fused[i-1] { // the activation's gradient is its layer's
			i--
		}
		l := s.Layers[i]
		d := dx
		if i > 0 {
			s.grads[i].Data = grow(s.grads[i].Data, s.x.Rows*l.InSize())
			s.grads[i].Rows, s.grads[i].Cols = s.x.Rows, l.InSize()
			d = s.grads[i]
		}
		l.Backward(d, g)
		g = d
	}
}

// ReLU6 is min(max(x, 0), 6) (torch.nn.ReLU6, MobileNet's activation);
// its derivative is 1 on (0, 6) and 0 elsewhere, computed from the
// output (0 < y < 6 exactly where 0 < x < 6).
type ReLU6 struct {
	Size   int
	x, y   Mat
	dx, dy Mat // the Backward in progress
	fwd    func(lo, hi int)
	bwd    func(lo, hi int)
}

// NewReLU6 returns ReLU6 on samples of size values.
func NewReLU6(size int) *ReLU6 {
	r := &ReLU6{Size: size}
	r.fwd, r.bwd = r.forwardRange, r.backwardRange
	return r
}

func (r *ReLU6) InSize() int      { return r.Size }
func (r *ReLU6) OutSize() int     { return r.Size }
func (r *ReLU6) Params() []*Param { return nil }

// reluGrain is the values per thread below which an elementwise pass is
// not split.
const reluGrain = 1 << 14

// Forward computes dst = min(max(x, 0), 6).
func (r *ReLU6) Forward(dst, x Mat) {
	checkShapes("ReLU6", dst, x, r.Size, r.Size)
	r.x, r.y = x, dst
	par().run(x.Rows*r.Size, reluGrain, r.fwd)
}

func (r *ReLU6) forwardRange(lo, hi int) {
	affine(r.y.Data[lo:hi], r.x.Data[lo:hi], 0, 1, 0, 0, 6)
}

// Backward passes dy where 0 < x < 6.
func (r *ReLU6) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	r.dx, r.dy = dx, dy
	par().run(r.y.Rows*r.Size, reluGrain, r.bwd)
	r.dx, r.dy = Mat{}, Mat{}
}

func (r *ReLU6) backwardRange(lo, hi int) {
	clampMask(r.dx.Data[lo:hi], r.dy.Data[lo:hi], r.y.Data[lo:hi], 0, 6)
}

package train

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Config is a student architecture, an "mlp" or a "cnn".
//
// An mlp is
//
//	x [n, Inputs] → Standardize → for h = 1..len(Hidden):
//	    fc{h}: Linear(prev, Hidden[h−1]) → [ln{h}: LayerNorm] → Activation → [Dropout]
//	→ fc{len(Hidden)+1}: Linear(prev, Classes) → logits [n, Classes]
//
// The activation is fused into the Linear, or into the LayerNorm when
// there is one. Hidden block h's output, the one feature distillation can
// read, is taken after the activation and before dropout.
//
// A cnn is x → Standardize → the layers of Arch (NewCNN: the PyTorch
// peer's --arch cnn:SPEC grammar), on samples of InputShape [C, H, W]
// (or [H, W], one channel); Hidden, Activation, Dropout and LayerNorm
// are unused. Its checkpoint tensors are named as the peer's
// nn.Sequential state_dict ("0.weight", "1.running_mean", ...).
type Config struct {
	Type       string     `json:"type"`                  // "mlp" or "cnn"; "" means "mlp"
	Arch       string     `json:"arch,omitempty"`        // cnn: the layer spec, a preset name on input and expanded by normalize
	Inputs     int        `json:"inputs"`                // values per sample: the flattened teacher input
	InputShape []int      `json:"input_shape,omitempty"` // per-sample shape of the teacher input, e.g. [1, 28, 28]; product Inputs
	Hidden     []int      `json:"hidden"`                // widths of the hidden blocks
	Classes    int        `json:"classes"`               // logits
	Activation Activation `json:"activation"`            // "" means ReLU
	Dropout    float64    `json:"dropout"`               // probability in [0, 1); 0 means no Dropout layers
	LayerNorm  bool       `json:"layernorm"`             // add a LayerNorm to every hidden block
}

// normalize validates c and fills defaults.
func (c Config) normalize() (Config, error) {
	if c.Type == "" {
		c.Type = "mlp"
	}
	if c.Type != "mlp" && c.Type != "cnn" {
		return c, fmt.Errorf("train: unknown student type %q, want mlp or cnn", c.Type)
	}
	if c.Type == "cnn" {
		return c.normalizeCNN()
	}
	if c.Arch != "" {
		return c, fmt.Errorf("train: an mlp student takes Hidden, not a cnn Arch (%q)", c.Arch)
	}
	if c.Activation == "" {
		c.Activation = ReLU
	}
	if _, err := ParseActivation(string(c.Activation)); err != nil {
		return c, err
	}
	if c.Inputs < 1 || c.Classes < 1 {
		return c, fmt.Errorf("train: student with %d inputs and %d classes", c.Inputs, c.Classes)
	}
	if len(c.InputShape) > 0 {
		n := 1
		for _, d := range c.InputShape {
			if d < 1 || n > 1<<40/d {
				return c, fmt.Errorf("train: input shape %v", c.InputShape)
			}
			n *= d
		}
		if n != c.Inputs {
			return c, fmt.Errorf("train: input shape %v has %d values, inputs %d", c.InputShape, n, c.Inputs)
		}
	}
	for _, h := range c.Hidden {
		if h < 1 {
			return c, fmt.Errorf("train: hidden width %d", h)
		}
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return c, fmt.Errorf("train: dropout %v not in [0, 1)", c.Dropout)
	}
	// Bound the size so a hostile checkpoint cannot ask for absurd memory.
	params, prev := 0, c.Inputs
	for _, h := range append(append([]int(nil), c.Hidden...), c.Classes) {
		if prev > maxWidth || h > maxWidth {
			return c, fmt.Errorf("train: layer %d×%d too large", prev, h)
		}
		params += prev*h + 3*h
		if params > maxParams {
			return c, fmt.Errorf("train: student has more than %d parameters", maxParams)
		}
		prev = h
	}
	return c, nil
}

// Limits on a student, for loading untrusted checkpoints.
const (
	maxWidth  = 1 << 24
	maxParams = 1 << 30
)

// ParseLayer resolves a STUDENT_LAYER name for feature distillation: "h" or
// "" followed by a 1-based hidden block number ("1", "h2"). It returns the
// block number h, 1 <= h <= hidden.
func ParseLayer(s string, hidden int) (int, error) {
	t := strings.TrimPrefix(strings.ToLower(s), "h")
	h, err := strconv.Atoi(t)
	if err != nil || h < 1 || h > hidden {
		return 0, fmt.Errorf("train: student layer %q: want a hidden block 1..%d (or h1..h%d)", s, hidden, hidden)
	}
	return h, nil
}

// Student is an MLP built from Layers, with its trainable parameters in one
// flat Params set. Forward and Backward reuse buffers sized by the largest
// batch seen; a Student is not safe for concurrent use.
type Student struct {
	Config      Config
	Standardize *Standardize
	Layers      []Layer // after Standardize
	Params      *Params // trainable parameters, in layer order

	// Buffers are the tensors a checkpoint holds besides the parameters:
	// a cnn's BatchNorm running statistics and batch counts.
	Buffers []*Param
	tracked []*Param // a cnn's "i.num_batches_tracked", counted by Forward while training

	training bool
	blocks   []int // blocks[h-1]: index into acts of hidden block h's output
	acts     []Mat // acts[0] standardized input, acts[i+1] output of Layers[i]
	grads    []Mat // grads[i] = dLoss/d(acts[i]); grads[0] unused
	buf      [][]float32
	gbuf     [][]float32
}

// NewStudent builds the student cfg describes with PyTorch's default
// initialization drawn from rand.NewPCG(seed, initStream), and the
// identity standardization.
func NewStudent(cfg Config, seed uint64) (*Student, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	s := &Student{Config: cfg, Standardize: NewStandardize(cfg.Inputs)}
	if cfg.Type == "cnn" {
		if err := s.buildCNN(seed); err != nil {
			return nil, err
		}
		s.allocActs()
		return s, nil
	}
	prev := cfg.Inputs
	var inits []func(*rand.Rand)
	for h, width := range cfg.Hidden {
		act := cfg.Activation
		if cfg.LayerNorm {
			act = Identity
		}
		fc := NewLinear(fmt.Sprintf("fc%d", h+1), prev, width, act)
		s.Layers = append(s.Layers, fc)
		inits = append(inits, fc.Init)
		if cfg.LayerNorm {
			ln := NewLayerNorm(fmt.Sprintf("ln%d", h+1), width, cfg.Activation)
			s.Layers = append(s.Layers, ln)
			inits = append(inits, func(*rand.Rand) { ln.Init() })
		}
		s.blocks = append(s.blocks, len(s.Layers))
		if cfg.Dropout > 0 {
			s.Layers = append(s.Layers, NewDropout(width, cfg.Dropout))
		}
		prev = width
	}
	out := NewLinear(fmt.Sprintf("fc%d", len(cfg.Hidden)+1), prev, cfg.Classes, Identity)
	s.Layers = append(s.Layers, out)
	inits = append(inits, out.Init)
	var list []*Param
	for _, l := range s.Layers {
		list = append(list, l.Params()...)
	}
	s.Params = NewParams(list...)
	rng := rand.New(rand.NewPCG(seed, initStream))
	for _, f := range inits {
		f(rng)
	}
	s.allocActs()
	return s, nil
}

// allocActs makes the per-layer activation and gradient slots.
func (s *Student) allocActs() {
	m := len(s.Layers)
	s.acts, s.grads = make([]Mat, m+1), make([]Mat, m+1)
	s.buf, s.gbuf = make([][]float32, m+1), make([][]float32, m+1)
}

// RNG stream ids for rand.NewPCG(seed, stream): initialization, and per
// epoch e the shuffle (e<<8|1) and dropout (e<<8|2) streams.
const initStream = 0x696e6974 // "init"

// shuffleStream and dropoutStream return the PCG stream of epoch e.
func shuffleStream(e int) uint64 { return uint64(e)<<8 | 1 }
func dropoutStream(e int) uint64 { return uint64(e)<<8 | 2 }

// SetTraining switches Dropout layers between training (masks drawn from
// rng) and evaluation.
func (s *Student) SetTraining(training bool, rng *rand.Rand) {
	s.training = training
	for _, l := range s.Layers {
		if st, ok := l.(Stochastic); ok {
			st.SetTraining(training, rng)
		}
	}
}

// Tensors returns every tensor a checkpoint holds for the student, in
// order: input_mean, input_std, the parameters, then the Buffers.
func (s *Student) Tensors() []*Param {
	return append(append([]*Param{s.Standardize.Mean, s.Standardize.Std}, s.Params.List...), s.Buffers...)
}

// HiddenWidth returns the width of hidden block h (1-based).
func (s *Student) HiddenWidth(h int) int { return s.Config.Hidden[h-1] }

// Hidden returns hidden block h's output (1-based) of the last Forward,
// valid until the next Forward.
func (s *Student) Hidden(h int) Mat { return s.acts[s.blocks[h-1]] }

func sized(buf *[]float32, rows, cols int) Mat {
	*buf = grow(*buf, rows*cols)
	return Mat{Rows: rows, Cols: cols, Data: *buf}
}

// Forward runs the student on raw inputs x [n, Inputs] and returns the
// logits [n, Classes], valid until the next Forward. It panics if x.Cols
// != Inputs.
func (s *Student) Forward(x Mat) Mat {
	if x.Cols != s.Config.Inputs {
		panic(fmt.Sprintf("train: Student.Forward: input has %d values per sample, want %d", x.Cols, s.Config.Inputs))
	}
	n := x.Rows
	if s.training {
		for _, p := range s.tracked {
			p.Data[0]++
		}
	}
	s.acts[0] = sized(&s.buf[0], n, x.Cols)
	s.Standardize.Forward(s.acts[0], x)
	for i, l := range s.Layers {
		if d, ok := l.(*Dropout); ok && !d.Active() {
			s.acts[i+1] = s.acts[i] // identity: no copy
			continue
		}
		s.acts[i+1] = sized(&s.buf[i+1], n, l.OutSize())
		l.Forward(s.acts[i+1], s.acts[i])
	}
	return s.acts[len(s.Layers)]
}

// Backward propagates dlogits = dLoss/dlogits [n, Classes] of the last
// Forward (the slice is overwritten) and sets s.Params.Grad. hidden, if
// not nil, holds extra gradients for hidden block outputs: hidden[h−1],
// when it has data, is added to dLoss/d(block h output) (feature
// distillation). The input gradient is not computed.
func (s *Student) Backward(dlogits Mat, hidden []Mat) {
	m := len(s.Layers)
	n := dlogits.Rows
	s.grads[m] = dlogits
	for i := m - 1; i >= 0; i-- {
		for h, b := range s.blocks {
			if b == i+1 && h < len(hidden) && hidden[h].Data != nil {
				g, e := s.grads[i+1], hidden[h]
				for j, v := range e.Data[:n*g.Cols] {
					g.Data[j] += v
				}
			}
		}
		l := s.Layers[i]
		if d, ok := l.(*Dropout); ok && !d.Active() {
			s.grads[i] = s.grads[i+1]
			continue
		}
		var dx Mat
		if i > 0 {
			dx = sized(&s.gbuf[i], n, l.InSize())
		}
		s.grads[i] = dx
		l.Backward(dx, s.grads[i+1])
	}
}

// ParseFeature parses a feature-distillation pair
// "TEACHER_HIDDEN=STUDENT_LAYER[:WEIGHT]" (the --feature flag), e.g.
// "hidden=1", "conv2/out=h2:0.5". The teacher name is everything before the
// last '='; the layer is a hidden block as ParseLayer takes it, checked
// against hidden blocks; the weight, default 1, must be positive.
func ParseFeature(s string, hidden int) (FeaturePair, error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 || i == len(s)-1 {
		return FeaturePair{}, fmt.Errorf("train: feature %q: want TEACHER_HIDDEN=STUDENT_LAYER[:WEIGHT]", s)
	}
	name, rest := s[:i], s[i+1:]
	layer, weight, hasWeight := strings.Cut(rest, ":")
	h, err := ParseLayer(layer, hidden)
	if err != nil {
		return FeaturePair{}, fmt.Errorf("train: feature %q: %w", s, err)
	}
	w, ok := pairWeight(weight, hasWeight)
	if !ok {
		return FeaturePair{}, fmt.Errorf("train: feature %q: weight %q, want a positive number", s, weight)
	}
	return FeaturePair{Teacher: name, Layer: h, Weight: w}, nil
}

// TrainFlops returns the floating-point operations of the matrix products
// in one training step, per sample: for every Linear layer 2·in·out (for a
// Conv2d 2·F·Ho·Wo·(C/G)·Kh·Kw) for the forward product, as much for the weight gradient, and as much for the
// input gradient except in the first layer, which needs none.
func (s *Student) TrainFlops() float64 {
	var f float64
	first := true
	for _, l := range s.Layers {
		var mm float64
		switch l := l.(type) {
		case *Linear:
			mm = 2 * float64(l.In) * float64(l.Out)
		case *Conv2d:
			mm = 2 * float64(l.F*l.Ho*l.Wo) * float64(l.C/l.Groups*l.Kh*l.Kw)
		default:
			continue
		}
		f += 2 * mm
		if !first {
			f += mm
		}
		first = false
	}
	return f
}

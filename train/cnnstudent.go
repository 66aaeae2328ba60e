package train

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// normalizeCNN validates a cnn Config (Type "cnn") and expands a preset
// Arch to its layer list, so the checkpoint records the network itself.
func (c Config) normalizeCNN() (Config, error) {
	if strings.TrimSpace(strings.TrimPrefix(c.Arch, "cnn:")) == "" {
		return c, fmt.Errorf("train: a cnn student needs its layers (--arch SPEC or a preset: lenet5, tiny, dws)")
	}
	if len(c.Hidden) > 0 || c.Dropout != 0 || c.LayerNorm {
		return c, fmt.Errorf("train: hidden widths, dropout and layernorm are mlp settings; a cnn student is described by its --arch")
	}
	if c.Inputs < 1 || c.Classes < 1 {
		return c, fmt.Errorf("train: student with %d inputs and %d classes", c.Inputs, c.Classes)
	}
	ch, h, w, err := imageShape(c.InputShape, c.Inputs)
	if err != nil {
		return c, err
	}
	n, err := NewCNN(c.Arch, ch, h, w, c.Classes)
	if err != nil {
		return c, fmt.Errorf("train: %w", err)
	}
	params := 0
	for _, p := range n.Params() {
		params += p.Size()
	}
	if params > maxParams {
		return c, fmt.Errorf("train: student has more than %d parameters", maxParams)
	}
	c.Arch = n.Spec
	return c, nil
}

// imageShape returns the [C, H, W] of a per-sample input shape [C, H, W]
// or [H, W] (one channel) with inputs values.
func imageShape(shape []int, inputs int) (c, h, w int, err error) {
	n := 1
	for _, d := range shape {
		if d < 1 || n > 1<<40/d {
			return 0, 0, 0, fmt.Errorf("train: input shape %v", shape)
		}
		n *= d
	}
	switch {
	case len(shape) == 3 && n == inputs:
		return shape[0], shape[1], shape[2], nil
	case len(shape) == 2 && n == inputs:
		return 1, shape[0], shape[1], nil
	case len(shape) == 0:
		return 0, 0, 0, fmt.Errorf("train: a cnn student needs image inputs of shape [C,H,W], and the input's shape is not known (%d values per sample); extract with a teacher whose input has a [N,C,H,W] shape", inputs)
	}
	return 0, 0, 0, fmt.Errorf("train: a cnn student needs image inputs of shape [C,H,W] or [H,W]; the input has shape %v (%d values); train an mlp student (--student mlp) on it", shape, inputs)
}

// buildCNN makes s.Layers the network of s.Config.Arch, initialized from
// rand.NewPCG(seed, initStream) in layer order, with every BatchNorm's
// running statistics and batch count as Buffers named as in torch's
// state_dict.
func (s *Student) buildCNN(seed uint64) error {
	cfg := s.Config
	c, h, w, err := imageShape(cfg.InputShape, cfg.Inputs)
	if err != nil {
		return err
	}
	n, err := NewCNN(cfg.Arch, c, h, w, cfg.Classes)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	s.Layers = n.Layers
	s.Params = NewParams(n.Params()...)
	n.Init(rand.New(rand.NewPCG(seed, initStream)))
	for _, l := range n.Layers {
		b, ok := l.(*BatchNorm2d)
		if !ok {
			continue
		}
		name := strings.TrimSuffix(b.Gamma.Name, ".weight")
		tracked := &Param{Name: name + ".num_batches_tracked", Shape: []int{}, Data: make([]float32, 1)}
		s.Buffers = append(s.Buffers,
			&Param{Name: name + ".running_mean", Shape: []int{b.C}, Data: b.RunningMean},
			&Param{Name: name + ".running_var", Shape: []int{b.C}, Data: b.RunningVar},
			tracked)
		s.tracked = append(s.tracked, tracked)
	}
	return nil
}

// cnnValues is the number of values model.safetensors holds for a
// normalized cnn Config: the standardization, the parameters and the
// BatchNorm buffers.
func cnnValues(cfg Config) int {
	c, h, w, err := imageShape(cfg.InputShape, cfg.Inputs)
	if err != nil {
		return 0
	}
	n, err := NewCNN(cfg.Arch, c, h, w, cfg.Classes)
	if err != nil {
		return 0
	}
	v := 2 * cfg.Inputs
	for _, p := range n.Params() {
		v += p.Size()
	}
	for _, l := range n.Layers {
		if b, ok := l.(*BatchNorm2d); ok {
			v += 2*b.C + 1
		}
	}
	return v
}

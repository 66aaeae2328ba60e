//go:build cgo

package extract

import "fmt"

// Probe runs the model once on an all-zero batch (of the model's fixed
// batch size, or 1) with every numeric tensor fetched, and returns the
// model's tensors (inputs, intermediates, outputs) with the shapes
// onnxruntime produced. Tensors that cannot be fetched (sequences, maps,
// unknown types) keep their declared shape.
func (rt *Runtime) Probe(m *Model, opts SessionOptions) ([]TensorInfo, error) {
	batch := m.FixedBatch()
	if batch == 0 {
		batch = 1
	}
	var all []TensorInfo
	all = append(all, m.Inputs()...)
	all = append(all, m.Intermediates()...)
	all = append(all, m.Outputs()...)
	var names []string
	idx := map[string]int{}
	for i, t := range all {
		if i >= len(m.Inputs()) && t.Kind == "tensor" && isNumeric(t.Elem) {
			idx[t.Name] = len(names)
			names = append(names, t.Name)
		}
	}
	data, fetch, err := m.WithOutputs(names)
	if err != nil {
		return nil, err
	}
	in, err := zeroInputs(m, batch)
	if err != nil {
		return nil, err
	}
	var inNames []string
	for _, t := range m.Inputs() {
		inNames = append(inNames, t.Name)
	}
	s, err := rt.NewSession(data, inNames, fetch, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	outs, err := s.Run(in)
	if err != nil {
		return nil, fmt.Errorf("probe run with zeros of batch %d: %w", batch, err)
	}
	for i := range all {
		if j, ok := idx[all[i].Name]; ok && outs[j].Shape != nil {
			all[i].Shape = outs[j].Shape
		}
	}
	return all, nil
}

// zeroInputs makes an all-zero batch for every model input; unknown
// non-batch dimensions become 1.
func zeroInputs(m *Model, batch int64) ([]Tensor, error) {
	var res []Tensor
	for _, t := range m.Inputs() {
		if t.Shape == nil {
			return nil, fmt.Errorf("%w: input %q has no declared shape", ErrModel, t.Name)
		}
		shape := append([]int64(nil), t.Shape...)
		n := int64(1)
		for i := range shape {
			if i == 0 {
				shape[0] = batch
			} else if shape[i] <= 0 {
				shape[i] = 1
			}
			n *= shape[i]
		}
		res = append(res, Tensor{Shape: shape, Data: make([]float32, n)})
	}
	return res, nil
}

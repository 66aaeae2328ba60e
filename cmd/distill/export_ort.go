//go:build cgo

package main

import "github.com/distill-ml/distill/extract"

// exportRunner runs an ONNX model with one float32 input through onnxruntime.
type exportRunner struct {
	rt   *extract.Runtime
	sess *extract.Session
}

// newExportRunner loads onnxruntime (lib may be empty: see
// extract.LocateLibrary) and a session for model.
func newExportRunner(lib string, model []byte, input string, outputs []string) (*exportRunner, error) {
	rt, err := extract.NewRuntime(lib)
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(model, []string{input}, outputs, extract.SessionOptions{})
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &exportRunner{rt: rt, sess: sess}, nil
}

// Run feeds x with the given shape and returns the outputs' data.
func (m *exportRunner) Run(shape []int64, x []float32) ([][]float32, error) {
	out, err := m.sess.Run([]extract.Tensor{{Shape: shape, Data: x}})
	if err != nil {
		return nil, err
	}
	data := make([][]float32, len(out))
	for i, t := range out {
		data[i] = t.Data
	}
	return data, nil
}

// Close releases the session and the runtime.
func (m *exportRunner) Close() error {
	err := m.sess.Close()
	if err2 := m.rt.Close(); err == nil {
		err = err2
	}
	return err
}

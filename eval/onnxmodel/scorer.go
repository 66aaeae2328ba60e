//go:build cgo

package onnxmodel

import (
	"fmt"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/extract"
)

// scorer runs an ONNX model through onnxruntime. A model with a fixed
// batch size runs at that size, the last run padded with zeros.
type scorer struct {
	rt    *extract.Runtime
	sess  *extract.Session
	src   extract.ScoreSource
	shape []int64 // per-sample input shape
	width int     // values per sample
	fixed int     // the model's fixed batch size, 0 = dynamic
	out   []float32
	pad   []float32
}

// newScorer loads onnxruntime (lib may be empty: see
// extract.LocateLibrary) and a session feeding input and fetching the
// score tensor src.Tensor, with threads intra-op threads (0 = onnxruntime's
// default).
func newScorer(lib string, m *extract.Model, input string, src extract.ScoreSource, shape []int64, threads int) (eval.Scorer, error) {
	data, fetch, err := m.WithOutputs([]string{src.Tensor})
	if err != nil {
		return nil, err
	}
	rt, err := extract.NewRuntime(lib)
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(data, []string{input}, fetch, extract.SessionOptions{Threads: threads})
	if err != nil {
		rt.Close()
		return nil, err
	}
	w := 1
	for _, d := range shape {
		w *= int(d)
	}
	return &scorer{rt: rt, sess: sess, src: src, shape: shape, width: w, fixed: int(m.FixedBatch())}, nil
}

func (s *scorer) RunBatch(n int) int {
	if s.fixed > 0 {
		return s.fixed
	}
	return n
}

func (s *scorer) Score(x []float32, n int) ([]float32, error) {
	if len(x) != n*s.width {
		return nil, fmt.Errorf("eval: %d input values for %d rows of %d", len(x), n, s.width)
	}
	s.out = s.out[:0]
	step := n
	if s.fixed > 0 {
		step = s.fixed
	}
	for lo := 0; lo < n; lo += step {
		m := min(step, n-lo)
		feed, rows := x[lo*s.width:(lo+m)*s.width], m
		if s.fixed > 0 && m < s.fixed {
			s.pad = append(s.pad[:0], feed...)
			s.pad = append(s.pad, make([]float32, (s.fixed-m)*s.width)...)
			feed, rows = s.pad, s.fixed
		}
		out, err := s.sess.Run([]extract.Tensor{{Shape: append([]int64{int64(rows)}, s.shape...), Data: feed}})
		if err != nil {
			return nil, err
		}
		sc := out[0].Data
		if len(sc)%rows != 0 || len(sc)/rows < 2 {
			return nil, fmt.Errorf("%w: score tensor %q has shape %v for %d rows: not class scores; name them with --output",
				extract.ErrModel, s.src.Tensor, out[0].Shape, rows)
		}
		s.out = append(s.out, sc[:len(sc)/rows*m]...)
	}
	C := len(s.out) / max(n, 1)
	if s.src.Kind == "" && n > 0 {
		s.src.Kind = extract.DetectKind(s.out, C)
	}
	if s.src.Kind == extract.Probs {
		extract.LogProbsInPlace(s.out)
	}
	return s.out, nil
}

func (s *scorer) ScoreKind() string {
	if s.src.Kind == extract.Probs {
		return string(extract.LogProbs)
	}
	return string(s.src.Kind)
}

// Close releases the session and the runtime.
func (s *scorer) Close() error {
	err := s.sess.Close()
	if err2 := s.rt.Close(); err == nil {
		err = err2
	}
	return err
}

// Runner runs an ONNX model with one float32 input through onnxruntime
// and returns all its outputs: an eval.Runner.
type Runner struct {
	rt   *extract.Runtime
	sess *extract.Session
}

// NewRunner loads onnxruntime (lib may be empty: see
// extract.LocateLibrary) and a session of the serialized model feeding
// input and fetching outputs, in onnxruntime's default threading.
func NewRunner(lib string, model []byte, input string, outputs []string) (*Runner, error) {
	rt, err := extract.NewRuntime(lib)
	if err != nil {
		return nil, err
	}
	sess, err := rt.NewSession(model, []string{input}, outputs, extract.SessionOptions{})
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &Runner{rt: rt, sess: sess}, nil
}

// Run feeds x with the given shape (batch axis first) and returns the
// outputs' values, valid until the next call.
func (m *Runner) Run(shape []int64, x []float32) ([][]float32, error) {
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
func (m *Runner) Close() error {
	err := m.sess.Close()
	if err2 := m.rt.Close(); err == nil {
		err = err2
	}
	return err
}

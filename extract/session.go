//go:build cgo

package extract

import (
	"fmt"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Tensor is a dense float32 tensor with its full shape, batch dimension
// first.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Session runs a model prepared by Model.WithOutputs: every input and every
// fetched output is float32.
type Session struct {
	sess    *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

// NewSession creates an onnxruntime session from model bytes (from
// Model.WithOutputs), feeding the named inputs and fetching the named
// outputs.
func (rt *Runtime) NewSession(model []byte, inputs, outputs []string, opts SessionOptions) (*Session, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("extract: session options: %w", err)
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("extract: --threads %d: %w", opts.Threads, err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return nil, err
		}
	}
	if opts.quiet {
		if err := so.SetLogSeverityLevel(ort.LoggingLevelFatal); err != nil {
			return nil, err
		}
	}
	if err := appendProvider(so, opts.Provider); err != nil {
		return nil, err
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("%w: onnxruntime cannot load it: %v", ErrModel, err)
	}
	return &Session{sess: sess, inputs: inputs, outputs: outputs}, nil
}

func appendProvider(so *ort.SessionOptions, p string) error {
	var err error
	switch strings.ToLower(p) {
	case "", "cpu":
		return nil
	case "cuda":
		var o *ort.CUDAProviderOptions
		if o, err = ort.NewCUDAProviderOptions(); err == nil {
			defer o.Destroy()
			err = so.AppendExecutionProviderCUDA(o)
		}
	case "tensorrt":
		var o *ort.TensorRTProviderOptions
		if o, err = ort.NewTensorRTProviderOptions(); err == nil {
			defer o.Destroy()
			err = so.AppendExecutionProviderTensorRT(o)
		}
	case "coreml":
		err = so.AppendExecutionProviderCoreMLV2(map[string]string{})
	default:
		return fmt.Errorf("extract: unknown --provider %q (want cpu, cuda, tensorrt or coreml)", p)
	}
	if err != nil {
		return fmt.Errorf("extract: execution provider %s is not available in this onnxruntime (%v); the library `make setup` installs is CPU-only: pass --ort-lib to an onnxruntime %s build with %s support, or use --provider cpu",
			p, err, RuntimeVersion, p)
	}
	return nil
}

// Run feeds one batch (one Tensor per input, in NewSession's order) and
// returns the outputs in NewSession's order. The returned data is owned by
// the caller.
func (s *Session) Run(in []Tensor) ([]Tensor, error) {
	if len(in) != len(s.inputs) {
		return nil, fmt.Errorf("extract: %d input tensors for %d model inputs", len(in), len(s.inputs))
	}
	values := make([]ort.Value, len(in))
	defer func() {
		for _, v := range values {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range in {
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("extract: input %q shape %v: %w", s.inputs[i], t.Shape, err)
		}
		values[i] = v
	}
	outs := make([]ort.Value, len(s.outputs))
	if err := s.sess.Run(values, outs); err != nil {
		return nil, fmt.Errorf("extract: onnxruntime run: %w", err)
	}
	res := make([]Tensor, len(outs))
	var firstErr error
	for i, o := range outs {
		if o == nil {
			continue
		}
		if x, ok := o.(*ort.Tensor[float32]); ok {
			// The data is a Go-owned copy; it outlives Destroy.
			res[i] = Tensor{Shape: []int64(x.GetShape()), Data: x.GetData()}
		} else if firstErr == nil {
			firstErr = fmt.Errorf("extract: output %q is not a float32 tensor", s.outputs[i])
		}
		o.Destroy()
	}
	return res, firstErr
}

// Close releases the session.
func (s *Session) Close() error {
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}

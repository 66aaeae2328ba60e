//go:build !cgo

package extract

import (
	"context"
	"fmt"
)

// Runtime owns the process's onnxruntime environment. This build has no cgo,
// so it cannot load onnxruntime; NewRuntime always fails.
type Runtime struct {
	Lib, Source, Version string
}

// NewRuntime fails in builds without cgo: onnxruntime is loaded through cgo.
func NewRuntime(lib string) (*Runtime, error) {
	return nil, fmt.Errorf("%w: this distill was built with CGO_ENABLED=0; rebuild with cgo (a C compiler) to run teachers", ErrNoRuntime)
}

// Close does nothing.
func (r *Runtime) Close() error { return nil }

// Run fails: see NewRuntime.
func (rt *Runtime) Run(ctx context.Context, opts Options) (*Result, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNoRuntime)
}

// Probe fails: see NewRuntime.
func (rt *Runtime) Probe(m *Model, opts SessionOptions) ([]TensorInfo, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNoRuntime)
}

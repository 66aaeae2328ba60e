//go:build !cgo

package onnxlm

import (
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/lm"
)

// newModel fails: onnxruntime is loaded through cgo, and extract.NewRuntime
// says so (wrapping extract.ErrNoRuntime).
func newModel(g *graph, m *extract.Model, o *Options) (lm.Model, error) {
	rt, err := extract.NewRuntime(o.Lib)
	if err == nil {
		rt.Close()
	}
	return nil, err
}

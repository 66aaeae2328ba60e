//go:build !cgo

package onnxmodel

import (
	"errors"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/extract"
)

// noRuntime returns extract.NewRuntime's explanation of why onnxruntime
// cannot be loaded: it is loaded through cgo.
func noRuntime(lib string) error {
	_, err := extract.NewRuntime(lib)
	if err == nil {
		err = errors.New("onnxruntime unavailable")
	}
	return err
}

// newScorer fails: see noRuntime.
func newScorer(lib string, m *extract.Model, input string, src extract.ScoreSource, shape []int64, threads int) (eval.Scorer, error) {
	return nil, noRuntime(lib)
}

// Runner cannot exist without cgo.
type Runner struct{}

// NewRunner fails: see noRuntime.
func NewRunner(lib string, model []byte, input string, outputs []string) (*Runner, error) {
	return nil, noRuntime(lib)
}

// Run returns errors.ErrUnsupported.
func (m *Runner) Run(shape []int64, x []float32) ([][]float32, error) {
	return nil, errors.ErrUnsupported
}

// Close does nothing.
func (m *Runner) Close() error { return nil }

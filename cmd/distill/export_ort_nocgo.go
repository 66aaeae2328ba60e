//go:build !cgo

package main

import (
	"errors"

	"github.com/distill-ml/distill/extract"
)

// exportRunner cannot exist without cgo: onnxruntime is loaded through it.
type exportRunner struct{}

// newExportRunner fails with extract.NewRuntime's explanation.
func newExportRunner(lib string, model []byte, input string, outputs []string) (*exportRunner, error) {
	_, err := extract.NewRuntime(lib)
	if err == nil {
		err = errors.New("onnxruntime unavailable")
	}
	return nil, err
}

func (m *exportRunner) Run(shape []int64, x []float32) ([][]float32, error) {
	return nil, errors.ErrUnsupported
}
func (m *exportRunner) Close() error { return nil }

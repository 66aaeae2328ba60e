//go:build !cgo

package main

import (
	"errors"

	"github.com/distill-ml/distill/extract"
)

// newONNXScorer fails with extract.NewRuntime's explanation: onnxruntime is
// loaded through cgo.
func newONNXScorer(lib string, m *extract.Model, input string, src extract.ScoreSource, shape []int64, threads int) (evalScorer, error) {
	_, err := extract.NewRuntime(lib)
	if err == nil {
		err = errors.New("onnxruntime unavailable")
	}
	return nil, err
}

package eval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"

	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
)

// A Scorer scores batches of model inputs.
type Scorer interface {
	// Score returns the class scores, logits or log-probabilities (softmax
	// gives the model's distribution either way), of the n rows of x
	// [n, per-sample shape]. The result is valid until the next call.
	Score(x []float32, n int) ([]float32, error)
	// ScoreKind says what Score returns: "logits" or "log_probs" (the log
	// of a model's probabilities); it may be decided by the first Score.
	ScoreKind() string
	// RunBatch is the batch size the model really runs for a request of n
	// rows: n, or a fixed batch size it pads to.
	RunBatch(n int) int
	Close() error
}

// A Model is a model to evaluate, before it is bound to an input shape:
// OpenCheckpoint makes one of a student checkpoint, package
// eval/onnxscorer one of an ONNX file.
type Model struct {
	Info ModelInfo
	// Input is the data column the model takes by default: the ONNX
	// input's name or the checkpoint's recorded input.
	Input string
	// Shape is the per-sample input shape the model declares (-1 for an
	// unknown dimension), nil when unknown.
	Shape []int64
	// Open creates the scorer for inputs of the given per-sample shape.
	Open func(shape []int64) (Scorer, error)
}

// OpenCheckpoint loads a student checkpoint directory (distill train) as a
// Model run by the Go forward pass in evaluation mode, its matrix products
// on threads goroutines (0 = all cores; see train.SetThreads).
func OpenCheckpoint(path string, threads int) (*Model, error) {
	c, err := train.Load(path)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(path, train.ModelFile)
	size, sum, err := FileSHA256(file)
	if err != nil {
		return nil, err
	}
	s := c.Student
	var params int64
	for _, p := range s.Tensors() {
		params += int64(p.Size())
	}
	cfg := s.Config
	m := &Model{
		Info: ModelInfo{
			Path: path, Kind: "checkpoint", File: file, FileBytes: size, SHA256: sum, Params: params,
			Input: c.Info.Input, ScoreKind: "logits", Architecture: DescribeStudent(cfg),
			Training: TrainingOf(c.Info.Training.Alpha, c.Info.Training.Temperature, c.Info.Epoch),
		},
		Input: c.Info.Input,
		Shape: []int64{int64(cfg.Inputs)},
	}
	if len(cfg.InputShape) > 0 {
		m.Shape = make([]int64, len(cfg.InputShape))
		for i, d := range cfg.InputShape {
			m.Shape[i] = int64(d)
		}
	}
	m.Open = func(shape []int64) (Scorer, error) {
		train.SetThreads(threads)
		s.SetTraining(false, nil)
		return &StudentScorer{S: s}, nil
	}
	return m, nil
}

// StudentScorer runs a student's forward pass as a Scorer. The student
// should be in evaluation mode (Student.SetTraining(false, nil)).
type StudentScorer struct{ S *train.Student }

// Score implements Scorer: the student's logits.
func (m *StudentScorer) Score(x []float32, n int) ([]float32, error) {
	in := m.S.Config.Inputs
	if len(x) != n*in {
		return nil, fmt.Errorf("eval: %d input values for %d rows of %d", len(x), n, in)
	}
	return m.S.Forward(train.Mat{Rows: n, Cols: in, Data: x}).Data, nil
}

// ScoreKind implements Scorer: "logits".
func (m *StudentScorer) ScoreKind() string { return "logits" }

// RunBatch implements Scorer: a student runs at any batch size.
func (m *StudentScorer) RunBatch(n int) int { return n }

// Close implements Scorer; there is nothing to release.
func (m *StudentScorer) Close() error { return nil }

// FileSHA256 returns the size and hex sha256 of the file at the location
// path (a path or a URL; package internal/store), streamed.
func FileSHA256(path string) (int64, string, error) {
	f, err := store.Open(context.Background(), path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

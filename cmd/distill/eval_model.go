package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
)

// evalScorer scores batches of model inputs.
type evalScorer interface {
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

// evalModel is a model to evaluate: an ONNX file or a student checkpoint.
type evalModel struct {
	info evalModelInfo
	// input is the data column the model takes by default: the ONNX
	// input's name or the checkpoint's recorded input.
	input string
	// shape is the per-sample input shape the model declares (-1 for an
	// unknown dimension), nil when unknown.
	shape []int64
	// open creates the scorer for inputs of per-sample shape.
	open func(shape []int64) (evalScorer, error)
}

// openEvalModel loads path: a directory is a student checkpoint (distill
// train), anything else an ONNX model run through onnxruntime.
func openEvalModel(path string, o *evalOptions) (*evalModel, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if st.IsDir() {
		return openCheckpointModel(path, o)
	}
	return openONNXModel(path, o)
}

func openCheckpointModel(path string, o *evalOptions) (*evalModel, error) {
	c, err := train.Load(path)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(path, train.ModelFile)
	size, sum, err := fileSizeSHA256(file)
	if err != nil {
		return nil, err
	}
	s := c.Student
	var params int64
	for _, p := range s.Tensors() {
		params += int64(p.Size())
	}
	cfg := s.Config
	em := &evalModel{
		info: evalModelInfo{
			Path: path, Kind: "checkpoint", File: file, FileBytes: size, SHA256: sum, Params: params,
			Input: c.Info.Input, ScoreKind: "logits", Architecture: describeStudent(cfg),
			Training: trainingOf(c.Info.Training.Alpha, c.Info.Training.Temperature, c.Info.Epoch),
		},
		input: c.Info.Input,
		shape: []int64{int64(cfg.Inputs)},
	}
	if len(cfg.InputShape) > 0 {
		em.shape = make([]int64, len(cfg.InputShape))
		for i, d := range cfg.InputShape {
			em.shape[i] = int64(d)
		}
	}
	em.open = func(shape []int64) (evalScorer, error) {
		train.SetThreads(o.Threads)
		s.SetTraining(false, nil)
		return &studentScorer{s: s}, nil
	}
	return em, nil
}

// describeStudent is a one-line architecture, e.g. "mlp 784-800-800-10 relu".
func describeStudent(c train.Config) string {
	w := []string{strconv.Itoa(c.Inputs)}
	for _, h := range c.Hidden {
		w = append(w, strconv.Itoa(h))
	}
	w = append(w, strconv.Itoa(c.Classes))
	s := fmt.Sprintf("%s %s %s", orDefault(c.Type, "mlp"), strings.Join(w, "-"), orDefault(string(c.Activation), "relu"))
	if c.LayerNorm {
		s += " layernorm"
	}
	if c.Dropout > 0 {
		s += fmt.Sprintf(" dropout %g", c.Dropout)
	}
	return s
}

// trainingOf describes how a student was trained; alpha 0 means on the
// labels only (the hard-label baseline), alpha > 0 distillation.
func trainingOf(alpha, temperature float64, epochs int) *evalTraining {
	t := &evalTraining{Alpha: alpha, Temperature: temperature, Epochs: epochs, Method: "kd"}
	if alpha == 0 {
		t.Method = "labels"
	}
	return t
}

// studentScorer runs a checkpoint's student in evaluation mode.
type studentScorer struct{ s *train.Student }

func (m *studentScorer) Score(x []float32, n int) ([]float32, error) {
	in := m.s.Config.Inputs
	if len(x) != n*in {
		return nil, fmt.Errorf("eval: %d input values for %d rows of %d", len(x), n, in)
	}
	return m.s.Forward(train.Mat{Rows: n, Cols: in, Data: x}).Data, nil
}
func (m *studentScorer) ScoreKind() string  { return "logits" }
func (m *studentScorer) RunBatch(n int) int { return n }
func (m *studentScorer) Close() error       { return nil }

func openONNXModel(path string, o *evalOptions) (*evalModel, error) {
	m, err := extract.LoadModel(path)
	if err != nil {
		return nil, err
	}
	ins := m.Inputs()
	if len(ins) != 1 {
		var names []string
		for _, in := range ins {
			names = append(names, in.Name)
		}
		return nil, fmt.Errorf("%s has %d inputs (%s); eval feeds models with one input", path, len(ins), strings.Join(names, ", "))
	}
	src, err := m.ChooseScores(o.Output)
	if err != nil {
		return nil, err
	}
	kind, err := extract.ParseScoreKind(o.Scores)
	if err != nil {
		return nil, usageError("--scores: %v", err)
	}
	if kind != "" {
		src.Kind = kind
	}
	in := ins[0]
	em := &evalModel{
		info: evalModelInfo{
			Path: path, Kind: "onnx", File: path, FileBytes: m.Size, SHA256: m.SHA256, Params: onnxParams(m.Proto),
			Input: in.Name, ScoreTensor: src.Tensor, Producer: m.Producer,
		},
		input: in.Name,
	}
	if len(in.Shape) > 0 {
		em.shape = in.Shape[1:]
	}
	if o.reshape != nil {
		em.shape = o.reshape
	}
	meta := map[string]string{}
	for _, p := range m.Proto.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	if a, err := strconv.ParseFloat(meta[export.MetaAlpha], 64); err == nil {
		t, _ := strconv.ParseFloat(meta[export.MetaTemperature], 64)
		e, _ := strconv.Atoi(meta[export.MetaEpochs])
		em.info.Training = trainingOf(a, t, e)
	}
	em.open = func(shape []int64) (evalScorer, error) {
		return newONNXScorer(o.Lib, m, in.Name, src, shape, o.Threads)
	}
	return em, nil
}

// onnxParams counts the values of a model's weights: its initializers and
// Constant tensors, except int64 ones (shapes, axes, indices).
func onnxParams(mp *onnxpb.ModelProto) int64 {
	count := func(t *onnxpb.TensorProto) int64 {
		if t == nil || t.GetDataType() == int32(onnxpb.TensorProto_INT64) {
			return 0
		}
		n := int64(1)
		for _, d := range t.GetDims() {
			n *= d
		}
		return n
	}
	var n int64
	g := mp.GetGraph()
	for _, t := range g.GetInitializer() {
		n += count(t)
	}
	for _, node := range g.GetNode() {
		if node.GetOpType() == "Constant" {
			for _, a := range node.GetAttribute() {
				n += count(a.GetT())
			}
		}
	}
	return n
}

func fileSizeSHA256(path string) (int64, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(data)
	return int64(len(data)), hex.EncodeToString(sum[:]), nil
}

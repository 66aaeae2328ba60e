package onnxmodel

import (
	"fmt"
	"strings"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/internal/onnxpb"
)

// Options are the settings of Open. The zero value is usable.
type Options struct {
	// Lib is the onnxruntime shared library; "" = extract.LocateLibrary's
	// search.
	Lib string
	// Threads is onnxruntime's intra-op thread count; 0 = its default.
	Threads int
	// Output names the tensor holding the class scores; "" = chosen as
	// extract chooses it (extract.Model.ChooseScores).
	Output string
	// Scores says what that tensor holds; "" = detected from the values.
	Scores extract.ScoreKind
	// Reshape is the per-sample input shape to feed, overriding the
	// model's declared one; nil = the model's.
	Reshape []int64
}

// Open loads the ONNX model at path as an eval.Model with one input. Its
// parameter count is Params'; a student exported by distill export
// carries its training method in the metadata (export.MetaAlpha, ...).
// The scorer loads onnxruntime only when the model is opened for a shape.
func Open(path string, o *Options) (*eval.Model, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
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
	src, err := m.ChooseScores(opts.Output)
	if err != nil {
		return nil, err
	}
	if opts.Scores != "" {
		src.Kind = opts.Scores
	}
	in := ins[0]
	em := &eval.Model{
		Info: eval.ModelInfo{
			Path: path, Kind: "onnx", File: path, FileBytes: m.Size, SHA256: m.SHA256, Params: Params(m.Proto),
			Input: in.Name, ScoreTensor: src.Tensor, Producer: m.Producer,
		},
		Input: in.Name,
	}
	if len(in.Shape) > 0 {
		em.Shape = in.Shape[1:]
	}
	if opts.Reshape != nil {
		em.Shape = opts.Reshape
	}
	meta := map[string]string{}
	for _, p := range m.Proto.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	if a, t, e, ok := export.TrainingMeta(meta); ok {
		em.Info.Training = eval.TrainingOf(a, t, e)
	}
	em.Open = func(shape []int64) (eval.Scorer, error) {
		return newScorer(opts.Lib, m, in.Name, src, shape, opts.Threads)
	}
	return em, nil
}

// Params counts the values of a model's weights: its initializers and
// Constant tensors, except int64 ones (shapes, axes, indices). See
// extract.ParamCount.
func Params(mp *onnxpb.ModelProto) int64 { return extract.ParamCount(mp) }

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/eval"
	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/internal/progress"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
	"github.com/distill-ml/distill/train"
)

// Bounds of distill eval's language-model flags.
const (
	maxDecodeSteps = 1 << 16
	maxDecodeBatch = 4096
	// defaultLMBatch is --batch for a language model when not given:
	// windows per call (their logits are windows × T × vocab floats).
	defaultLMBatch = 8
)

// Kinds of language model lmKind recognises.
const (
	lmONNX       = "onnx"       // an .onnx file or an exported folder (model.onnx)
	lmCheckpoint = "checkpoint" // a distill train --student transformer directory (training.json)
	lmHF         = "hf"         // a Hugging Face Llama directory (config.json with model_type)
)

// lmKind says whether path is a language model and of what kind: an ONNX
// model with an input_ids int64 [batch, seq] input and a logits [batch,
// seq, vocab] output, a folder holding model.onnx, a transformer
// checkpoint directory (training.json) or a Hugging Face directory
// (config.json naming a model_type); "" for anything else (a classifier
// or an MLP checkpoint).
func lmKind(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(path, name))
		return err == nil
	}
	if st.IsDir() {
		switch {
		case exists(train.TrainingFile):
			return lmCheckpoint, nil
		case exists(onnxlm.ModelFile):
			return lmONNX, nil
		}
		var cfg struct {
			ModelType string `json:"model_type"`
		}
		if js, err := os.ReadFile(filepath.Join(path, train.ConfigFile)); err == nil && json.Unmarshal(js, &cfg) == nil && cfg.ModelType != "" {
			return lmHF, nil
		}
		return "", nil
	}
	m, err := extract.LoadModel(path)
	if err != nil {
		return "", err
	}
	ids, logits := false, false
	for _, t := range m.Inputs() {
		ids = ids || t.Name == onnxlm.InputIDs && t.Elem == extract.Int64 && len(t.Shape) == 2
	}
	for _, t := range m.Outputs() {
		logits = logits || t.Name == onnxlm.Logits && len(t.Shape) == 3
	}
	if ids && logits {
		return lmONNX, nil
	}
	return "", nil
}

// classifierOnly are the flags of distill eval that apply to classifiers
// only, and lmOnly those that apply to language models only.
var (
	classifierOnly = []string{"input", "output", "scores", "scale", "mean", "std", "reshape", "label", "labels", "features", "feature-name"}
	lmOnly         = []string{"decode-steps", "decode-prompt", "decode-batch", "rows", "split"}
)

// checkLMFlags refuses the flags that do not apply to the model: a
// language model (lmModel) or a classifier.
func checkLMFlags(o evalOptions, lmModel bool) error {
	if o.changed == nil {
		return nil
	}
	not, what := lmOnly, "language models (an ONNX model with input_ids and logits [batch, seq, vocab], an exported folder, a transformer checkpoint)"
	if lmModel {
		not, what = classifierOnly, "classifiers; --model is a language model, evaluated on token windows"
	}
	for _, f := range not {
		if o.changed(f) {
			return usageError("--%s applies to %s", f, what)
		}
	}
	return nil
}

// runLMEval evaluates the language model o.Model (of kind kind) on the
// windows of o.Data with eval.RunLM.
func runLMEval(ctx context.Context, o evalOptions, kind string) (*eval.Result, error) {
	var m lm.Model
	var err error
	if kind == lmONNX {
		m, err = onnxlm.Open(o.Model, &onnxlm.Options{Lib: o.Lib, Threads: o.Threads})
	} else {
		m, err = lm.OpenCheckpoint(o.Model, o.Threads) // the Go forward with a KV cache
	}
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	defer m.Close()
	data, err := eval.OpenLMData(o.Data, o.TeacherCache, &eval.LMDataOptions{Split: o.Split, Rows: int64(o.Rows)})
	if err != nil {
		flag := "--data"
		if o.TeacherCache != "" {
			flag = "--data/--teacher-cache"
		}
		return nil, evalError(flag, err)
	}
	defer data.Close()
	batch := o.Batch
	if !o.changed("batch") {
		batch = defaultLMBatch
	}
	pr := progress.New(cmdErr, "eval", "windows")
	var warnings []string
	res, err := eval.RunLM(ctx, m, data, &eval.LMOptions{
		Options: eval.Options{Name: o.Name, Batch: batch, BenchTime: o.BenchTime, Threads: o.Threads, ToolVersion: version,
			Progress: pr.Update, Warn: func(msg string) { warnings = append(warnings, msg) }},
		DecodePrompt: o.DecodePrompt, DecodeSteps: o.DecodeSteps, DecodeBatch: o.DecodeBatch,
	})
	pr.Done()
	for _, w := range warnings {
		fmt.Fprintf(cmdErr, "eval: warning: %s\n", w)
	}
	if err != nil {
		return nil, evalError("", err)
	}
	if meta := m.Info().Metadata; meta != nil { // an export of distill's: how it was trained
		if a, t, e, ok := export.TrainingMeta(meta); ok {
			res.Model.Training = eval.TrainingOf(a, t, e)
		}
		var cfg train.TransformerConfig
		if json.Unmarshal([]byte(meta[export.MetaStudent]), &cfg) == nil && cfg.Layers > 0 {
			res.Model.Architecture = eval.DescribeTransformer(cfg)
		}
	}
	if kind == lmCheckpoint {
		c, err := train.LoadLMCheckpoint(o.Model)
		if err != nil {
			return nil, fmt.Errorf("--model: %w", err)
		}
		res.Model.Architecture = eval.DescribeTransformer(c.Info.Student)
		res.Model.Training = eval.TrainingOf(c.Info.Training.Alpha, c.Info.Training.Temperature, c.Info.Epoch)
	}
	return res, nil
}

// checkLMOptions checks the language-model flags' values.
func (o *evalOptions) checkLMOptions() error {
	if err := checkRange("--decode-steps", o.DecodeSteps, 1, maxDecodeSteps); err != nil {
		return err
	}
	if err := checkRange("--decode-prompt", o.DecodePrompt, 1, maxDecodeSteps); err != nil {
		return err
	}
	if len(o.DecodeBatch) == 0 {
		return usageError("--decode-batch: give at least one batch size, e.g. 1,16")
	}
	for _, b := range o.DecodeBatch {
		if err := checkRange("--decode-batch", b, 1, maxDecodeBatch); err != nil {
			return err
		}
	}
	if o.Rows < 0 {
		return usageError("--rows %d: want 0 (every window) or more", o.Rows)
	}
	switch o.Split {
	case "", "val", "train", "all":
	default:
		return usageError("--split %q: want val, train or all", o.Split)
	}
	return nil
}

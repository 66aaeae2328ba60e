package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/guard"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/lm/onnxlm"
	"github.com/distill-ml/distill/train"
)

// Defaults and bounds of --verify for a transformer: windows of the token
// dataset, a prefill of half the model's positions, then up to
// lmVerifySteps cached steps.
const (
	lmVerifyRows    = 4
	maxLMVerifyRows = 256
	lmVerifySteps   = 64
)

// isTransformerCheckpoint reports whether path is a checkpoint of distill
// train --student transformer (it holds training.json, or its previous
// version .NAME.old does, which train.LoadLMCheckpoint reads).
//
// A remote path is one when the save its pointer names holds
// training.json (train.CurrentSave).
func isTransformerCheckpoint(path string) bool {
	if store.IsRemote(path) {
		save, err := train.CurrentSave(context.Background(), path)
		if err != nil {
			return false
		}
		_, err = store.Stat(context.Background(), store.Join(save, train.TrainingFile))
		return err == nil
	}
	if fi, err := os.Stat(filepath.Join(path, train.TrainingFile)); err == nil && fi.Mode().IsRegular() {
		return true
	}
	parent, base := filepath.Split(filepath.Clean(path))
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, err := os.Stat(filepath.Join(parent, "."+base+".old", train.TrainingFile))
	return err == nil
}

// lmOptions validates the flags for a transformer checkpoint.
func (o *exportOptions) lmOptions() (export.LMOptions, error) {
	var lo export.LMOptions
	if o.Out == "" {
		return lo, usageError("--out is required")
	}
	if strings.EqualFold(path.Ext(o.Out), ".onnx") {
		return lo, usageError("--out %s: a transformer is exported as a folder (model.onnx, config.json, genai_config.json and the tokenizer); give the folder's path, e.g. --out %s",
			o.Out, strings.TrimSuffix(o.Out, path.Ext(o.Out)))
	}
	if o.Opset < export.MinLMOpset || o.Opset > export.MaxOpset {
		return lo, usageError("--opset %d: a transformer is written at opsets %d..%d", o.Opset, export.MinLMOpset, export.MaxOpset)
	}
	if o.Probs {
		return lo, usageError("--probs is for an MLP student; a transformer's logits are [batch, sequence, vocab]: apply softmax to them")
	}
	eo, err := o.common()
	if err != nil {
		return lo, err
	}
	if !o.verifyRowsSet {
		o.VerifyRows = lmVerifyRows
	}
	if err := checkRange("--verify-rows", o.VerifyRows, 1, maxLMVerifyRows); err != nil {
		return lo, err
	}
	if err := checkPaths([]guard.Path{{Flag: "--student", Path: o.Student}, {Flag: "--verify", Path: o.Verify}, {Flag: "--tokenizer", Path: o.Tokenizer}},
		[]guard.Path{{Flag: "--out", Path: o.Out, Kind: guard.Dir}}); err != nil {
		return lo, err
	}
	return export.LMOptions{Options: eo, NoCache: o.NoCache}, nil
}

func runExportLM(ctx context.Context, stdout io.Writer, o exportOptions) error {
	lo, err := o.lmOptions()
	if err != nil {
		return err
	}
	ck, err := train.LoadLMCheckpoint(o.Student)
	if err != nil {
		return newerHint(err)
	}
	m, err := export.TransformerOf(ck)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Student, err)
	}
	tok := o.Tokenizer
	if tok == "" {
		if tok, err = export.FindTokenizer(&ck.Info); err != nil {
			return err
		}
	}
	var windows [][]int32
	if o.Verify != "" {
		// The data and onnxruntime are checked before anything is
		// written: a --verify that cannot run leaves nothing behind.
		if windows, err = verifyWindows(o.Verify, o.VerifyRows, m.Cfg.Vocab); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
		rt, err := extract.NewRuntime(o.OrtLib)
		if err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
		rt.Close()
	}
	if err := export.WriteLMDir(o.Out, m, &ck.Info, tok, &lo); err != nil {
		return err
	}
	c := m.Cfg
	form := "decoder with past (KV cache)"
	if lo.NoCache {
		form = "full sequence (no cache)"
	}
	quant := "none"
	if lo.Quantize != "" {
		quant = lo.Quantize + " (weight-only)"
	}
	fi, err := store.Stat(ctx, store.Join(o.Out, export.LMModelFile))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "export: %s: %s %s (%d bytes), %s, opset %d (IR %d), dtype %s, quantize %s\n", o.Out, export.LMModelFile,
		human.Bytes(fi.Size), fi.Size, form, lo.Opset, export.IRVersion(lo.Opset), lo.Dtype, quant)
	beside := []string{export.LMConfigFile}
	if !lo.NoCache {
		beside = append(beside, export.GenAIFile)
	}
	fmt.Fprintf(stdout, "  %s; %s (%s)\n", strings.Join(beside, ", "), filepath.Base(tok), tok)
	fmt.Fprintf(stdout, "  transformer %s, %d layers, dim %d, %d/%d heads, ffn %d, vocab %d, %d positions\n",
		c.Variant(), c.Layers, c.Dim, c.Heads, c.KVHeads, c.FFN, c.Vocab, c.T)
	if o.Verify == "" {
		return nil
	}
	model, err := onnxlm.Open(o.Out, &onnxlm.Options{Lib: o.OrtLib, Threads: 1})
	if err != nil {
		return fmt.Errorf("--verify: %w", err)
	}
	defer model.Close()
	res, err := verifyLM(ctx, m, model, windows)
	if err != nil {
		return fmt.Errorf("--verify: %w", err)
	}
	res.Tolerance = export.Tolerance(&lo.Options, res.MaxAbs)
	fmt.Fprint(stdout, res.String(o.Verify, lo))
	if !(res.MaxDiff <= res.Tolerance) {
		return fmt.Errorf("--verify: max |Δlogit| %.3g exceeds the tolerance %.3g", res.MaxDiff, res.Tolerance)
	}
	return nil
}

// verifyWindows reads the first rows windows of token ids of path: a
// token dataset of distill data text, or a cache extracted from one (its
// manifest names the dataset). Every id must be below vocab.
func verifyWindows(path string, rows, vocab int) ([][]int32, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		man, err := formats.ReadManifest(path)
		if err != nil {
			return nil, fmt.Errorf("%s: give a token dataset (distill data text) or a cache extracted from one: %w", path, err)
		}
		path = man.Dataset.Path
	}
	ds, err := dataset.Open(path, nil)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	var width int
	for _, c := range ds.Columns() {
		if c.Name == dataset.ColInputIDs && len(c.Shape) == 1 {
			width = c.Shape[0]
		}
	}
	if width < 2 {
		return nil, fmt.Errorf("%s has no %q column of token windows: give a token dataset of distill data text", path, dataset.ColInputIDs)
	}
	var b dataset.Batch
	if err := ds.Read(0, rows, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if b.Len() == 0 {
		return nil, fmt.Errorf("%s holds no windows", path)
	}
	ids := b.Cols[dataset.ColInputIDs]
	out := make([][]int32, b.Len())
	for r := range out {
		for _, v := range ids[r*width : (r+1)*width] {
			if !(v >= 0 && v < float32(vocab)) || v != float32(math.Trunc(float64(v))) {
				return nil, fmt.Errorf("%s: row %d holds token id %v, outside the model's vocabulary of %d: it is not the model's data", path, b.Rows[r], v, vocab)
			}
			out[r] = append(out[r], int32(v))
		}
	}
	return out, nil
}

// lmVerifyResult compares the exported model with train's Forward.
type lmVerifyResult struct {
	Rows, Prefill, Steps int
	Kind                 string
	MaxDiff, MaxAbs      float64
	Tolerance            float64
	Agree, Positions     int // next-token argmax agreement
}

func (r *lmVerifyResult) String(src string, lo export.LMOptions) string {
	tol := export.TolF32
	switch {
	case lo.Quantize != "":
		tol = export.TolInt8
	case lo.Dtype == export.F16:
		tol = export.TolF16
	}
	verdict := "OK"
	if !(r.MaxDiff <= r.Tolerance) {
		verdict = "FAILED"
	}
	return fmt.Sprintf("verify: %d windows of %s through onnxruntime (%s) vs the Go forward: prefill %d tokens, then %d steps of one token\n"+
		"  max |Δlogit| %.3g, tolerance %g × max(1, max |logit| %.3g) = %.3g: %s\n"+
		"  next-token argmax equal at %d of %d positions\n",
		r.Rows, src, r.Kind, r.Prefill, r.Steps, r.MaxDiff, tol, r.MaxAbs, r.Tolerance, verdict, r.Agree, r.Positions)
}

// verifyLM runs windows through model (the export) as a generator would:
// a prefill of the first half of the model's positions (at most a
// window), then up to lmVerifySteps calls of one token each, fed the
// export's greedy token, and compares every call's logits with train's
// Forward over the same tokens (causal, so the positions after them do
// not matter).
func verifyLM(ctx context.Context, m *train.Transformer, model lm.Model, windows [][]int32) (*lmVerifyResult, error) {
	c := m.Cfg
	B, V := len(windows), c.Vocab
	P := max(1, min(c.T/2, len(windows[0])))
	steps := min(lmVerifySteps, c.T-P)
	sess, err := model.Start(B)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	seqs := make([]int32, B*c.T)
	ids := make([]int64, 0, B*P)
	for b, w := range windows {
		copy(seqs[b*c.T:b*c.T+P], w[:P])
		for _, v := range w[:P] {
			ids = append(ids, int64(v))
		}
	}
	mask := make([]int64, B*(P+steps))
	for i := range mask {
		mask[i] = 1
	}
	logits, err := sess.Step(ids, P, mask[:B*P], lm.Positions(mask[:B*P], B, P))
	if err != nil {
		return nil, err
	}
	got := make([]float32, B*(P+steps)*V) // [B, P+steps, V]
	for b := range B {
		copy(got[b*(P+steps)*V:], logits[b*P*V:(b+1)*P*V])
	}
	next, pos := make([]int64, B), make([]int64, B)
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := P + i // the position fed
		for b := range B {
			row := got[(b*(P+steps)+t-1)*V : (b*(P+steps)+t)*V]
			next[b], pos[b] = int64(argmax32(row)), int64(t)
			seqs[b*c.T+t] = int32(next[b])
		}
		logits, err := sess.Step(next, 1, mask[:B*(t+1)], pos)
		if err != nil {
			return nil, err
		}
		for b := range B {
			copy(got[(b*(P+steps)+t)*V:], logits[b*V:(b+1)*V])
		}
	}
	want := train.Mat{Rows: B * c.T, Cols: V, Data: make([]float32, B*c.T*V)}
	m.Forward(want, seqs)
	kind := model.Info().Kind
	r := &lmVerifyResult{Rows: B, Prefill: P, Steps: steps, Kind: kind, Positions: B * (P + steps)}
	for b := range B {
		for t := range P + steps {
			g := got[(b*(P+steps)+t)*V : (b*(P+steps)+t+1)*V]
			w := want.Data[(b*c.T+t)*V : (b*c.T+t+1)*V]
			for j := range g {
				r.MaxDiff = math.Max(r.MaxDiff, math.Abs(float64(g[j]-w[j])))
				r.MaxAbs = math.Max(r.MaxAbs, math.Abs(float64(w[j])))
			}
			if argmax32(g) == argmax32(w) {
				r.Agree++
			}
		}
	}
	if math.IsNaN(r.MaxDiff) {
		r.MaxDiff = math.Inf(1)
	}
	return r, nil
}

func argmax32(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
)

// seqInput is the cached input column of a per-token cache's token ids
// (extract --keep-input on a token dataset).
const seqInput = "input_ids"

// npySplit is what --npy-split accepts: it becomes part of file names.
var npySplit = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// seqNPYFiles returns the files writeSeqNPY writes for split of a cache
// of cfg, in seq_targets.py's names.
func seqNPYFiles(cfg formats.Config, split string) []string {
	files := []string{"tokens-" + split + ".npy"}
	if cfg.TopK > 0 {
		return append(files, "teacher-"+split+"-topk-index.npy", "teacher-"+split+"-topk-logit.npy", "teacher-"+split+"-lse.npy")
	}
	return append(files, "teacher-"+split+"-logits.npy")
}

// writeSeqNPY writes the windows and teacher targets of a per-token cache
// to dir as NumPy .npy files in the layout of ../shared/peers/seq_targets.py,
// which torch_seq_kd_train.py --data-dir dir reads, so the PyTorch peer
// trains on exactly the cached targets (N windows of T tokens, V classes,
// k cached ids; row i is the window with row id i):
//
//	tokens-SPLIT.npy              int32   [N, T+1]  the T input ids, then the last next-token label
//	teacher-SPLIT-topk-index.npy  int32   [N, T, k] top-k caches: the ids by descending score
//	teacher-SPLIT-topk-logit.npy  float32 [N, T, k] their logits (float16 log-probabilities read back as logits)
//	teacher-SPLIT-lse.npy         float32 [N, T]    logsumexp over all V logits
//	teacher-SPLIT-logits.npy      float32 [N, T, V] dense caches: every logit
//
// The cache must hold its input ids (extract --keep-input), next-token
// labels that continue them (label t = input t+1), the row ids 0..N-1
// once each, and dense or top-k targets (the peer has no sampled form).
// Every file appears atomically; the tokens are written last.
func writeSeqNPY(c *formats.Cache, dir, split string) error {
	cfg := c.Config()
	T := cfg.Positions
	bad := func(format string, a ...any) error {
		return fmt.Errorf("--npy-dir: "+format, a...)
	}
	switch {
	case T == 0:
		return bad("the cache holds one score vector per row, not per token; --npy-dir exports a per-token cache (a sequence teacher's), --logits-npy a classifier's")
	case cfg.Samples > 0:
		return bad("the cache holds sampled targets (%d draws per position), which seq_targets.py's layout has no form for; extract with --topk K or without either for dense targets", cfg.Samples)
	case !cfg.HasLabel:
		return bad("the cache has no next-token labels, which tokens-%s.npy needs", split)
	}
	if !hasInput(cfg, seqInput, T) {
		return bad("the cache has no %s%s column of %d token ids per window; extract it with --keep-input", formats.InputPrefix, seqInput, T)
	}
	n := c.NumRows()
	k, V := cfg.TopK, cfg.Classes
	tokens := make([]int32, n*int64(T+1))
	var index []int32
	var logit, lse, dense []float32
	if k > 0 {
		index, logit, lse = make([]int32, n*int64(T*k)), make([]float32, n*int64(T*k)), make([]float32, n*int64(T))
	} else {
		dense = make([]float32, n*int64(T*V))
	}
	seen := make([]bool, n)
	for b, err := range c.All() {
		if err != nil {
			return err
		}
		ids := b.Inputs[seqInput]
		for i, r := range b.Rows {
			if r < 0 || r >= n || seen[r] {
				return bad("row id %d is outside 0..%d or repeated; export a whole, unsharded or complete cache", r, n-1)
			}
			seen[r] = true
			tok := tokens[r*int64(T+1) : (r+1)*int64(T+1)]
			labels := b.Labels[i*T : (i+1)*T]
			for t, v := range ids[i*T : (i+1)*T] {
				if v != float32(math.Trunc(float64(v))) || v < 0 || int(v) >= V {
					return bad("row %d position %d: input id %v is not a token id in 0..%d", r, t, v, V-1)
				}
				tok[t] = int32(v)
			}
			for t, y := range labels {
				if y < 0 || y >= int64(V) {
					return bad("row %d position %d: label %d is not a token id in 0..%d", r, t, y, V-1)
				}
				if t+1 < T && int64(tok[t+1]) != y {
					return bad("row %d position %d: the label %d is not the next input id %d; tokens-%s.npy holds windows whose labels are the inputs shifted by one", r, t, y, tok[t+1], split)
				}
			}
			tok[T] = int32(labels[T-1])
			if k > 0 {
				copy(index[r*int64(T*k):], b.TopKIndex[i*T*k:(i+1)*T*k])
				copy(logit[r*int64(T*k):], b.TopKLogit[i*T*k:(i+1)*T*k])
				copy(lse[r*int64(T):], b.LogSumExp[i*T:(i+1)*T])
			} else {
				copy(dense[r*int64(T*V):], b.Logits[i*T*V:(i+1)*T*V])
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := seqNPYFiles(cfg, split)
	path := func(i int) string { return filepath.Join(dir, files[i]) }
	N := int(n)
	if k > 0 {
		if err := dataset.WriteNPYFile(path(1), []int{N, T, k}, index); err != nil {
			return err
		}
		if err := dataset.WriteNPYFile(path(2), []int{N, T, k}, logit); err != nil {
			return err
		}
		if err := dataset.WriteNPYFile(path(3), []int{N, T}, lse); err != nil {
			return err
		}
	} else if err := dataset.WriteNPYFile(path(1), []int{N, T, V}, dense); err != nil {
		return err
	}
	return dataset.WriteNPYFile(path(0), []int{N, T + 1}, tokens)
}

// hasInput reports whether cfg caches the input name with width values.
func hasInput(cfg formats.Config, name string, width int) bool {
	for _, s := range cfg.Inputs {
		if s.Name == name && len(s.Shape) == 1 && s.Shape[0] == int64(width) {
			return true
		}
	}
	return false
}

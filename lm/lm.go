package lm

import (
	"errors"
	"fmt"
)

// ErrModel reports a model lm cannot run: not a causal language model, or
// inputs and outputs it does not recognise. The message names the fix.
var ErrModel = errors.New("lm: unsupported model")

// Model is a causal language model that can be run one call at a time.
// Implementations: a distill transformer checkpoint through the Go forward
// pass with a KV cache (OpenCheckpoint), and in package lm/onnxlm an ONNX
// decoder with past (KV cache) or a full-sequence ONNX model re-run over
// the growing prefix.
type Model interface {
	// Info describes the model.
	Info() Info
	// Start begins a batch of batch sequences with nothing fed yet.
	Start(batch int) (Session, error)
	// Close releases the model; its sessions must be closed first.
	Close() error
}

// Kinds of Model (Info.Kind).
const (
	KindCheckpoint = "checkpoint" // a distill train --student transformer directory, Go forward with a KV cache
	KindONNXCache  = "onnx-kv"    // an ONNX decoder with past_key_values.* inputs and present.* outputs
	KindONNXFull   = "onnx"       // an ONNX model input_ids → logits, re-run over the whole prefix every call
)

// Info describes a Model.
type Info struct {
	Kind  string `json:"kind"`
	Path  string `json:"path"`
	Vocab int    `json:"vocab"`
	// MaxPositions bounds past + new tokens of one sequence; 0 = unknown.
	MaxPositions int `json:"max_positions,omitempty"`
	// KVCache is true when a call costs only its new tokens.
	KVCache bool `json:"kv_cache"`
	// Params counts the weights (stored values of float initializers for
	// ONNX); Bytes is the size of the model file(s) on disk.
	Params int64 `json:"params"`
	Bytes  int64 `json:"bytes"`
	// BOS and EOS are the begin- and end-of-sequence ids, -1 when unknown.
	BOS int `json:"bos"`
	EOS int `json:"eos"`
	// SHA256 of the model file (model.safetensors for a checkpoint).
	SHA256 string `json:"sha256,omitempty"`
	// Metadata is an ONNX model's metadata_props (distill export's
	// provenance keys among them), nil for a checkpoint.
	Metadata map[string]string `json:"-"`
}

// Session holds the state of one batch of sequences: its KV cache, or the
// prefix fed so far.
type Session interface {
	// Step feeds s new tokens to each of the B rows of the batch and
	// returns their next-token logits [B, s, Vocab], row-major, valid until
	// the next Step.
	//
	//   ids  [B, s]        the new tokens (for a padded row: any valid id at a pad)
	//   mask [B, past + s] 1 = attend, 0 = padding, over every token fed so far
	//                      and these; past is the number of tokens fed before
	//   pos  [B, s]        absolute positions (Positions gives the Hugging Face rule)
	//
	// Query t of row b attends key j iff j ≤ past + t and mask[b, j] = 1.
	// Logits at pad positions are finite and meaningless.
	Step(ids []int64, s int, mask, pos []int64) ([]float32, error)
	// Past is the number of tokens fed so far (per row, padding included).
	Past() int
	Close() error
}

// Positions returns the Hugging Face position rule for the last s columns
// of a [batch, total] attention mask: cumsum(mask) − 1 along each row, and
// 1 at pads (mask 0), as transformers' generate and the Optimum exports use.
// It panics if len(mask) is not a multiple of batch or s > total.
func Positions(mask []int64, batch, s int) []int64 {
	if batch <= 0 || len(mask)%batch != 0 || s > len(mask)/batch {
		panic(fmt.Sprintf("lm: Positions: mask of %d for batch %d, %d new", len(mask), batch, s))
	}
	total := len(mask) / batch
	pos := make([]int64, batch*s)
	for b := range batch {
		var c int64
		for j, m := range mask[b*total : (b+1)*total] {
			c += m
			if k := j - (total - s); k >= 0 {
				if m == 0 {
					pos[b*s+k] = 1
				} else {
					pos[b*s+k] = c - 1
				}
			}
		}
	}
	return pos
}

// LeftPad lays prompts out as one left-padded batch: ids [B, L] with pad
// in front of the shorter prompts, and mask [B, L] (0 at the pads), L the
// longest prompt's length. It panics on an empty prompt.
func LeftPad(prompts [][]int64, pad int64) (ids, mask []int64, L int) {
	for _, p := range prompts {
		if len(p) == 0 {
			panic("lm: LeftPad: an empty prompt")
		}
		L = max(L, len(p))
	}
	ids, mask = make([]int64, len(prompts)*L), make([]int64, len(prompts)*L)
	for b, p := range prompts {
		off := b*L + L - len(p)
		for j := b * L; j < off; j++ {
			ids[j] = pad
		}
		copy(ids[off:], p)
		for j := off; j < (b+1)*L; j++ {
			mask[j] = 1
		}
	}
	return ids, mask, L
}

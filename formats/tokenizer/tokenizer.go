package tokenizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/distill-ml/distill/internal/store"
)

// A Tokenizer turns text into token ids and back. Implementations are
// safe for concurrent use once loaded.
type Tokenizer interface {
	// Encode returns the ids of text; addSpecial adds the special tokens
	// the tokenizer's post-processing defines (BOS, CLS/SEP, ...). It
	// fails only for text the vocabulary cannot represent at all (a
	// character vocabulary without the character; an unknown-token id
	// or byte fallback never fails).
	Encode(text string, addSpecial bool) ([]int, error)
	// Decode returns the text of ids; skipSpecial leaves special tokens
	// out.
	Decode(ids []int, skipSpecial bool) string
	// VocabSize is the number of ids, added tokens included: every id
	// Encode returns is below it.
	VocabSize() int
	// Special returns the id of a special token by role ("bos", "eos",
	// "unk", "pad"), and whether the tokenizer has one.
	Special(role string) (int, bool)
}

// Info describes a loaded tokenizer file, for manifests.
type Info struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // "llama2c", "chars" or "huggingface"
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// ErrFormat marks a file that is not a tokenizer this package reads.
var ErrFormat = errors.New("tokenizer: unrecognized file")

// hfLoader loads a Hugging Face tokenizer.json; set by hf.go.
var hfLoader func(data []byte) (Tokenizer, error)

// Load reads the tokenizer file at the location path (a path, file://,
// s3:// or gs://; package internal/store), telling the kind by its
// content: a JSON object is a Hugging Face tokenizer.json, a JSON array
// of strings a character vocabulary (vocab.json: id = index), anything
// else a llama2.c tokenizer.bin. Info.Path is path as given.
func Load(path string) (Tokenizer, Info, error) {
	data, err := store.ReadFile(context.Background(), path, 0)
	if err != nil {
		return nil, Info{}, err
	}
	sum := sha256.Sum256(data)
	info := Info{Path: path, SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}
	t, kind, err := Parse(data)
	if err != nil {
		return nil, info, fmt.Errorf("%s: %w", store.Base(path), err)
	}
	info.Kind = kind
	return t, info, nil
}

// Parse reads a tokenizer from its bytes (see Load) and returns it with
// its kind.
func Parse(data []byte) (Tokenizer, string, error) {
	trimmed := strings.TrimLeft(string(data[:min(len(data), 64)]), " \t\r\n\ufeff")
	switch {
	case strings.HasPrefix(trimmed, "{"):
		if hfLoader == nil {
			return nil, "", fmt.Errorf("%w: Hugging Face tokenizer.json is not supported by this build", ErrFormat)
		}
		t, err := hfLoader(data)
		return t, "huggingface", err
	case strings.HasPrefix(trimmed, "["):
		t, err := ParseChars(data)
		return t, "chars", err
	}
	t, err := ParseLlama2c(data)
	return t, "llama2c", err
}

package lm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
)

// OpenCheckpoint opens dir as a Model run by the Go forward pass with a KV
// cache (train.Decoder; Kind KindCheckpoint):
//
//   - a checkpoint of distill train --student transformer (training.json
//     beside model.safetensors and config.json; train.LoadLMCheckpoint,
//     which checks every file's sha256). MaxPositions is the training
//     sequence length T. BOS and EOS are those the token dataset behind the
//     training cache records (its tokenizer's), when training.json names
//     it (cache.dataset) and it is still there; else -1.
//   - a Hugging Face Llama directory (config.json and model.safetensors,
//     no training.json; train.LoadHFLlama), e.g. stories260K-hf.
//     MaxPositions is config.json's max_position_embeddings, BOS and EOS
//     its bos_token_id and eos_token_id (-1 when absent).
//
// threads > 0 sets the student math's thread count (train.SetThreads,
// process-wide); 0 leaves it. Positions must be below MaxPositions (the
// RoPE or position tables' length). Errors wrap ErrModel or the loader's
// error and name the fix.
//
// A remote dir (s3://, gs://) is downloaded (for a checkpoint of distill
// train, only its current save; train.FetchCheckpoint), loaded and the
// download removed; Info.Path is the location as given.
func OpenCheckpoint(dir string, threads int) (Model, error) {
	if store.IsRemote(dir) {
		local, cleanup, err := train.FetchCheckpoint(context.Background(), dir)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		m, err := OpenCheckpoint(local, threads)
		if err != nil {
			return nil, err
		}
		m.(*checkpoint).info.Path = dir
		return m, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a file; a checkpoint is a directory (distill train --student transformer's --out, or a Hugging Face Llama directory)", ErrModel, dir)
	}
	if threads > 0 {
		train.SetThreads(threads)
	}
	info := Info{Kind: KindCheckpoint, Path: dir, KVCache: true, BOS: -1, EOS: -1}
	var m *train.Transformer
	if !exists(filepath.Join(dir, "config.json")) || exists(filepath.Join(dir, train.TrainingFile)) {
		c, err := train.LoadLMCheckpoint(dir)
		if err != nil {
			return nil, err
		}
		if m, err = train.NewTransformer(c.Info.Student); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		train.NewParams(m.Params()...)
		if err := m.SetTensors(c.Tensors); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		d := c.Info.Files[train.ModelFile]
		info.Bytes, info.SHA256 = d.Bytes, d.SHA256
		info.BOS, info.EOS = provenanceTokens(c.Info.Cache.Dataset)
	} else {
		if m, err = openHF(dir, &info); err != nil {
			return nil, err
		}
	}
	info.Vocab, info.MaxPositions = m.Cfg.Vocab, m.Cfg.T
	for _, p := range m.Params() {
		info.Params += int64(p.Size())
	}
	return &checkpoint{m: m, info: info}, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// openHF loads a Hugging Face Llama directory for its
// max_position_embeddings positions, filling info's Bytes, SHA256, BOS
// and EOS.
func openHF(dir string, info *Info) (*train.Transformer, error) {
	js, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var c struct {
		Format       string `json:"format"`
		MaxPositions int    `json:"max_position_embeddings"`
		BOS          any    `json:"bos_token_id"`
		EOS          any    `json:"eos_token_id"`
	}
	if err := json.Unmarshal(js, &c); err != nil {
		return nil, fmt.Errorf("%w: %s: config.json: %v", ErrModel, dir, err)
	}
	switch {
	case c.Format != "":
		return nil, fmt.Errorf("%w: %s is a %s checkpoint (an MLP student), not a language model", ErrModel, dir, c.Format)
	case c.MaxPositions < 1:
		return nil, fmt.Errorf("%w: %s: config.json has no max_position_embeddings; add the model's context length", ErrModel, dir)
	}
	m, err := train.LoadHFLlama(dir, c.MaxPositions)
	if err != nil {
		return nil, err
	}
	info.BOS, info.EOS = tokenID(c.BOS), tokenID(c.EOS)
	info.Bytes, info.SHA256, err = fileSHA256(filepath.Join(dir, train.ModelFile))
	return m, err
}

// tokenID reads a config.json token id: a number, or the first of a list
// (Llama 3 lists several EOS ids); -1 otherwise.
func tokenID(v any) int {
	switch v := v.(type) {
	case float64:
		return int(v)
	case []any:
		if len(v) > 0 {
			return tokenID(v[0])
		}
	}
	return -1
}

// provenanceTokens returns the BOS and EOS ids the token dataset at path
// (the training cache's source) records, or -1 for each it cannot find.
func provenanceTokens(path string) (bos, eos int) {
	bos, eos = -1, -1
	if path == "" {
		return
	}
	meta, err := dataset.ReadTokensMeta(path)
	if err != nil {
		return
	}
	if meta.BOSID != nil {
		bos = *meta.BOSID
	}
	if meta.EOSID != nil {
		eos = *meta.EOSID
	}
	return
}

// fileSHA256 returns the size and hex sha256 of the file at path.
func fileSHA256(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// checkpoint is a Transformer as a Model.
type checkpoint struct {
	m    *train.Transformer
	info Info
}

func (c *checkpoint) Info() Info   { return c.info }
func (c *checkpoint) Close() error { return nil }

func (c *checkpoint) Start(batch int) (Session, error) {
	d, err := train.NewDecoder(c.m, batch)
	if err != nil {
		return nil, err
	}
	return &decoderSession{d: d}, nil
}

// decoderSession is a train.Decoder as a Session.
type decoderSession struct {
	d      *train.Decoder
	closed bool
}

func (s *decoderSession) Step(ids []int64, n int, mask, pos []int64) ([]float32, error) {
	if s.closed {
		return nil, errors.New("lm: Step on a closed session")
	}
	return s.d.Step(ids, n, mask, pos)
}

func (s *decoderSession) Past() int    { return s.d.Past() }
func (s *decoderSession) Close() error { s.closed = true; return nil }

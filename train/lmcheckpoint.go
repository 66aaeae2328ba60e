package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/internal/store"
)

// A transformer checkpoint (TrainLM's Options.Out) is a directory in the
// Hugging Face layout, plus what resuming needs:
//
//	student/
//	  model.safetensors   the weights under Hugging Face Llama names
//	                      (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...;
//	                      __metadata__ {"format": "pt"})
//	  config.json         the Hugging Face config (Transformer.HFConfigJSON)
//	  state.safetensors   optimizer state (exp_avg.NAME, exp_avg_sq.NAME or
//	                      momentum_buffer.NAME) of the weights and of the hidden-state
//	                      projections (feature.J.weight, feature.J.bias), which it holds
//	                      too; __metadata__ {"epoch", "step", "optimizer"}
//	  training.json       LMCheckpointInfo: architecture, training options, epoch,
//	                      step, cache provenance, per-epoch metrics, and the size and
//	                      sha256 of the three other files
//
// The shuffle of epoch e is drawn from (Options.Seed, e) and nothing else,
// so the epoch is all of the random state a resume needs; nothing depends
// on the clock, and a run with the same seed, data, options and thread
// count writes the same bytes. The directory is replaced as a whole after
// every epoch, exactly as WriteCheckpoint replaces an MLP checkpoint (and
// under the same lock): a crash leaves the last completed epoch readable,
// as NAME or, for a moment, as .NAME.old, which LoadLMCheckpoint reads and
// the next run puts back.
const (
	TrainingFile = "training.json"

	lmCheckpointFormat  = "distill-transformer"
	lmCheckpointVersion = 1
)

// LMCheckpointInfo is training.json.
type LMCheckpointInfo struct {
	Format   string            `json:"format"`  // "distill-transformer"
	Version  int               `json:"version"` // 1
	Student  TransformerConfig `json:"student"`
	Training Options           `json:"training"`
	Epoch    int               `json:"epoch"` // epochs completed
	Step     int64             `json:"step"`  // optimizer steps taken
	Cache    Provenance        `json:"cache"`
	Val      *Provenance       `json:"val,omitempty"`
	Epochs   []LMEpoch         `json:"epochs"`
	// Files holds the size and sha256 of ModelFile, ConfigFile and
	// StateFile; LoadLMCheckpoint checks them.
	Files map[string]FileDigest `json:"files"`
}

// LMCheckpoint is a loaded transformer checkpoint.
type LMCheckpoint struct {
	Info    LMCheckpointInfo
	Tensors []*Param // model.safetensors
	State   []*Param // state.safetensors
}

// writeLMCheckpoint replaces the directory dir with the checkpoint of m,
// its optimizer and projection state and info (see the layout above),
// atomically; info.Files is set to the files written.
func writeLMCheckpoint(dir string, m *Transformer, state []*Param, info LMCheckpointInfo) error {
	info.Format, info.Version = lmCheckpointFormat, lmCheckpointVersion
	js, err := m.HFConfigJSON(-1, -1)
	if err != nil {
		return err
	}
	var model, st bytes.Buffer
	if err := WriteSafetensors(&model, m.Params(), map[string]string{"format": "pt"}); err != nil {
		return err
	}
	meta := map[string]string{"epoch": fmt.Sprint(info.Epoch), "step": fmt.Sprint(info.Step), "optimizer": info.Training.Optimizer}
	if err := WriteSafetensors(&st, state, meta); err != nil {
		return err
	}
	files := []dirFile{{ModelFile, model.Bytes()}, {ConfigFile, append(js, '\n')}, {StateFile, st.Bytes()}}
	info.Files = digests(files)
	rec, err := jsonFile(TrainingFile, &info)
	if err != nil {
		return err
	}
	if store.IsRemote(dir) {
		return writeRemote(context.Background(), dir, append(files, rec), info.Epoch)
	}
	return writeDir(dir, append(files, rec))
}

// LoadLMCheckpoint reads the transformer checkpoint directory dir, or its
// previous version if a crash interrupted its replacement. Every file must
// have the size and sha256 training.json records, and the weights must be
// finite; errors wrap ErrCheckpoint (a missing file fs.ErrNotExist) and
// say what to do. It does not modify anything.
func LoadLMCheckpoint(dir string) (*LMCheckpoint, error) {
	if store.IsRemote(dir) {
		return loadRemote(dir, loadLM)
	}
	dir = filepath.Clean(dir)
	if _, old := siblings(dir); !exists(dir) && exists(filepath.Join(old, TrainingFile)) {
		dir = old
	}
	c, err := loadLM(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return c, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func loadLM(fsys fs.FS) (*LMCheckpoint, error) {
	data, err := readLimited(fsys, TrainingFile, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		if _, e := fs.Stat(fsys, ConfigFile); e == nil {
			return nil, fmt.Errorf("%w: no %s: the directory is not a checkpoint of distill train --student transformer (an MLP student's, or a model from elsewhere); choose another --out", ErrCheckpoint, TrainingFile)
		}
	}
	if err != nil {
		return nil, err
	}
	var info LMCheckpointInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, TrainingFile, err)
	}
	if info.Format != lmCheckpointFormat || info.Version != lmCheckpointVersion {
		return nil, fmt.Errorf("%w: %s: format %q version %d, this build reads %q version %d", ErrCheckpoint, TrainingFile, info.Format, info.Version, lmCheckpointFormat, lmCheckpointVersion)
	}
	if info.Files == nil {
		return nil, fmt.Errorf("%w: %s records no file digests", ErrCheckpoint, TrainingFile)
	}
	c := &LMCheckpoint{Info: info}
	for _, f := range []struct {
		name string
		dst  *[]*Param
	}{{ModelFile, &c.Tensors}, {ConfigFile, nil}, {StateFile, &c.State}} {
		data, err := readChecked(fsys, f.name, info.Files)
		if err != nil {
			return nil, err
		}
		if f.dst == nil {
			continue
		}
		if *f.dst, _, err = ReadSafetensors(data); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if err := checkFinite(*f.dst, f.name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/atomicfile"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/train"
)

// Files of an exported language-model folder (WriteLMDir).
const (
	LMModelFile  = "model.onnx"
	LMConfigFile = "config.json"
	GenAIFile    = "genai_config.json"
)

// WriteLMDir writes the transformer m as a folder dir that Hugging Face
// style tools and onnxruntime-genai look for:
//
//	model.onnx         MarshalLM's model (the decoder with past, or NoCache's full-sequence one)
//	config.json        the Hugging Face config (train.Transformer.HFConfigJSON) with bos/eos_token_id
//	genai_config.json  the onnxruntime-genai config of the decoder (not for NoCache, which
//	                   onnxruntime-genai cannot run)
//	TOKENIZER          a copy of the tokenizer file under its own name (tokenizer.json, tok512.bin, ...)
//
// tokenizerPath may be "" (no tokenizer copied; BOS and EOS then come from
// opts). With one, its "bos" and "eos" special ids set BOS and EOS (nil
// when it has none) and its name and sha256 go into the metadata. The
// folder appears atomically, as a checkpoint does: staged in .NAME.tmp,
// then renamed into place, an earlier export at dir replaced only once the
// new one is complete. A remote dir (s3://, gs://) gets one object per
// file, model.onnx last (see writeRemoteDir). A dir that exists and is neither empty nor an
// export (it has no model.onnx, or it is a checkpoint) is an error.
func WriteLMDir(dir string, m *train.Transformer, info *train.LMCheckpointInfo, tokenizerPath string, opts *LMOptions) error {
	var o LMOptions
	if opts != nil {
		o = *opts
	}
	var files []dirEntry
	if tokenizerPath != "" {
		data, err := store.ReadFile(context.Background(), tokenizerPath, 0)
		if err != nil {
			return fmt.Errorf("export: tokenizer: %w", err)
		}
		tok, _, err := tokenizer.Parse(data)
		if err != nil {
			return fmt.Errorf("export: tokenizer %s: %w", tokenizerPath, err)
		}
		if v := tok.VocabSize(); v > m.Cfg.Vocab {
			return fmt.Errorf("export: tokenizer %s has %d tokens, the model's vocabulary %d: it is not the tokenizer the model was trained with; give the right --tokenizer", tokenizerPath, v, m.Cfg.Vocab)
		}
		o.BOS, o.EOS = special(tok, "bos"), special(tok, "eos")
		sum := sha256.Sum256(data)
		o.Tokenizer, o.TokenizerSHA256 = store.Base(tokenizerPath), hex.EncodeToString(sum[:])
		switch o.Tokenizer {
		case LMModelFile, LMConfigFile, GenAIFile:
			return fmt.Errorf("export: the tokenizer file is named %s, like a file of the export; copy it under another name", o.Tokenizer)
		}
		files = append(files, dirEntry{o.Tokenizer, data})
	}
	model, err := MarshalLM(m, info, &o)
	if err != nil {
		return err
	}
	cfg, err := m.HFConfigJSON(idOr(o.BOS), idOr(o.EOS))
	if err != nil {
		return err
	}
	files = append([]dirEntry{{LMModelFile, model}, {LMConfigFile, append(cfg, '\n')}}, files...)
	if !o.NoCache {
		g, err := genAIConfig(m.Cfg, o)
		if err != nil {
			return err
		}
		files = append(files, dirEntry{GenAIFile, g})
	}
	if store.IsRemote(dir) {
		return writeRemoteDir(context.Background(), dir, files)
	}
	return writeDir(dir, files)
}

// special returns the tokenizer's id of role, nil if it has none.
func special(t tokenizer.Tokenizer, role string) *int {
	if id, ok := t.Special(role); ok {
		return &id
	}
	return nil
}

// idOr returns *id, or −1 (none) for nil, as HFConfigJSON takes it.
func idOr(id *int) int {
	if id == nil {
		return -1
	}
	return *id
}

// genAIConfig returns the onnxruntime-genai genai_config.json of the
// decoder with past: the layout of teachers/seq's
// stories260K-kv.genai_config.json filled in for this model (type "llama"
// for a Llama, "distill_decoder", which onnxruntime-genai does not know,
// for other options; pad_token_id 0; greedy search up to Cfg.T tokens).
// It has not been run with onnxruntime-genai (not available here).
func genAIConfig(c train.TransformerConfig, o LMOptions) ([]byte, error) {
	typ := "llama"
	if !c.Llama() {
		typ = "distill_decoder"
	}
	type obj = map[string]any
	g := obj{
		"model": obj{
			"bos_token_id": idOr(o.BOS), "eos_token_id": idOr(o.EOS), "pad_token_id": 0,
			"context_length": c.T, "type": typ, "vocab_size": c.Vocab,
			"decoder": obj{
				"session_options": obj{"log_id": "onnxruntime-genai", "provider_options": []any{}},
				"filename":        LMModelFile,
				"head_size":       c.HeadDim(), "hidden_size": c.Dim,
				"num_attention_heads": c.Heads, "num_hidden_layers": c.Layers, "num_key_value_heads": c.KVHeads,
				"inputs": obj{
					"input_ids": InputIDsName, "attention_mask": AttentionMaskName, "position_ids": PositionIDsName,
					"past_key_names": PastKeyNames, "past_value_names": PastValueNames,
				},
				"outputs": obj{"logits": LogitsName, "present_key_names": PresentKeyNames, "present_value_names": PresentValueNames},
			},
		},
		"search": obj{
			"do_sample": false, "max_length": c.T, "min_length": 0, "num_beams": 1, "num_return_sequences": 1,
			"past_present_share_buffer": false, "repetition_penalty": 1.0, "temperature": 1.0, "top_k": 1, "top_p": 1.0,
		},
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return append(b, '\n'), nil
}

type dirEntry struct {
	name string
	data []byte
}

// writeDir replaces dir by a directory holding files, atomically: staged
// in .NAME.tmp beside it (every file synced), then renamed into place; an
// existing dir (a previous export) is renamed to .NAME.old first and
// removed after. On error nothing is left but dir as it was.
func writeDir(dir string, files []dirEntry) (err error) {
	dir = filepath.Clean(dir)
	parent, base := filepath.Split(dir)
	tmp, old := filepath.Join(parent, "."+base+".tmp"), filepath.Join(parent, "."+base+".old")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(old, LMModelFile)); err == nil {
			// A crash between the two renames of an earlier export.
			if err := atomicfile.Rename(old, dir); err != nil {
				return fmt.Errorf("export: restore %s: %w", old, err)
			}
		}
	}
	if err := replaceableExport(dir); err != nil {
		return err
	}
	for _, p := range []string{tmp, old} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	made, err := atomicfile.MkdirAll(tmp)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			atomicfile.RemoveEmptyDirs(made[1:]) // the parents made for it
		}
	}()
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := os.Stat(dir); err == nil {
		if err := atomicfile.Rename(dir, old); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	if err := atomicfile.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			os.Rename(old, dir)
		}
		return fmt.Errorf("export: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("export: the new export is in place, but the previous one is left at %s: %w", old, err)
	}
	return nil
}

// replaceableExport returns nil if dir does not exist, is empty, or is an
// earlier export folder (it holds model.onnx, no training.json and no
// subdirectories), and an error naming the fix otherwise.
func replaceableExport(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("export: %s is a file; a transformer is exported as a folder: give --out a directory path", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	model := false
	for _, e := range ents {
		switch {
		case e.Name() == train.TrainingFile:
			return fmt.Errorf("export: %s is a transformer checkpoint; write the export to another --out", dir)
		case e.IsDir():
			return fmt.Errorf("export: %s holds a directory (%s), so it is not an earlier export to replace; choose another --out or empty it", dir, e.Name())
		case e.Name() == LMModelFile:
			model = true
		}
	}
	if !model {
		return fmt.Errorf("export: %s exists and is not an export folder (no %s); choose another --out or empty it", dir, LMModelFile)
	}
	return nil
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ErrNoTokenizer is wrapped by FindTokenizer's errors: the tokenizer of a
// checkpoint's training data cannot be found (or has changed).
var ErrNoTokenizer = errors.New("export: tokenizer not found")

// FindTokenizer returns the tokenizer file a transformer checkpoint's
// training data was made with, following its provenance: the training
// cache's directory (info.Cache.Path) → its manifest → the token dataset
// the cache was extracted from (Dataset.Path) → the dataset's TokensMeta
// → the tokenizer's location, whose sha256 must be the one recorded. A
// relative tokenizer path is tried as given, then beside the dataset
// (locations may be URLs; package internal/store).
// Errors wrap ErrNoTokenizer and say to give the file (distill export
// --tokenizer).
func FindTokenizer(info *train.LMCheckpointInfo) (string, error) {
	fix := "give the tokenizer file with --tokenizer"
	p := info.Cache.Path
	if p == "" {
		return "", fmt.Errorf("%w: the checkpoint does not record its training cache's directory (trained by an older distill); %s", ErrNoTokenizer, fix)
	}
	man, err := formats.ReadManifest(p)
	if err != nil {
		return "", fmt.Errorf("%w: the training cache %s: %v; %s", ErrNoTokenizer, p, err, fix)
	}
	if man.Settings.ShardCount <= 1 && info.Cache.Digest != "" && man.Digest() != info.Cache.Digest {
		return "", fmt.Errorf("%w: the cache at %s is no longer the one the checkpoint was trained on (manifest digest %s, the checkpoint records %s); %s",
			ErrNoTokenizer, p, man.Digest(), info.Cache.Digest, fix)
	}
	ds := man.Dataset.Path
	meta, err := dataset.ReadTokensMeta(ds)
	if err != nil {
		return "", fmt.Errorf("%w: the cache's dataset %s is not a token dataset of distill data text (%v); %s", ErrNoTokenizer, ds, err, fix)
	}
	t := meta.Tokenizer
	if t.Path == "" {
		return "", fmt.Errorf("%w: the token dataset %s records no tokenizer; %s", ErrNoTokenizer, ds, fix)
	}
	candidates := []string{t.Path}
	if !filepath.IsAbs(t.Path) && !store.IsRemote(t.Path) {
		dir := store.Parent(ds)
		candidates = append(candidates, store.Join(dir, filepath.ToSlash(t.Path)), store.Join(dir, filepath.Base(t.Path)))
	}
	for _, c := range candidates {
		data, err := store.ReadFile(context.Background(), c, 0)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != t.SHA256 {
			return "", fmt.Errorf("%w: %s has changed since the token dataset %s was made (sha256 %s, recorded %s); %s", ErrNoTokenizer, c, ds, got, t.SHA256, fix)
		}
		return c, nil
	}
	return "", fmt.Errorf("%w: the token dataset %s was made with %s, which is not there any more; %s", ErrNoTokenizer, ds, t.Path, fix)
}

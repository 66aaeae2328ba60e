package onnxlm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/internal/store"
	"github.com/distill-ml/distill/lm"
	"github.com/distill-ml/distill/train"
)

// Names of the decoder-with-past convention (Hugging Face Optimum,
// onnxruntime-genai) and of a full-sequence language model.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
	Logits        = "logits"
	PastKey       = "past_key_values.%d.key"
	PastValue     = "past_key_values.%d.value"
	PresentKey    = "present.%d.key"
	PresentValue  = "present.%d.value"
	// ModelFile is the model's name in an exported folder.
	ModelFile = "model.onnx"
)

// Options configures Open. The zero value (and nil) selects the defaults.
type Options struct {
	// Lib is the onnxruntime shared library; "" = extract.LocateLibrary's
	// search ($ONNXRUNTIME_SHARED_LIBRARY_PATH, then the project cache).
	Lib string
	// Threads is onnxruntime's intra-op thread count (and the Go forward's
	// for a checkpoint); 0 = the runtime's default.
	Threads int
}

// Open opens path as a language model: a .onnx file, or a folder holding
// model.onnx (distill export's output for a transformer). A model whose
// inputs include past_key_values.0.key is a decoder with past (Kind
// lm.KindONNXCache): it must take input_ids, attention_mask and, unless it
// has none, position_ids, and return logits and present.* for every past
// input. A model with input_ids as its only input is re-run over the whole
// prefix at every Step (lm.KindONNXFull). Info's BOS, EOS and MaxPositions
// come from the model's metadata_props, else a config.json or
// genai_config.json beside it. A remote path (s3://, gs://) is downloaded
// for the session and removed once it holds the model. Errors wrap lm.ErrModel (or
// extract.ErrNoRuntime) and name the fix.
func Open(path string, o *Options) (lm.Model, error) {
	if o == nil {
		o = &Options{}
	}
	if store.IsRemote(path) {
		// onnxruntime and the tokenizer lookup take paths: the file, or
		// the folder, is downloaded, and removed once the session holds
		// the model. Info.Path is the location as given.
		local, cleanup, err := train.FetchCheckpoint(context.Background(), path)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		shown := path
		if st, err := os.Stat(local); err == nil && st.IsDir() {
			shown = store.Join(path, ModelFile)
		}
		return openLocal(local, shown, o)
	}
	return openLocal(path, "", o)
}

// openLocal is Open for a local path; Info.Path is shown if set.
func openLocal(path, shown string, o *Options) (lm.Model, error) {
	file, err := resolve(path)
	if err != nil {
		return nil, err
	}
	m, err := extract.LoadModel(file)
	if err != nil {
		return nil, err
	}
	g, err := inspect(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	g.info.Path = file
	if shown != "" {
		g.info.Path = shown
	}
	g.info.Bytes = m.Size
	g.info.Params = extract.ParamCount(m.Proto)
	g.info.SHA256 = m.SHA256
	g.describe(m, filepath.Dir(file))
	return newModel(g, m, o)
}

// resolve returns the .onnx file path names.
func resolve(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	file := filepath.Join(path, ModelFile)
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	for _, name := range []string{"training.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(path, name)); err == nil {
			return "", fmt.Errorf("%w: %s is a checkpoint directory (it has %s), not an ONNX model; open it with lm.OpenCheckpoint, or export it first (distill export)", lm.ErrModel, path, name)
		}
	}
	return "", fmt.Errorf("%w: %s is a directory without %s; give the .onnx file itself", lm.ErrModel, path, ModelFile)
}

// graph is what Open learned of a model's inputs and outputs.
type graph struct {
	info     lm.Info
	layers   int  // past_key_values.i pairs (KV models)
	position bool // the model takes position_ids
	kvHeads  int  // from the past inputs' shape, 0 when symbolic
	headDim  int
}

// inspect classifies m by its inputs and outputs.
func inspect(m *extract.Model) (*graph, error) {
	g := &graph{info: lm.Info{BOS: -1, EOS: -1}}
	ins := map[string]extract.TensorInfo{}
	for _, t := range m.Inputs() {
		ins[t.Name] = t
	}
	outs := map[string]extract.TensorInfo{}
	for _, t := range m.Outputs() {
		outs[t.Name] = t
	}
	id, ok := ins[InputIDs]
	if !ok {
		return nil, fmt.Errorf("%w: no input %q (inputs %v); a language model takes token ids as input_ids [batch, sequence]", lm.ErrModel, InputIDs, names(m.Inputs()))
	}
	if id.Elem != extract.Int64 || len(id.Shape) != 2 {
		return nil, fmt.Errorf("%w: input %q is %v %s, want int64 [batch, sequence]", lm.ErrModel, InputIDs, id.Elem, id.ShapeString())
	}
	lg, ok := outs[Logits]
	if !ok || len(lg.Shape) != 3 {
		return nil, fmt.Errorf("%w: no output %q [batch, sequence, vocab] (outputs %v)", lm.ErrModel, Logits, names(m.Outputs()))
	}
	if lg.Elem != extract.Float32 {
		return nil, fmt.Errorf("%w: output %q is %v, want float32", lm.ErrModel, Logits, lg.Elem)
	}
	g.info.Vocab = int(lg.Shape[2])
	for ; ; g.layers++ {
		k, v := fmt.Sprintf(PastKey, g.layers), fmt.Sprintf(PastValue, g.layers)
		tk, okK := ins[k]
		_, okV := ins[v]
		if !okK && !okV {
			break
		}
		if !okK || !okV {
			return nil, fmt.Errorf("%w: input %q without its pair (%q, %q)", lm.ErrModel, k, k, v)
		}
		for _, out := range []string{fmt.Sprintf(PresentKey, g.layers), fmt.Sprintf(PresentValue, g.layers)} {
			if _, ok := outs[out]; !ok {
				return nil, fmt.Errorf("%w: input %q has no output %q to pass back as the next past", lm.ErrModel, k, out)
			}
		}
		if len(tk.Shape) != 4 || tk.Elem != extract.Float32 {
			return nil, fmt.Errorf("%w: input %q is %v %s, want float32 [batch, kv_heads, past, head_dim]", lm.ErrModel, k, tk.Elem, tk.ShapeString())
		}
		g.kvHeads, g.headDim = int(tk.Shape[1]), int(tk.Shape[3])
	}
	want := 1
	if g.layers > 0 {
		if _, ok := ins[AttentionMask]; !ok {
			return nil, fmt.Errorf("%w: a decoder with past needs input %q", lm.ErrModel, AttentionMask)
		}
		_, g.position = ins[PositionIDs]
		want = 1 + 2*g.layers + 1 + btoi(g.position)
		g.info.Kind, g.info.KVCache = lm.KindONNXCache, true
	} else {
		g.info.Kind = lm.KindONNXFull
	}
	if len(ins) != want {
		return nil, fmt.Errorf("%w: unexpected inputs %v: want input_ids alone (a full-sequence model) or input_ids, attention_mask, position_ids and past_key_values.{i}.key|value (a decoder with past)", lm.ErrModel, names(m.Inputs()))
	}
	return g, nil
}

// describe fills BOS, EOS, MaxPositions and (when the graph leaves them
// symbolic) the vocabulary and cache sizes from the model's metadata_props
// or, failing that, config.json / genai_config.json in dir.
func (g *graph) describe(m *extract.Model, dir string) {
	meta := map[string]string{}
	for _, p := range m.Proto.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	g.info.Metadata = meta
	cfg := readJSON(filepath.Join(dir, "config.json"))
	var genai struct {
		Model map[string]any `json:"model"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "genai_config.json")); err == nil {
		_ = json.Unmarshal(b, &genai)
	}
	get := func(keys ...string) (int, bool) {
		for _, src := range []func(string) (any, bool){
			func(k string) (any, bool) { v, ok := meta[k]; return v, ok },
			func(k string) (any, bool) { v, ok := cfg[k]; return v, ok },
			func(k string) (any, bool) { v, ok := genai.Model[k]; return v, ok },
		} {
			for _, k := range keys {
				if v, ok := src(k); ok {
					if n, ok := asInt(v); ok {
						return n, true
					}
				}
			}
		}
		return 0, false
	}
	if n, ok := get("bos_token_id"); ok {
		g.info.BOS = n
	}
	if n, ok := get("eos_token_id"); ok {
		g.info.EOS = n
	}
	if n, ok := get("max_position_embeddings", "context_length", "n_positions"); ok {
		g.info.MaxPositions = n
	}
	if g.info.Vocab <= 0 {
		if n, ok := get("vocab_size"); ok {
			g.info.Vocab = n
		}
	}
}

func readJSON(path string) map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v
}

// asInt reads a JSON number, a decimal string or a one-element list of
// them (eos_token_id may be a list) as an int.
func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		return int(x), x == float64(int(x))
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	case []any:
		if len(x) > 0 {
			return asInt(x[0])
		}
	}
	return 0, false
}

func names(ts []extract.TensorInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errClosed is returned by a Step after Close.
var errClosed = errors.New("onnxlm: session closed")

package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// HFLlamaConfig is the part of a Hugging Face LlamaForCausalLM
// config.json that a Transformer has.
type HFLlamaConfig struct {
	Architectures []string `json:"architectures"`
	HiddenSize    int      `json:"hidden_size"`
	Intermediate  int      `json:"intermediate_size"`
	Layers        int      `json:"num_hidden_layers"`
	Heads         int      `json:"num_attention_heads"`
	KVHeads       int      `json:"num_key_value_heads"`
	HeadDim       int      `json:"head_dim"`
	Vocab         int      `json:"vocab_size"`
	MaxPositions  int      `json:"max_position_embeddings"`
	RMSNormEps    float64  `json:"rms_norm_eps"`
	RoPETheta     float64  `json:"rope_theta"`
	RoPEScaling   any      `json:"rope_scaling"`
	HiddenAct     string   `json:"hidden_act"`
	AttentionBias bool     `json:"attention_bias"`
	MLPBias       bool     `json:"mlp_bias"`
	TieEmbeddings *bool    `json:"tie_word_embeddings"`
}

// ParseHFLlamaConfig reads a Llama config.json and returns the
// Transformer configuration it describes for sequences of T tokens. It
// refuses what a Transformer does not compute, naming the key: biases,
// RoPE scaling, an activation other than SiLU, another RMSNorm ε, a head
// size other than hidden_size / num_attention_heads, T beyond
// max_position_embeddings.
func ParseHFLlamaConfig(data []byte, T int) (TransformerConfig, error) {
	var c HFLlamaConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return TransformerConfig{}, fmt.Errorf("train: config.json: %w", err)
	}
	bad := func(format string, args ...any) (TransformerConfig, error) {
		return TransformerConfig{}, fmt.Errorf("train: config.json: %s", fmt.Sprintf(format, args...))
	}
	switch {
	case len(c.Architectures) > 0 && !slices.Contains(c.Architectures, "LlamaForCausalLM"):
		return bad("architectures %v: want LlamaForCausalLM", c.Architectures)
	case c.AttentionBias || c.MLPBias:
		return bad("attention_bias or mlp_bias set: distill's transformer has no biases")
	case c.RoPEScaling != nil:
		return bad("rope_scaling %v: not supported", c.RoPEScaling)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return bad("hidden_act %q: want silu (SwiGLU)", c.HiddenAct)
	case c.RMSNormEps != 0 && c.RMSNormEps != RMSNormEps:
		return bad("rms_norm_eps %g: distill's RMSNorm uses %g", c.RMSNormEps, RMSNormEps)
	case c.Heads < 1 || c.HiddenSize%c.Heads != 0 || (c.HeadDim != 0 && c.HeadDim != c.HiddenSize/c.Heads):
		return bad("head_dim %d with hidden_size %d and %d heads: want hidden_size / num_attention_heads", c.HeadDim, c.HiddenSize, c.Heads)
	case c.MaxPositions > 0 && T > c.MaxPositions:
		return bad("%d tokens per sequence, beyond max_position_embeddings %d", T, c.MaxPositions)
	}
	kv := c.KVHeads
	if kv == 0 {
		kv = c.Heads
	}
	theta := c.RoPETheta
	if theta == 0 {
		theta = RoPETheta
	}
	cfg := TransformerConfig{Vocab: c.Vocab, Dim: c.HiddenSize, Layers: c.Layers, Heads: c.Heads, KVHeads: kv, FFN: c.Intermediate, T: T,
		RoPETheta: theta, Untied: c.TieEmbeddings != nil && !*c.TieEmbeddings}
	if err := cfg.check(); err != nil {
		return TransformerConfig{}, err
	}
	return cfg, nil
}

// SetTensors copies tensors (as ReadSafetensors gives them) into the
// parameters of the same Hugging Face names, checking shapes. Every
// parameter must be given; a tied model ignores lm_head.weight when it
// equals the embedding (some exporters write both). Other tensors are an
// error naming them.
func (t *Transformer) SetTensors(tensors []*Param) error {
	byName := map[string]*Param{}
	for _, p := range tensors {
		byName[p.Name] = p
	}
	var missing []string
	for _, p := range t.Params() {
		src, ok := byName[p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		if !slices.Equal(src.Shape, p.Shape) {
			return fmt.Errorf("train: tensor %s has shape %v, the model's is %v", p.Name, src.Shape, p.Shape)
		}
		copy(p.Data, src.Data)
		delete(byName, p.Name)
	}
	if h, ok := byName["lm_head.weight"]; ok && !t.Cfg.Untied && slices.Equal(h.Data, t.Embed.Data) {
		delete(byName, "lm_head.weight")
	}
	if len(missing) > 0 {
		return fmt.Errorf("train: %d tensors missing: %s", len(missing), strings.Join(missing, ", "))
	}
	if len(byName) > 0 {
		extra := make([]string, 0, len(byName))
		for n := range byName {
			extra = append(extra, n)
		}
		slices.Sort(extra)
		return fmt.Errorf("train: tensors the model does not have: %s", strings.Join(extra, ", "))
	}
	return nil
}

// HFConfigJSON returns the Hugging Face config.json of the model: a
// LlamaForCausalLM with its sizes, rms_norm_eps, rope_theta,
// max_position_embeddings = T, tie_word_embeddings, no biases, float32;
// bos and eos ids when ≥ 0.
func (t *Transformer) HFConfigJSON(bos, eos int) ([]byte, error) {
	c := t.Cfg
	m := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": c.Dim, "intermediate_size": c.FFN, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim(),
		"vocab_size": c.Vocab, "max_position_embeddings": c.T, "rms_norm_eps": RMSNormEps,
		"rope_theta": c.RoPETheta, "rope_scaling": nil, "hidden_act": "silu",
		"attention_bias": false, "attention_dropout": 0.0, "mlp_bias": false,
		"initializer_range": 0.02, "tie_word_embeddings": !c.Untied, "torch_dtype": "float32",
	}
	if bos >= 0 {
		m["bos_token_id"] = bos
	}
	if eos >= 0 {
		m["eos_token_id"] = eos
	}
	return json.MarshalIndent(m, "", "  ")
}

// InitFromLayers copies into t, from the tensors of a Hugging Face Llama
// checkpoint of the same width (ReadSafetensors), the embedding, the final
// norm, the classifier when t is untied (lm_head.weight, or the embedding
// of a tied source), and layer layers[i] of the source into t's layer i:
// DistilBERT's initialization (Sanh et al. 2019, which takes every other
// layer of BERT). len(layers) must be t's layer count; an index may repeat.
// Shapes are checked, so a source of another width, head layout or
// vocabulary is an error naming the tensor.
func (t *Transformer) InitFromLayers(tensors []*Param, layers []int) error {
	if len(layers) != t.Cfg.Layers {
		return fmt.Errorf("train: init from %d teacher layers %v into a student of %d layers: give one per student layer", len(layers), layers, t.Cfg.Layers)
	}
	byName := map[string]*Param{}
	for _, p := range tensors {
		byName[p.Name] = p
	}
	cp := func(dst *Param, name string) error {
		src, ok := byName[name]
		if !ok {
			return fmt.Errorf("train: init: the teacher has no tensor %s", name)
		}
		if !slices.Equal(src.Shape, dst.Shape) {
			return fmt.Errorf("train: init: teacher tensor %s has shape %v, the student's %s is %v", name, src.Shape, dst.Name, dst.Shape)
		}
		copy(dst.Data, src.Data)
		return nil
	}
	if err := cp(t.Embed, t.Embed.Name); err != nil {
		return err
	}
	if err := cp(t.Norm.Gamma, t.Norm.Gamma.Name); err != nil {
		return err
	}
	if t.Cfg.Untied {
		name := "lm_head.weight"
		if _, ok := byName[name]; !ok {
			name = t.Embed.Name
		}
		if err := cp(t.Head, name); err != nil {
			return err
		}
	}
	for i, l := range layers {
		from, to := fmt.Sprintf("model.layers.%d.", l), fmt.Sprintf("model.layers.%d.", i)
		b := t.Blocks[i]
		for _, p := range []*Param{b.AttnNorm.Gamma, b.Wq, b.Wk, b.Wv, b.Wo, b.MLPNorm.Gamma, b.Wg, b.Wu, b.Wd} {
			if err := cp(p, from+strings.TrimPrefix(p.Name, to)); err != nil {
				return err
			}
		}
	}
	return nil
}

// UniformLayerMap maps each of a student's layers to a teacher layer,
// TinyBERT's uniform strategy (Jiao et al. 2020): student layer m
// (1-based) learns from teacher layer m·N/M, N the teacher's layers and M
// the student's, so the last layers correspond. It returns, for each
// student layer, the teacher's 1-based layer (hidden_states.j holds the
// output of teacher layer j).
func UniformLayerMap(student, teacher int) []int {
	m := make([]int, student)
	for i := range m {
		m[i] = (i + 1) * teacher / student
	}
	return m
}

// ReadHFLlama reads a Hugging Face Llama directory (config.json and
// model.safetensors) for sequences of T tokens: the Transformer
// configuration (ParseHFLlamaConfig) and the tensors (ReadSafetensors).
func ReadHFLlama(dir string, T int) (TransformerConfig, []*Param, error) {
	js, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return TransformerConfig{}, nil, fmt.Errorf("train: %w", err)
	}
	cfg, err := ParseHFLlamaConfig(js, T)
	if err != nil {
		return TransformerConfig{}, nil, fmt.Errorf("%w (%s)", err, dir)
	}
	path := filepath.Join(dir, "model.safetensors")
	st, err := os.ReadFile(path)
	if err != nil {
		return TransformerConfig{}, nil, fmt.Errorf("train: %w", err)
	}
	tensors, _, err := ReadSafetensors(st)
	if err != nil {
		return TransformerConfig{}, nil, fmt.Errorf("%w (%s)", err, path)
	}
	return cfg, tensors, nil
}

// LoadHFLlama returns the Transformer of a Hugging Face Llama directory
// (ReadHFLlama) with its tensors set.
func LoadHFLlama(dir string, T int) (*Transformer, error) {
	cfg, tensors, err := ReadHFLlama(dir, T)
	if err != nil {
		return nil, err
	}
	m, err := NewTransformer(cfg)
	if err != nil {
		return nil, err
	}
	NewParams(m.Params()...)
	if err := m.SetTensors(tensors); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, dir)
	}
	return m, nil
}

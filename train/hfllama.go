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
// config.json that a Transformer has, and the keys HFConfigJSON adds for
// a Transformer of GPT-2's options (norm_type, mlp_type,
// position_embedding_type, layer_norm_eps).
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
	NormType      string   `json:"norm_type"`               // TransformerConfig.Norm; absent: rmsnorm
	MLPType       string   `json:"mlp_type"`                // TransformerConfig.MLP; absent: swiglu
	PosType       string   `json:"position_embedding_type"` // TransformerConfig.Pos; absent: rope
	LayerNormEps  float64  `json:"layer_norm_eps"`
}

// Architecture names in config.json: Hugging Face's Llama, and the one
// HFConfigJSON writes for a Transformer of other options, which no
// Hugging Face class loads.
const (
	HFLlamaArch   = "LlamaForCausalLM"
	HFDistillArch = "DistillDecoderForCausalLM"
)

// HFGELUTanh is config.json's hidden_act of MLPGELU: Hugging Face's name
// of the tanh approximation (GELUTanh); "gelu_new", GPT-2's, is read as
// the same function.
const HFGELUTanh = "gelu_pytorch_tanh"

// ParseHFLlamaConfig reads a config.json (a Llama's, or HFConfigJSON's
// for other options) and returns the Transformer configuration it
// describes for sequences of T tokens. It refuses what a Transformer does
// not compute, naming the key: biases, RoPE scaling, another activation
// (silu for SwiGLU, gelu_pytorch_tanh or gelu_new for the GELU MLP),
// another norm ε, a head size other than hidden_size /
// num_attention_heads, T beyond max_position_embeddings, a
// LlamaForCausalLM with other options than Llama's.
func ParseHFLlamaConfig(data []byte, T int) (TransformerConfig, error) {
	var c HFLlamaConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return TransformerConfig{}, fmt.Errorf("train: config.json: %w", err)
	}
	bad := func(format string, args ...any) (TransformerConfig, error) {
		return TransformerConfig{}, fmt.Errorf("train: config.json: %s", fmt.Sprintf(format, args...))
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
		RoPETheta: theta, Untied: c.TieEmbeddings != nil && !*c.TieEmbeddings, Norm: c.NormType, MLP: c.MLPType, Pos: c.PosType}.withDefaults()
	act := "silu"
	if cfg.MLP == MLPGELU {
		act = HFGELUTanh
	}
	switch {
	case cfg.Norm != NormRMS && cfg.Norm != NormLayer:
		return bad("norm_type %q: want %s or %s", c.NormType, NormRMS, NormLayer)
	case cfg.MLP != MLPSwiGLU && cfg.MLP != MLPGELU:
		return bad("mlp_type %q: want %s or %s", c.MLPType, MLPSwiGLU, MLPGELU)
	case cfg.Pos != PosRoPE && cfg.Pos != PosLearned:
		return bad("position_embedding_type %q: want %s or %s", c.PosType, PosRoPE, PosLearned)
	case len(c.Architectures) > 0 && !slices.Contains(c.Architectures, HFLlamaArch) && !slices.Contains(c.Architectures, HFDistillArch):
		return bad("architectures %v: want %s (or %s, distill's for other options)", c.Architectures, HFLlamaArch, HFDistillArch)
	case slices.Contains(c.Architectures, HFLlamaArch) && !cfg.Llama():
		return bad("architectures %v with %s: a Llama has norm rmsnorm, mlp swiglu, pos rope", c.Architectures, cfg.Variant())
	case c.AttentionBias || c.MLPBias:
		return bad("attention_bias or mlp_bias set: distill's transformer has no biases")
	case c.RoPEScaling != nil:
		return bad("rope_scaling %v: not supported", c.RoPEScaling)
	case c.HiddenAct != "" && c.HiddenAct != act && !(cfg.MLP == MLPGELU && c.HiddenAct == "gelu_new"):
		return bad("hidden_act %q: want %s (mlp %s)", c.HiddenAct, act, cfg.MLP)
	case cfg.Norm == NormRMS && c.RMSNormEps != 0 && c.RMSNormEps != RMSNormEps:
		return bad("rms_norm_eps %g: distill's RMSNorm uses %g", c.RMSNormEps, RMSNormEps)
	case cfg.Norm == NormLayer && c.LayerNormEps != 0 && c.LayerNormEps != LayerNormEps:
		return bad("layer_norm_eps %g: distill's LayerNorm uses %g", c.LayerNormEps, LayerNormEps)
	case c.Heads < 1 || c.HiddenSize%c.Heads != 0 || (c.HeadDim != 0 && c.HeadDim != c.HiddenSize/c.Heads):
		return bad("head_dim %d with hidden_size %d and %d heads: want hidden_size / num_attention_heads", c.HeadDim, c.HiddenSize, c.Heads)
	case c.MaxPositions > 0 && T > c.MaxPositions:
		return bad("%d tokens per sequence, beyond max_position_embeddings %d", T, c.MaxPositions)
	}
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

// HFConfigJSON returns the Hugging Face config.json of the model. A Llama
// (Cfg.Llama) is a LlamaForCausalLM with its sizes, rms_norm_eps,
// rope_theta, max_position_embeddings = T, tie_word_embeddings, no
// biases, float32; bos and eos ids when ≥ 0. A model of other options is
// written as architectures [HFDistillArch], model_type "distill_decoder",
// which no Hugging Face class loads, with the same keys and norm_type,
// mlp_type and position_embedding_type (the options); a LayerNorm model
// has layer_norm_eps instead of rms_norm_eps, a GELU one hidden_act
// gelu_pytorch_tanh, a learned-position one no rope_theta (its table has
// max_position_embeddings = T rows).
func (t *Transformer) HFConfigJSON(bos, eos int) ([]byte, error) {
	c := t.Cfg
	m := map[string]any{
		"architectures": []string{HFLlamaArch}, "model_type": "llama",
		"hidden_size": c.Dim, "intermediate_size": c.FFN, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim(),
		"vocab_size": c.Vocab, "max_position_embeddings": c.T, "rms_norm_eps": RMSNormEps,
		"rope_theta": c.RoPETheta, "rope_scaling": nil, "hidden_act": "silu",
		"attention_bias": false, "attention_dropout": 0.0, "mlp_bias": false,
		"initializer_range": 0.02, "tie_word_embeddings": !c.Untied, "torch_dtype": "float32",
	}
	if !c.Llama() {
		m["architectures"], m["model_type"] = []string{HFDistillArch}, "distill_decoder"
		m["norm_type"], m["mlp_type"], m["position_embedding_type"] = c.Norm, c.MLP, c.Pos
		if c.Norm == NormLayer {
			delete(m, "rms_norm_eps")
			m["layer_norm_eps"] = LayerNormEps
		}
		if c.MLP == MLPGELU {
			m["hidden_act"] = HFGELUTanh
		}
		if c.Pos == PosLearned {
			delete(m, "rope_theta")
			delete(m, "rope_scaling")
		}
	}
	if bos >= 0 {
		m["bos_token_id"] = bos
	}
	if eos >= 0 {
		m["eos_token_id"] = eos
	}
	return json.MarshalIndent(m, "", "  ")
}

// InitFromLayers copies into t, from the tensors of a Hugging Face
// checkpoint of configuration src (ReadHFLlama) and the same width, the
// embedding, the position table (its first T rows) when t has one, the
// final norm, the classifier when t is untied (lm_head.weight, or the
// embedding of a tied source), and layer layers[i] of the source into t's
// layer i: DistilBERT's initialization (Sanh et al. 2019, which takes
// every other layer of BERT). len(layers) must be t's layer count; an
// index may repeat. A source of other options (norm, MLP, position
// embedding; see TransformerConfig.Variant) is an error naming both;
// shapes are checked, so a source of another width, head layout or
// vocabulary is an error naming the tensor.
func (t *Transformer) InitFromLayers(src TransformerConfig, tensors []*Param, layers []int) error {
	if got, want := src.Variant(), t.Cfg.Variant(); got != want {
		return fmt.Errorf("train: init from a teacher of %s into a student of %s: give the student the teacher's options", got, want)
	}
	if len(layers) != t.Cfg.Layers {
		return fmt.Errorf("train: init from %d teacher layers %v into a student of %d layers: give one per student layer", len(layers), layers, t.Cfg.Layers)
	}
	byName := map[string]*Param{}
	for _, p := range tensors {
		byName[p.Name] = p
	}
	cp := func(dst *Param, name string) error {
		p, ok := byName[name]
		if !ok {
			return fmt.Errorf("train: init: the teacher has no tensor %s", name)
		}
		shape := p.Shape
		if dst == t.Pos && len(shape) == 2 && shape[0] >= dst.Shape[0] {
			shape = []int{dst.Shape[0], shape[1]} // the first T positions
		}
		if !slices.Equal(shape, dst.Shape) {
			return fmt.Errorf("train: init: teacher tensor %s has shape %v, the student's %s is %v", name, p.Shape, dst.Name, dst.Shape)
		}
		copy(dst.Data, p.Data)
		return nil
	}
	top := append([]*Param{t.Embed}, t.Norm.Params()...)
	if t.Pos != nil {
		top = append(top, t.Pos)
	}
	for _, p := range top {
		if err := cp(p, p.Name); err != nil {
			return err
		}
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
		for _, p := range t.Blocks[i].params() {
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

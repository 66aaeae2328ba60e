package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHFCheckpointOptions writes a Transformer of every option
// combination (norm, MLP, position embedding; tied and untied) in the
// Hugging Face layout (writeLMCheckpoint: config.json, model.safetensors) and reads
// it back with LoadHFLlama: the configuration round-trips and the logits
// are the same, bit for bit. config.json says LlamaForCausalLM only for
// Llama's options, and names the options otherwise.
func TestHFCheckpointOptions(t *testing.T) {
	ids := []int32{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}
	for _, norm := range []string{NormRMS, NormLayer} {
		for _, mlp := range []string{MLPSwiGLU, MLPGELU} {
			for _, pos := range []string{PosRoPE, PosLearned} {
				for _, untied := range []bool{false, true} {
					cfg := TransformerConfig{Vocab: 10, Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, FFN: 12, T: 6, Untied: untied, Norm: norm, MLP: mlp, Pos: pos}
					name := fmt.Sprintf("%s, untied %v", cfg.Variant(), untied)
					m := randomTransformer(t, cfg, rand.New(rand.NewPCG(1, 2)), 0.5)
					dir := filepath.Join(t.TempDir(), "ckpt")
					if err := writeLMCheckpoint(dir, m, nil, LMCheckpointInfo{}); err != nil {
						t.Fatal(err)
					}
					js, err := os.ReadFile(filepath.Join(dir, "config.json"))
					if err != nil {
						t.Fatal(err)
					}
					var hc HFLlamaConfig
					if err := json.Unmarshal(js, &hc); err != nil {
						t.Fatal(err)
					}
					llama := norm == NormRMS && mlp == MLPSwiGLU && pos == PosRoPE
					if wantArch := map[bool]string{true: HFLlamaArch, false: HFDistillArch}[llama]; !slices.Equal(hc.Architectures, []string{wantArch}) {
						t.Errorf("%s: architectures %v, want %s", name, hc.Architectures, wantArch)
					}
					if !llama && (hc.NormType != norm || hc.MLPType != mlp || hc.PosType != pos) {
						t.Errorf("%s: config.json names norm %q, mlp %q, pos %q", name, hc.NormType, hc.MLPType, hc.PosType)
					}
					m2, err := LoadHFLlama(dir, cfg.T)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if m2.Cfg != m.Cfg {
						t.Errorf("%s: config read back %+v, want %+v", name, m2.Cfg, m.Cfg)
					}
					a := Mat{Rows: len(ids), Cols: cfg.Vocab, Data: make([]float32, len(ids)*cfg.Vocab)}
					b := Mat{Rows: len(ids), Cols: cfg.Vocab, Data: make([]float32, len(ids)*cfg.Vocab)}
					m.Forward(a, ids)
					m2.Forward(b, ids)
					if !slices.Equal(a.Data, b.Data) {
						t.Errorf("%s: the checkpoint read back gives other logits", name)
					}
				}
			}
		}
	}
}

// TestParseHFConfigOptions: config.json keys that contradict each other
// or that distill does not compute are refused, naming the key.
func TestParseHFConfigOptions(t *testing.T) {
	m, _ := NewTransformer(TransformerConfig{Vocab: 10, Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 12, T: 6, Norm: NormLayer, MLP: MLPGELU, Pos: PosLearned})
	js, err := m.HFConfigJSON(-1, -1)
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]any
	if err := json.Unmarshal(js, &base); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHFLlamaConfig(js, 6); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		v    any
		want string
	}{
		{"architectures", []string{HFLlamaArch}, "a Llama has"},
		{"architectures", []string{"GPT2LMHeadModel"}, "architectures"},
		{"norm_type", "batchnorm", "norm_type"},
		{"mlp_type", "moe", "mlp_type"},
		{"position_embedding_type", "alibi", "position_embedding_type"},
		{"hidden_act", "gelu", "hidden_act"}, // the erf form
		{"hidden_act", "silu", "hidden_act"},
		{"layer_norm_eps", 1e-6, "layer_norm_eps"},
		{"mlp_bias", true, "bias"},
		{"max_position_embeddings", 4, "max_position_embeddings"},
	} {
		edited := map[string]any{}
		for k, v := range base {
			edited[k] = v
		}
		edited[tc.key] = tc.v
		data, _ := json.Marshal(edited)
		if _, err := ParseHFLlamaConfig(data, 6); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want an error naming %q", tc.key, tc.v, err, tc.want)
		}
	}
	// GPT-2's own name of the same tanh GELU reads too.
	base["hidden_act"] = "gelu_new"
	data, _ := json.Marshal(base)
	if cfg, err := ParseHFLlamaConfig(data, 6); err != nil || cfg.MLP != MLPGELU {
		t.Errorf("hidden_act gelu_new: %+v, %v", cfg, err)
	}
}

// TestInitFromLayersOptions initializes a 2-layer GPT-style student
// (LayerNorm, GELU MLP, learned positions) of 6 positions from layers 2
// and 0 of a 3-layer one of 8: every student tensor is the teacher's
// (the position table's first 6 rows). A student of other options is
// refused, naming both sets.
func TestInitFromLayersOptions(t *testing.T) {
	tcfg := TransformerConfig{Vocab: 10, Dim: 8, Layers: 3, Heads: 2, KVHeads: 1, FFN: 12, T: 8, Norm: NormLayer, MLP: MLPGELU, Pos: PosLearned}
	teacher := randomTransformer(t, tcfg, rand.New(rand.NewPCG(4, 4)), 0.5)
	tensors := teacher.Params()
	byName := map[string]*Param{}
	for _, p := range tensors {
		byName[p.Name] = p
	}
	scfg := tcfg
	scfg.Layers, scfg.T = 2, 6
	s, _ := NewTransformer(scfg)
	NewParams(s.Params()...)
	if err := s.InitFromLayers(teacher.Cfg, tensors, []int{2, 0}); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Params() {
		name := strings.NewReplacer("layers.0.", "layers.2.", "layers.1.", "layers.0.").Replace(p.Name)
		src := byName[name].Data
		if !slices.Equal(p.Data, src[:len(p.Data)]) {
			t.Errorf("student %s is not the teacher's %s", p.Name, name)
		}
	}
	for _, other := range []TransformerConfig{
		{Norm: NormRMS, MLP: MLPGELU, Pos: PosLearned}, {Norm: NormLayer, MLP: MLPSwiGLU, Pos: PosLearned}, {Norm: NormLayer, MLP: MLPGELU, Pos: PosRoPE},
	} {
		c := scfg
		c.Norm, c.MLP, c.Pos = other.Norm, other.MLP, other.Pos
		o, _ := NewTransformer(c)
		NewParams(o.Params()...)
		err := o.InitFromLayers(teacher.Cfg, tensors, []int{2, 0})
		if err == nil || !strings.Contains(err.Error(), tcfg.Variant()) || !strings.Contains(err.Error(), c.Variant()) {
			t.Errorf("a %s student from a %s teacher: %v", c.Variant(), tcfg.Variant(), err)
		}
	}
	long := scfg
	long.T = 9
	l, _ := NewTransformer(long)
	NewParams(l.Params()...)
	if err := l.InitFromLayers(teacher.Cfg, tensors, []int{2, 0}); err == nil || !strings.Contains(err.Error(), "model.embed_positions.weight") {
		t.Errorf("9 positions from a table of 8: %v", err)
	}
}

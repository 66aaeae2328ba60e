package train

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// TestTransformerStories260K loads the real stories260K teacher in the
// Hugging Face layout (../shared/teachers/seq/stories260K-hf: config.json,
// model.safetensors; q/k rows ordered for rotate_half) into a Transformer
// and runs the golden greedy sequence (BOS + 200 tokens) through it in one
// pass: at every position the argmax of the logits must be the next
// golden token, which is what greedy decoding reproducing the golden text
// means. The seq README's negative control (adjacent-pair RoPE on these
// rows) agrees at 41 % of positions, so the check sees the RoPE
// convention, the grouped-query mapping, SwiGLU and RMSNorm.
func TestTransformerStories260K(t *testing.T) {
	dir := sharedtest.Dir(t, "teachers", "seq")
	tok, _, err := tokenizer.Load(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(sharedtest.StoriesGreedy, true)
	if err != nil || len(ids) != 201 {
		t.Fatalf("golden text: %d ids, %v", len(ids), err)
	}
	hf := filepath.Join(dir, "stories260K-hf")
	cfg, tensors, err := ReadHFLlama(hf, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dim != 64 || cfg.Layers != 5 || cfg.Heads != 8 || cfg.KVHeads != 4 || cfg.FFN != 172 || cfg.Vocab != 512 || cfg.Untied {
		t.Fatalf("config %+v", cfg)
	}
	m, err := LoadHFLlama(hf, len(ids))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(hf, "config.json")) // edited below
	if err != nil {
		t.Fatal(err)
	}
	in := make([]int32, len(ids))
	for i, id := range ids {
		in[i] = int32(id)
	}
	logits := Mat{Rows: len(in), Cols: 512, Data: make([]float32, len(in)*512)}
	m.Forward(logits, in)
	var nll float64
	for p := 0; p+1 < len(in); p++ {
		row := logits.Data[p*512 : (p+1)*512]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		if best != int(in[p+1]) {
			t.Fatalf("position %d: argmax %d, the golden next token is %d", p, best, in[p+1])
		}
		nll += formats.LogSumExp(row) - float64(row[in[p+1]])
	}
	t.Logf("200/200 greedy tokens reproduced; NLL of the greedy text %.4f nats/token", nll/200)

	// Refusals name the key.
	for _, tc := range []struct{ edit, want string }{
		{`"rope_scaling": {"type": "linear", "factor": 2}`, "rope_scaling"},
		{`"attention_bias": true`, "bias"},
		{`"hidden_act": "gelu"`, "hidden_act"},
	} {
		key := strings.SplitN(tc.edit, ":", 2)[0]
		i := strings.Index(string(js), key)
		j := i + strings.IndexAny(string(js[i:]), ",\n")
		edited := string(js[:i]) + tc.edit + string(js[j:])
		if _, err := ParseHFLlamaConfig([]byte(edited), 8); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.edit, err)
		}
	}
	if _, err := ParseHFLlamaConfig(js, 513); err == nil || !strings.Contains(err.Error(), "max_position_embeddings") {
		t.Errorf("T 513: %v", err)
	}
	// Written back in the Hugging Face layout (config.json from
	// HFConfigJSON, the tensors by WriteSafetensors), the model reads
	// into a new Transformer with the same logits, bit for bit.
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, m.Params(), nil); err != nil {
		t.Fatal(err)
	}
	js2, err := m.HFConfigJSON(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := ParseHFLlamaConfig(js2, len(ids))
	if err != nil || cfg2 != cfg {
		t.Fatalf("config.json round trip: %+v, %v; want %+v", cfg2, err, cfg)
	}
	m2, _ := NewTransformer(cfg2)
	NewParams(m2.Params()...)
	back, _, err := ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.SetTensors(back); err != nil {
		t.Fatal(err)
	}
	logits2 := Mat{Rows: len(in), Cols: 512, Data: make([]float32, len(in)*512)}
	m2.Forward(logits2, in)
	if !slices.Equal(logits.Data, logits2.Data) {
		t.Error("the written and read model gives other logits")
	}

	tensors[3].Shape = []int{1, 2}
	if err := m.SetTensors(tensors); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
}

// TestInitFromLayers builds a 3-layer student of stories260K's width from
// its layers 0, 2 and 4 (DistilBERT's init): the embedding, norms and the
// chosen layers' weights are the teacher's, and the student's logits are
// those of the teacher with layers 1 and 3 taken out. A student of
// another width is refused, naming the tensor.
func TestInitFromLayers(t *testing.T) {
	dir := sharedtest.Dir(t, "teachers", "seq", "stories260K-hf")
	tcfg, tensors, err := ReadHFLlama(dir, 16)
	if err != nil {
		t.Fatal(err)
	}
	scfg := tcfg
	scfg.Layers = 3
	s, _ := NewTransformer(scfg)
	NewParams(s.Params()...)
	if err := s.InitFromLayers(tcfg, tensors, []int{0, 2, 4}); err != nil {
		t.Fatal(err)
	}
	// The teacher with only layers 0, 2, 4: the same tensors renamed.
	var renamed []*Param
	for _, p := range tensors {
		q := *p
		for to, from := range []int{0, 2, 4} {
			pre := fmt.Sprintf("model.layers.%d.", from)
			if strings.HasPrefix(p.Name, pre) {
				q.Name = fmt.Sprintf("model.layers.%d.", to) + strings.TrimPrefix(p.Name, pre)
			}
		}
		if !strings.HasPrefix(p.Name, "model.layers.1.") && !strings.HasPrefix(p.Name, "model.layers.3.") {
			renamed = append(renamed, &q)
		}
	}
	ref, _ := NewTransformer(scfg)
	NewParams(ref.Params()...)
	if err := ref.SetTensors(renamed); err != nil {
		t.Fatal(err)
	}
	ids := []int32{1, 403, 407, 261, 378, 395, 278, 300, 1, 22, 56, 99, 460, 511, 3, 4}
	a := Mat{Rows: 16, Cols: 512, Data: make([]float32, 16*512)}
	b := Mat{Rows: 16, Cols: 512, Data: make([]float32, 16*512)}
	s.Forward(a, ids)
	ref.Forward(b, ids)
	if !slices.Equal(a.Data, b.Data) {
		t.Error("the student initialized from layers 0,2,4 differs from the teacher without layers 1 and 3")
	}
	narrow := scfg
	narrow.Dim, narrow.Heads, narrow.KVHeads = 48, 6, 3
	n, _ := NewTransformer(narrow)
	NewParams(n.Params()...)
	if err := n.InitFromLayers(tcfg, tensors, []int{0, 2, 4}); err == nil || !strings.Contains(err.Error(), "model.embed_tokens.weight") {
		t.Errorf("a narrower student: %v", err)
	}
	if err := s.InitFromLayers(tcfg, tensors, []int{0, 2}); err == nil {
		t.Error("two layers for a 3-layer student accepted")
	}
	if got := UniformLayerMap(3, 5); !slices.Equal(got, []int{1, 3, 5}) {
		t.Errorf("UniformLayerMap(3, 5) = %v", got)
	}
	if got := UniformLayerMap(4, 12); !slices.Equal(got, []int{3, 6, 9, 12}) {
		t.Errorf("UniformLayerMap(4, 12) = %v (TinyBERT's 4-layer map of BERT-base)", got)
	}
}

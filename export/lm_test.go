package export

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

// testLM returns a transformer of cfg with random weights.
func testLM(t testing.TB, cfg train.TransformerConfig) *train.Transformer {
	t.Helper()
	m, err := train.NewTransformer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	train.NewParams(m.Params()...)
	m.Init(rand.New(rand.NewPCG(3, 4)))
	return m
}

var (
	llamaGQA = train.TransformerConfig{Vocab: 50, Dim: 16, Layers: 2, Heads: 4, KVHeads: 2, FFN: 24, T: 32}
	gpt2Like = train.TransformerConfig{Vocab: 40, Dim: 12, Layers: 1, Heads: 3, KVHeads: 3, FFN: 20, T: 16,
		Untied: true, Norm: train.NormLayer, MLP: train.MLPGELU, Pos: train.PosLearned}
)

// lmVariant is one exported form of a test transformer.
type lmVariant struct {
	name string
	cfg  train.TransformerConfig
	opts LMOptions
}

// lmVariants covers both forms, every weight format, the option
// combinations and the opsets where the graph changes (13: the oldest;
// 17: LayerNormalization; 18: ReduceMean's axes as an input; 20: Gelu).
var lmVariants = []lmVariant{
	{"llama_kv", llamaGQA, LMOptions{}},
	{"llama_nocache", llamaGQA, LMOptions{NoCache: true}},
	{"llama_kv_f16", llamaGQA, LMOptions{Options: Options{Dtype: F16}}},
	{"llama_kv_int8", llamaGQA, LMOptions{Options: Options{Quantize: Int8}}},
	{"llama_nocache_int8", llamaGQA, LMOptions{NoCache: true, Options: Options{Quantize: Int8}}},
	{"llama_kv_opset13", llamaGQA, LMOptions{Options: Options{Opset: 13}}},
	{"gpt2_kv", gpt2Like, LMOptions{}},
	{"gpt2_nocache_f16", gpt2Like, LMOptions{NoCache: true, Options: Options{Dtype: F16}}},
	{"gpt2_kv_int8", gpt2Like, LMOptions{Options: Options{Quantize: Int8}}},
	{"gpt2_kv_opset13", gpt2Like, LMOptions{Options: Options{Opset: 13}}},
	{"gpt2_kv_opset20", gpt2Like, LMOptions{Options: Options{Opset: 20}}},
	{"llama_kv_opset18", llamaGQA, LMOptions{Options: Options{Opset: 18}}},
	{"rms_gelu_rope_mqa_untied", train.TransformerConfig{Vocab: 30, Dim: 16, Layers: 1, Heads: 4, KVHeads: 1, FFN: 8, T: 8, Untied: true, MLP: train.MLPGELU}, LMOptions{}},
}

func ptr(v int) *int { return &v }

func marshalLM(t testing.TB, v lmVariant) []byte {
	t.Helper()
	o := v.opts
	o.ToolVersion = "test"
	o.BOS, o.EOS = ptr(1), ptr(2)
	data, err := MarshalLM(testLM(t, v.cfg), nil, &o)
	if err != nil {
		t.Fatalf("%s: %v", v.name, err)
	}
	return data
}

// TestLMGolden keeps the graphs of a one-layer GQA Llama as a decoder with
// past and of a GPT-2-like model (LayerNorm, GELU, learned positions,
// untied) without cache readable in testdata, so a change of the graph
// shows in review.
func TestLMGolden(t *testing.T) {
	small := llamaGQA
	small.Layers, small.Vocab, small.T = 1, 10, 4
	for _, v := range []lmVariant{{"lm_llama_kv", small, LMOptions{}}, {"lm_gpt2_nocache_int8", gpt2Like, LMOptions{NoCache: true, Options: Options{Quantize: Int8}}}} {
		t.Run(v.name, func(t *testing.T) { golden(t, v.name, marshalLM(t, v)) })
	}
}

// TestLMChecker runs the official ONNX checker (full_check: shape
// inference too) over every language-model variant the checker's ONNX
// (opset ≤ 17) knows.
func TestLMChecker(t *testing.T) {
	script := requireChecker(t)
	dir := t.TempDir()
	var files []string
	for _, v := range lmVariants {
		if v.opts.Opset > 17 {
			continue
		}
		p := filepath.Join(dir, v.name+".onnx")
		if err := os.WriteFile(p, marshalLM(t, v), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	runChecker(t, script, files)
}

// TestLMSignature checks the inputs, outputs and their dimensions of both
// forms, and that the model is the same bytes when written twice.
func TestLMSignature(t *testing.T) {
	sig := func(vs []*onnxpb.ValueInfoProto) string {
		var p []string
		for _, v := range vs {
			var d []string
			for _, dim := range v.GetType().GetTensorType().GetShape().GetDim() {
				if dim.GetDimParam() != "" {
					d = append(d, dim.GetDimParam())
				} else {
					d = append(d, fmt.Sprint(dim.GetDimValue()))
				}
			}
			p = append(p, fmt.Sprintf("%s %s[%s]", v.GetName(), elemName(v.GetType().GetTensorType().GetElemType()), strings.Join(d, ",")))
		}
		return strings.Join(p, "; ")
	}
	for _, tc := range []struct {
		v       lmVariant
		in, out string
	}{
		{lmVariants[0],
			"input_ids int64[batch_size,sequence_length]; attention_mask int64[batch_size,total_sequence_length]; position_ids int64[batch_size,sequence_length]; " +
				"past_key_values.0.key float[batch_size,2,past_sequence_length,4]; past_key_values.0.value float[batch_size,2,past_sequence_length,4]; " +
				"past_key_values.1.key float[batch_size,2,past_sequence_length,4]; past_key_values.1.value float[batch_size,2,past_sequence_length,4]",
			"logits float[batch_size,sequence_length,50]; present.0.key float[batch_size,2,total_sequence_length,4]; present.0.value float[batch_size,2,total_sequence_length,4]; " +
				"present.1.key float[batch_size,2,total_sequence_length,4]; present.1.value float[batch_size,2,total_sequence_length,4]"},
		{lmVariants[1], "input_ids int64[batch_size,sequence_length]", "logits float[batch_size,sequence_length,50]"},
	} {
		data := marshalLM(t, tc.v)
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if got := sig(m.GetGraph().GetInput()); got != tc.in {
			t.Errorf("%s inputs:\n got %s\nwant %s", tc.v.name, got, tc.in)
		}
		if got := sig(m.GetGraph().GetOutput()); got != tc.out {
			t.Errorf("%s outputs:\n got %s\nwant %s", tc.v.name, got, tc.out)
		}
		if !bytes.Equal(data, marshalLM(t, tc.v)) {
			t.Errorf("%s: two exports differ", tc.v.name)
		}
	}
}

// TestLMMetadata checks the metadata a runtime or a reader of the file
// finds: the Hugging Face config keys, the cache name patterns (KV form
// only), the token ids and the provenance of the checkpoint.
func TestLMMetadata(t *testing.T) {
	m := testLM(t, llamaGQA)
	info := &train.LMCheckpointInfo{Student: m.Cfg, Training: train.Options{Temperature: 2, Alpha: 0.5}, Epoch: 3, Step: 42,
		Cache: train.Provenance{Digest: "sha256:cafe", TeacherSHA256: "beef"}, Epochs: []train.LMEpoch{{Epoch: 3, Step: 42, TrainLoss: 1.5, ValNLL: 2.25}}}
	for _, noCache := range []bool{false, true} {
		data, err := MarshalLM(m, info, &LMOptions{Options: Options{ToolVersion: "v9", Quantize: Int8}, NoCache: noCache, BOS: ptr(1), Tokenizer: "tok.bin", TokenizerSHA256: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(data, &mp); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range mp.GetMetadataProps() {
			got[p.GetKey()] = p.GetValue()
		}
		want := map[string]string{
			"model_type": "llama", "num_hidden_layers": "2", "num_attention_heads": "4", "num_key_value_heads": "2", "head_dim": "4",
			"hidden_size": "16", "intermediate_size": "24", "vocab_size": "50", "max_position_embeddings": "32", "bos_token_id": "1",
			"rms_norm_eps": "1e-05", "rope_theta": "10000", "tie_word_embeddings": "true", "tokenizer": "tok.bin", "tokenizer_sha256": "abc",
			MetaToolVersion: "v9", MetaQuantize: Int8, MetaDtype: F32, MetaTemperature: "2", MetaAlpha: "0.5", MetaEpochs: "3", MetaSteps: "42",
			MetaCacheDigest: "sha256:cafe", MetaTeacherSHA256: "beef",
			MetaMetrics: `{"epoch":3,"step":42,"train_loss":1.5,"val_nll":2.25}`,
		}
		kv := map[string]string{"past_key_names": PastKeyNames, "past_value_names": PastValueNames,
			"present_key_names": PresentKeyNames, "present_value_names": PresentValueNames, MetaKVLayout: KVCacheLayout}
		for k, v := range kv {
			if noCache {
				if _, ok := got[k]; ok {
					t.Errorf("no-cache model has %s", k)
				}
			} else {
				want[k] = v
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("no-cache %v: metadata %s = %q, want %q", noCache, k, got[k], v)
			}
		}
		if _, ok := got["eos_token_id"]; ok {
			t.Error("eos_token_id recorded for an unknown EOS")
		}
		if !strings.Contains(got[MetaStudent], `"Heads":4`) {
			t.Errorf("%s = %s", MetaStudent, got[MetaStudent])
		}
	}
	data, err := MarshalLM(testLM(t, gpt2Like), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if err := Dump(&dump, data); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"meta    model_type = distill_decoder", "meta    layer_norm_eps = 1e-05", "meta    position_embedding_type = learned"} {
		if !strings.Contains(dump.String(), s) {
			t.Errorf("the GPT-2-like model's dump has no %q", s)
		}
	}
	if strings.Contains(dump.String(), "rope_theta") {
		t.Error("a learned-position model records rope_theta")
	}
}

// TestLMOptionErrors checks what MarshalLM refuses.
func TestLMOptionErrors(t *testing.T) {
	m := testLM(t, llamaGQA)
	for _, tc := range []struct {
		opts LMOptions
		want string
	}{
		{LMOptions{Options: Options{Opset: 12}}, "opsets 13 to"},
		{LMOptions{Options: Options{Opset: 24}}, "opset 24"},
		{LMOptions{Options: Options{Probs: true}}, "softmax yourself"},
		{LMOptions{Options: Options{Dtype: F16, Quantize: Int8}}, "choose one"},
	} {
		_, err := MarshalLM(m, nil, &tc.opts)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want ErrUnsupported with %q", tc.opts, err, tc.want)
		}
	}
	big := testLM(t, llamaGQA)
	big.Blocks[1].Wd.Data[3] = 1e5
	if _, err := MarshalLM(big, nil, &LMOptions{Options: Options{Dtype: F16}}); err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.down_proj.weight[3]") {
		t.Errorf("a weight beyond float16: %v", err)
	}
}

// TestRotateHalf checks R against rotate_half(x) = cat(−x₂, x₁).
func TestRotateHalf(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	r := rotateHalf(6)
	var got []float32
	for c := range 6 {
		var s float32
		for i := range 6 {
			s += x[i] * r[i*6+c]
		}
		got = append(got, s)
	}
	if fmt.Sprint(got) != fmt.Sprint([]float32{-4, -5, -6, 1, 2, 3}) {
		t.Errorf("x·R = %v", got)
	}
}

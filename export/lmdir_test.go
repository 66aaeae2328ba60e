package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// jsonKeys returns the paths of every key of a JSON object, sorted.
func jsonKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, x := range m {
			keys = append(keys, prefix+k)
			if sub, ok := x.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", v)
	slices.Sort(keys)
	return keys
}

// TestWriteLMDir writes the stories260K weights as an export folder with
// tok512.bin: model.onnx (its metadata naming the tokenizer), a
// config.json that reads back as the same transformer with BOS 1 and EOS
// 2, a genai_config.json with exactly the keys of the third-party
// stories260K-kv.genai_config.json and the same values where the models
// agree, and the tokenizer copied byte for byte. A no-cache export has no
// genai_config.json; a second export replaces the first.
func TestWriteLMDir(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	m, err := train.LoadHFLlama(filepath.Join(seq, "stories260K-hf"), 512)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out", "stories")
	tok := filepath.Join(seq, "tok512.bin")
	if err := WriteLMDir(dir, m, nil, tok, &LMOptions{Options: Options{ToolVersion: "test"}}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "config.json genai_config.json model.onnx tok512.bin" {
		t.Fatalf("the folder holds %v", names)
	}
	cfgJSON, _ := os.ReadFile(filepath.Join(dir, LMConfigFile))
	cfg, err := train.ParseHFLlamaConfig(cfgJSON, 512)
	if err != nil || cfg != m.Cfg {
		t.Errorf("config.json reads back as %+v (%v), want %+v", cfg, err, m.Cfg)
	}
	var hf map[string]any
	json.Unmarshal(cfgJSON, &hf)
	for k, want := range map[string]float64{"bos_token_id": 1, "eos_token_id": 2, "hidden_size": 64, "num_hidden_layers": 5, "num_attention_heads": 8,
		"num_key_value_heads": 4, "intermediate_size": 172, "vocab_size": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000, "max_position_embeddings": 512} {
		if hf[k] != want {
			t.Errorf("config.json %s = %v, want %v", k, hf[k], want)
		}
	}
	ours, _ := os.ReadFile(filepath.Join(dir, GenAIFile))
	theirs, err := os.ReadFile(filepath.Join(seq, "stories260K-kv.genai_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := jsonKeys(t, ours), jsonKeys(t, theirs); !slices.Equal(a, b) {
		t.Errorf("genai_config.json keys:\n ours %v\ntheirs %v", a, b)
	}
	// The same model and names: only the file name differs.
	var got, want any
	json.Unmarshal(ours, &got)
	json.Unmarshal([]byte(strings.Replace(string(theirs), "stories260K-kv.onnx", LMModelFile, 1)), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("genai_config.json:\n%s\nwant stories260K-kv's (file name %s):\n%s", ours, LMModelFile, theirs)
	}
	a, _ := os.ReadFile(tok)
	b, _ := os.ReadFile(filepath.Join(dir, "tok512.bin"))
	if !bytes.Equal(a, b) {
		t.Error("the tokenizer copy differs")
	}
	model, _ := os.ReadFile(filepath.Join(dir, LMModelFile))
	var dump bytes.Buffer
	if err := Dump(&dump, model); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"meta    tokenizer = tok512.bin", "meta    tokenizer_sha256 = 037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312", "meta    bos_token_id = 1", "meta    eos_token_id = 2"} {
		if !strings.Contains(dump.String(), s) {
			t.Errorf("model.onnx metadata has no %q", s)
		}
	}

	// Replaced by a no-cache export: no genai_config.json, nothing left beside.
	if err := WriteLMDir(dir, m, nil, tok, &LMOptions{NoCache: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, GenAIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a no-cache export has %s (%v)", GenAIFile, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("beside the export: %v", ents)
	}
}

// TestWriteLMDirRefuses checks what WriteLMDir will not replace or copy,
// and that a refused export leaves nothing behind.
func TestWriteLMDirRefuses(t *testing.T) {
	m := testLM(t, llamaGQA)
	root := t.TempDir()
	mk := func(name string, files ...string) string {
		d := filepath.Join(root, name)
		os.MkdirAll(d, 0o755)
		for _, f := range files {
			if strings.HasSuffix(f, "/") {
				os.MkdirAll(filepath.Join(d, f), 0o755)
			} else {
				os.WriteFile(filepath.Join(d, f), []byte("x"), 0o644)
			}
		}
		return d
	}
	file := filepath.Join(root, "f.onnx")
	os.WriteFile(file, []byte("x"), 0o644)
	badTok := filepath.Join(mk("tokdir"), LMConfigFile)
	os.WriteFile(badTok, []byte(`["a","b"]`), 0o644)
	for _, tc := range []struct {
		dir, tok, want string
	}{
		{mk("ckpt", "model.safetensors", train.TrainingFile, LMModelFile), "", "is a transformer checkpoint"},
		{mk("other", "notes.txt"), "", "is not an export folder"},
		{mk("nested", LMModelFile, "sub/"), "", "holds a directory"},
		{file, "", "is a file"},
		{filepath.Join(root, "new"), badTok, "like a file of the export"},
		{filepath.Join(root, "new2"), filepath.Join(root, "missing.bin"), "no such file"},
	} {
		before, _ := os.ReadDir(root)
		err := WriteLMDir(tc.dir, m, nil, tc.tok, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.dir, err, tc.want)
		}
		if after, _ := os.ReadDir(root); len(after) != len(before) {
			t.Errorf("%s: the failed export left %v (before %v)", tc.dir, after, before)
		}
	}
}

// TestFindTokenizerErrors checks that a checkpoint whose provenance leads
// nowhere gets an error wrapping ErrNoTokenizer that names --tokenizer.
func TestFindTokenizerErrors(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{"", "does not record its training cache"},
		{filepath.Join(t.TempDir(), "gone"), "the training cache"},
	} {
		_, err := FindTokenizer(&train.LMCheckpointInfo{Cache: train.Provenance{Path: tc.path}})
		if !errors.Is(err, ErrNoTokenizer) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--tokenizer") {
			t.Errorf("cache path %q: %v", tc.path, err)
		}
	}
}

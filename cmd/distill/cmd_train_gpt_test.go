package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// TestTrainGPTStudentCLI trains a tiny GPT-style student (--norm
// layernorm --mlp gelu --pos learned --untied) end to end on a per-token
// cache and reads its checkpoint back: config.json names the options
// (not a LlamaForCausalLM), and the model loaded from it gives the
// held-out NLL the run printed, so the checkpoint holds the trained
// logits. --init-from that checkpoint (sizes and options from its
// config, a learning rate too small to move the weights) starts at the
// same NLL. Options that contradict --init-from, bad values, and the
// options with an mlp student are usage errors naming the flag.
func TestTrainGPTStudentCLI(t *testing.T) {
	const T, V = 8, 16
	dir := t.TempDir()
	cache := writePositionalCache(t, filepath.Join(dir, "cache"), 64, T, V, 1)
	val := writePositionalCache(t, filepath.Join(dir, "val"), 16, T, V, 2)
	common := []string{"train", "--student", "transformer", "--cache", cache, "--val", val, "--batch", "4", "--threads", "1",
		"--alpha", "0.5", "--temperature", "1", "--untied"}
	lastNLL := func(stderr string) float64 {
		t.Helper()
		i := strings.LastIndex(stderr, "val NLL ")
		if i < 0 {
			t.Fatalf("no val NLL in:\n%s", stderr)
		}
		v, err := strconv.ParseFloat(strings.Fields(stderr[i+len("val NLL "):])[0], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	gpt := filepath.Join(dir, "gpt")
	code, stdout, stderr := runDistill(append(common, "--out", gpt, "--epochs", "8", "--lr", "1e-2", "--layers", "2", "--dim", "8", "--heads", "2",
		"--kv-heads", "1", "--ffn", "16", "--norm", "layernorm", "--mlp", "gelu", "--pos", "learned")...)
	if code != exitOK {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	printed := lastNLL(stderr)
	if printed > 2.4 { // ln 16 = 2.77 is a student that learned nothing
		t.Errorf("held-out NLL %.4f after 8 epochs", printed)
	}
	js, err := os.ReadFile(filepath.Join(gpt, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hc train.HFLlamaConfig
	if err := json.Unmarshal(js, &hc); err != nil {
		t.Fatal(err)
	}
	if len(hc.Architectures) != 1 || hc.Architectures[0] != train.HFDistillArch || hc.NormType != "layernorm" || hc.MLPType != "gelu" || hc.PosType != "learned" {
		t.Errorf("config.json: %s", js)
	}
	m, err := train.LoadHFLlama(gpt, T)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Cfg; c.Norm != train.NormLayer || c.MLP != train.MLPGELU || c.Pos != train.PosLearned || !c.Untied || c.Layers != 2 {
		t.Fatalf("checkpoint config %+v", c)
	}
	got := heldOutNLL(t, m, val)
	t.Logf("held-out NLL %.4f printed, %.6f from the checkpoint", printed, got)
	if math.Abs(got-printed) > 6e-5 {
		t.Errorf("the checkpoint's held-out NLL %.6f is not the printed %.4f", got, printed)
	}
	code, stdout, stderr = runDistill(append(common, "--out", filepath.Join(dir, "again"), "--epochs", "1", "--lr", "1e-9",
		"--init-from", gpt, "--init-layers", "0,1")...)
	if code != exitOK {
		t.Fatalf("train --init-from the GPT-style checkpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if again := lastNLL(stderr); math.Abs(again-got) > 2e-4 {
		t.Errorf("initialized from the checkpoint, held-out NLL %.4f; the checkpoint's is %.4f", again, got)
	}
	hf := filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "stories260K-hf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--init-from", gpt, "--init-layers", "0", "--norm", "rmsnorm"}, "--norm rmsnorm: --init-from"},
		{[]string{"--init-from", gpt, "--init-layers", "0", "--pos", "rope"}, "--pos rope: --init-from"},
		{[]string{"--init-from", hf, "--init-layers", "0", "--mlp", "gelu"}, "--mlp gelu: --init-from"},
		{[]string{"--layers", "1", "--dim", "8", "--heads", "2", "--ffn", "8", "--norm", "batchnorm"}, `--norm "batchnorm": want rmsnorm or layernorm`},
		{[]string{"--layers", "1", "--dim", "8", "--heads", "2", "--ffn", "8", "--mlp", "relu"}, `--mlp "relu": want swiglu or gelu`},
		{[]string{"--layers", "1", "--dim", "8", "--heads", "2", "--ffn", "8", "--pos", "alibi"}, `--pos "alibi": want rope or learned`},
	} {
		args := append(append(common, "--out", filepath.Join(dir, "x")), tc.args...)
		if code, _, stderr := runDistill(args...); code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d naming %q:\n%s", tc.args, code, exitUsage, tc.want, stderr)
		}
	}
	for _, flag := range []string{"--norm=layernorm", "--mlp=gelu", "--pos=learned"} {
		code, _, stderr := runDistill("train", "--cache", cache, "--out", filepath.Join(dir, "y"), "--layers", "4", flag)
		if code != exitUsage || !strings.Contains(stderr, "--student transformer flags") {
			t.Errorf("%s with an mlp student: exit %d\n%s", flag, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused run left --out behind")
	}
}

// writePositionalCache writes to dir a per-token cache of n windows of T
// random token ids over V whose next token is (id + 3·position) mod V, a
// rule a student learns only from the token and its position, with
// teacher logits 3 at that token and N(0, 0.1²) elsewhere (softmax ≈ 0.57
// on it), and returns dir.
func writePositionalCache(t *testing.T, dir string, n, T, V int, seed uint64) string {
	t.Helper()
	cfg := formats.Config{Classes: V, Positions: T, HasLabel: true, Inputs: []formats.TensorSpec{{Name: "input_ids", Shape: []int64{int64(T)}}}}
	man := formats.Manifest{Teacher: formats.Teacher{File: "teacher.onnx", SHA256: fixtures.TeacherSHA}, Dataset: formats.Dataset{Path: "tokens", Rows: int64(n)}}
	cw, err := formats.CreateCache(dir, man, cfg, &formats.WriterOptions{RowsPerBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	b := &formats.Batch{Inputs: map[string][]float32{}}
	for r := range n {
		b.Rows = append(b.Rows, int64(r))
		for p := range T {
			id := rng.IntN(V)
			y := (id + 3*p) % V
			b.Inputs["input_ids"] = append(b.Inputs["input_ids"], float32(id))
			b.Labels = append(b.Labels, int64(y))
			for c := range V {
				v := 0.1 * rng.NormFloat64()
				if c == y {
					v = 3
				}
				b.Logits = append(b.Logits, float32(v))
			}
		}
	}
	if _, err := cw.WritePart(b); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// heldOutNLL returns m's mean next-token NLL over the windows of the
// per-token cache at dir.
func heldOutNLL(t *testing.T, m *train.Transformer, dir string) float64 {
	t.Helper()
	c, err := formats.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	V := m.Cfg.Vocab
	var b formats.Batch
	var nll float64
	var n int
	for u := range c.NumBatches() {
		if err := c.ReadBatch(u, &b); err != nil {
			t.Fatal(err)
		}
		ids := make([]int32, len(b.Inputs["input_ids"]))
		for i, v := range b.Inputs["input_ids"] {
			ids[i] = int32(v)
		}
		logits := train.Mat{Rows: len(ids), Cols: V, Data: make([]float32, len(ids)*V)}
		m.Forward(logits, ids)
		for q, y := range b.Labels {
			row := logits.Data[q*V : (q+1)*V]
			nll += formats.LogSumExp(row) - float64(row[y])
			n++
		}
	}
	return nll / float64(n)
}

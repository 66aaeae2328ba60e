package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distill-ml/distill/export"
	"github.com/distill-ml/distill/extract"
	"github.com/distill-ml/distill/fixtures"
	"github.com/distill-ml/distill/formats"
	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/internal/lock"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/train"
)

// The bad-input sweep: every subcommand against every kind of bad input,
// each case in a directory of its own holding fresh copies of its inputs.
// A case asserts what the issue "Nothing destroyed, nothing hangs" asks:
// a non-zero exit where failure is right, one error line on stderr that
// names the problem, no panic or goroutine dump, and the case directory
// exactly as it was (every input's bytes, no new file or directory) — or,
// for a value that is valid (a flag at 0 that means "default"), exit 0 and
// the inputs unchanged.

// An input maker writes one input into dir and returns its path.
type maker func(t *testing.T, dir string) string

// Valid inputs.
var (
	mkTeacher = func(t *testing.T, dir string) string {
		return copyFile(t, "../../fixtures/tiny/mlp_logits.onnx", filepath.Join(dir, "teacher.onnx"))
	}
	mkDataset = func(t *testing.T, dir string) string {
		return copyFile(t, "../../fixtures/tiny/x4.npy", filepath.Join(dir, "x4.npy"))
	}
	mkTok512 = func(t *testing.T, dir string) string {
		return copyFile(t, sharedtest.Dir(t, "teachers", "seq", "tok512.bin"), filepath.Join(dir, "tok512.bin"))
	}
	mkText = func(t *testing.T, dir string) string {
		return writeFile(t, filepath.Join(dir, "stories.txt"), []byte(strings.Repeat("Once upon a time, there was a little girl named Lily.\n\n", 20)))
	}
	mkCache = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		return fixtures.WriteClassCache(t, filepath.Join(dir, "cache"), rows, x, labels, logits, 0)
	}
	// mkImageCache is mkCache with its 4 inputs as [1,2,2] images, for a
	// cnn student.
	mkImageCache = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		return fixtures.WriteShapedClassCache(t, filepath.Join(dir, "images"), []int64{1, 2, 2}, rows, x, labels, logits, 0)
	}
	// mkCache0 is a cache of the row ids 0..63: a whole dataset, as
	// inspect --logits-npy wants.
	mkCache0 = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		for i := range rows {
			rows[i] = int64(i)
		}
		return fixtures.WriteClassCache(t, filepath.Join(dir, "cache"), rows, x, labels, logits, 0)
	}
	mkCkpt = func(t *testing.T, dir string) string {
		return fixtures.WriteStudent(t, filepath.Join(dir, "s.ckpt"), 0.5, nil)
	}
	mkStudentONNX = func(t *testing.T, dir string) string {
		c, err := train.Load(mkCkpt(t, filepath.Join(dir, "src")))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "student.onnx")
		if err := export.WriteFile(out, c, nil); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// mkTokenCache is a per-token cache over stories260K's vocabulary,
	// with its token ids (a transformer student's input).
	mkTokenCache = func(t *testing.T, dir string) string {
		return fixtures.WriteTokenCache(t, filepath.Join(dir, "tokens"), 8, 8, 512, false)
	}
	// mkAttnTokenCache is a token cache with teacher tensors for
	// --attention and --layer-map: attentions.0 fits the --init-from
	// student's 8 heads, attentions.1 has 6 (which do not divide them),
	// hidden_states.1 is no attention map (and --layer-map's pair).
	mkAttnTokenCache = func(t *testing.T, dir string) string {
		return fixtures.WriteTokenCacheMaps(t, filepath.Join(dir, "attn"), 8, 8, 512, []formats.TensorSpec{
			{Name: "attentions.0", Shape: []int64{8, 8, 8}}, {Name: "attentions.1", Shape: []int64{6, 8, 8}}, {Name: "hidden_states.1", Shape: []int64{8, 64}}})
	}
	mkNaNTokenCache = func(t *testing.T, dir string) string {
		return fixtures.WriteTokenCache(t, filepath.Join(dir, "nantokens"), 8, 8, 512, true)
	}
	// mkLMONNX is stories260K's decoder with past, a language model for
	// distill eval.
	mkLMONNX = func(t *testing.T, dir string) string {
		return copyFile(t, sharedtest.Dir(t, "teachers", "seq", "stories260K-kv.onnx"), filepath.Join(dir, "lm.onnx"))
	}
	// mkTokenData is a token dataset (distill data text), the same bytes
	// every time; mkRecipeCache a per-token cache extracted from a copy of
	// it without --keep-input, so training reads its ids from --data.
	mkTokenData = func(t *testing.T, dir string) string {
		return writeFile(t, filepath.Join(dir, "tokens.parquet"), tokenData(t))
	}
	mkRecipeCache = func(t *testing.T, dir string) string {
		return fixtures.WriteTokenCacheOf(t, filepath.Join(dir, "recipe"), mkTokenData(t, filepath.Join(dir, "src")), false)
	}
	// mkLMCkpt is a checkpoint of distill train --student transformer.
	mkLMCkpt = func(t *testing.T, dir string) string {
		c, err := formats.Open(mkTokenCache(t, filepath.Join(dir, "src")))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out := filepath.Join(dir, "lm")
		o := &train.Options{Epochs: 1, Alpha: 1, Threads: 1, Out: out}
		if _, err := train.TrainLM(context.Background(), train.TransformerConfig{Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, FFN: 8}, c, o, nil); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(dir, "src"))
		return out
	}
	// mkHFDir is stories260K in the Hugging Face layout (--init-from).
	mkHFDir = func(t *testing.T, dir string) string {
		src := sharedtest.Dir(t, "teachers", "seq", "stories260K-hf")
		for _, f := range []string{"config.json", "model.safetensors"} {
			copyFile(t, filepath.Join(src, f), filepath.Join(dir, "hf", f))
		}
		return filepath.Join(dir, "hf")
	}
	// mkPrompts is a JSON-lines prompts file for generate (short prompts:
	// the mkLMCkpt student has 8 positions).
	mkPrompts = func(t *testing.T, dir string) string {
		return writeFile(t, filepath.Join(dir, "prompts.jsonl"), []byte("{\"prompt\": \"Once upon\"}\n{\"prompt\": \"Lily\"}\n"))
	}
	mkRun = func(t *testing.T, dir string) string {
		run := filepath.Join(dir, "run")
		fixtures.WriteStudent(t, filepath.Join(run, "kd.ckpt"), 0.5, nil)
		return run
	}
)

var tokenDataOnce struct {
	sync.Once
	data []byte
}

// tokenData returns the bytes of one token dataset of 8 windows of 8+1
// ids, made once (its metadata names its source text).
func tokenData(t *testing.T) []byte {
	tokenDataOnce.Do(func() {
		p := fixtures.WriteTokenData(t, filepath.Join(t.TempDir(), "tokens.parquet"), 8, 8, 12)
		tokenDataOnce.data, _ = os.ReadFile(p)
	})
	if len(tokenDataOnce.data) == 0 {
		t.Fatal("no token dataset")
	}
	return tokenDataOnce.data
}

// Bad inputs, by kind; valid is the slot's valid maker (truncated copies
// it) and other an artefact of another kind.
type badKind struct {
	name string
	make func(t *testing.T, dir string, valid, other maker) string
}

var badKinds = []badKind{
	{"missing", func(t *testing.T, dir string, _, _ maker) string { return filepath.Join(dir, "missing") }},
	{"empty", func(t *testing.T, dir string, _, _ maker) string {
		return writeFile(t, filepath.Join(dir, "empty"), nil)
	}},
	{"random", func(t *testing.T, dir string, _, _ maker) string {
		b := make([]byte, 4096)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return writeFile(t, filepath.Join(dir, "random.bin"), b)
	}},
	{"truncated", func(t *testing.T, dir string, valid, _ maker) string {
		return truncate(t, valid(t, filepath.Join(dir, "t")))
	}},
	{"directory", func(t *testing.T, dir string, _, _ maker) string {
		p := filepath.Join(dir, "adir")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}},
	{"other-artefact", func(t *testing.T, dir string, _, other maker) string { return other(t, filepath.Join(dir, "o")) }},
	// Locations that cannot name object storage (checked before any
	// network access, so the sweep stays offline).
	{"unknown-scheme", func(t *testing.T, dir string, _, _ maker) string { return "hdfs://namenode/" + filepath.Base(dir) }},
	{"no-bucket", func(t *testing.T, dir string, _, _ maker) string { return "s3:///" + filepath.Base(dir) }},
}

// nanMakers are the NaN-filled versions of the inputs that have values.
var (
	mkNaNDataset = func(t *testing.T, dir string) string {
		x := make([]float32, 64*4)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		p := filepath.Join(dir, "nan.npy")
		if err := dataset.WriteNPYFile(p, []int{64, 4}, x); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkNaNCache = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return fixtures.WriteClassCache(t, filepath.Join(dir, "nancache"), rows, x, labels, logits, 0)
	}
	// mkNaNImageCache is mkImageCache with NaN pixels.
	mkNaNImageCache = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return fixtures.WriteShapedClassCache(t, filepath.Join(dir, "nanimages"), []int64{1, 2, 2}, rows, x, labels, logits, 0)
	}
	mkNaNTeacherCache = func(t *testing.T, dir string) string {
		rows, x, labels, logits := fixtures.ClassData(64, 9)
		for i := range logits {
			logits[i] = float32(math.NaN())
		}
		return fixtures.WriteClassCache(t, filepath.Join(dir, "nanteacher"), rows, x, labels, logits, 0)
	}
)

// A slot is one input of a command.
type slot struct {
	name  string // the flag, or a name for a positional argument
	valid maker
	other maker // an artefact of another kind
	nan   maker // nil: the input holds no values to fill with NaN
	// sealed: the input is an artefact whose files are checksummed (a
	// cache, a checkpoint), so one flipped byte must be caught.
	sealed bool
}

// A command template: args with {SLOT} placeholders (and {OUT} for a new
// output path), the slots, and the outputs that may be pointed at inputs.
type template struct {
	name    string
	args    []string
	slots   []slot
	outFlag string // "" = the command writes nothing
	ort     bool   // needs onnxruntime
	// ok lists the cases, by name after the command's, that must succeed:
	// a report may live inside its run directory, and report reads no
	// weights, so a truncated model.safetensors is none of its business.
	ok []string
}

var (
	slotTeacher = slot{"--teacher", mkTeacher, mkCache, nil, false}
	slotData    = slot{"--data", mkDataset, mkCkpt, mkNaNDataset, false}
	slotCache   = slot{"--cache", mkCache, mkCkpt, mkNaNCache, true}
	slotVal     = slot{"--val", mkCache, mkCkpt, mkNaNTeacherCache, true}
	slotImages  = slot{"--cache", mkImageCache, mkCkpt, mkNaNImageCache, true}
	slotStudent = slot{"--student", mkCkpt, mkCache, nil, true}
	slotVerify  = slot{"--verify", mkCache, mkCkpt, mkNaNCache, true}
	slotModel   = slot{"--model", mkStudentONNX, mkCache, nil, false}
	slotEvalDat = slot{"--data", mkCache, mkCkpt, mkNaNCache, true}
	slotTCache  = slot{"--teacher-cache", mkCache, mkCkpt, nil, true}
	slotInspect = slot{"CACHE", mkCache0, mkCkpt, nil, false}
	slotRun     = slot{"RUN_DIR", mkRun, mkCache, nil, false}
	slotTensors = slot{"MODEL", mkTeacher, mkCache, nil, false}
	slotInfo    = slot{"FILE", mkDataset, mkCache, nil, false}
	slotTok     = slot{"--tokenizer", mkTok512, mkCache, nil, false}
	slotText    = slot{"INPUT", mkText, mkCache, nil, false}
	slotTokens  = slot{"--cache", mkTokenCache, mkCkpt, mkNaNTokenCache, true}
	slotTokVal  = slot{"--val", mkTokenCache, mkCache, nil, true}
	slotInitHF  = slot{"--init-from", mkHFDir, mkCache, nil, false}
	slotRecipe  = slot{"--cache", mkRecipeCache, mkCkpt, nil, true}
	slotTokData = slot{"--data", mkTokenData, mkCache, nil, false}
	slotEvalLM  = slot{"--model", mkLMONNX, mkCache, nil, false}
	slotLMData  = slot{"--data", mkTokenCache, mkCkpt, nil, true}
	slotLM      = slot{"--model", mkLMCkpt, mkCache, nil, true}
	slotPrompts = slot{"--prompts", mkPrompts, mkCache, nil, false}
	// export of a transformer checkpoint: its tokenizer and the token
	// windows --verify runs.
	slotLMStudent = slot{"--student", mkLMCkpt, mkCkpt, nil, true}
	slotLMVerify  = slot{"--verify", mkTokenData, mkCkpt, nil, false}
)

var templates = []template{
	{"extract", []string{"extract", "--teacher", "{--teacher}", "--data", "{--data}", "--out", "{OUT}"}, []slot{slotTeacher, slotData}, "--out", true, nil},
	{"train", []string{"train", "--cache", "{--cache}", "--val", "{--val}", "--out", "{OUT}", "--layers", "4", "--epochs", "1", "--threads", "1"}, []slot{slotCache, slotVal}, "--out", false, nil},
	{"train-cnn", []string{"train", "--student", "cnn", "--arch", "conv1x1:2,bn,relu,flatten,fc:3", "--cache", "{--cache}", "--out", "{OUT}", "--epochs", "1", "--threads", "1"},
		[]slot{slotImages}, "--out", false, nil},
	{"train-transformer", []string{"train", "--student", "transformer", "--cache", "{--cache}", "--val", "{--val}", "--init-from", "{--init-from}",
		"--init-layers", "0", "--out", "{OUT}", "--epochs", "1", "--batch", "4", "--threads", "1"}, []slot{slotTokens, slotTokVal, slotInitHF}, "--out", false, nil},
	// A transformer student whose token ids come from the dataset --data.
	{"train-transformer-data", []string{"train", "--student", "transformer", "--cache", "{--cache}", "--data", "{--data}", "--out", "{OUT}",
		"--layers", "1", "--dim", "8", "--heads", "2", "--ffn", "8", "--epochs", "1", "--batch", "4", "--threads", "1"}, []slot{slotRecipe, slotTokData}, "--out", false, nil},
	{"export", []string{"export", "--student", "{--student}", "--out", "{OUT}", "--verify", "{--verify}"}, []slot{slotStudent, slotVerify}, "--out", true, nil},
	{"export-transformer", []string{"export", "--student", "{--student}", "--tokenizer", "{--tokenizer}", "--out", "{OUT}", "--verify", "{--verify}"},
		[]slot{slotLMStudent, slotTok, slotLMVerify}, "--out", true, nil},
	{"eval", []string{"eval", "--model", "{--model}", "--data", "{--data}", "--teacher-cache", "{--teacher-cache}", "--bench-time", "0", "--out", "{OUT}"},
		[]slot{slotModel, slotEvalDat, slotTCache}, "--out", true, nil},
	// A language model on a per-token cache.
	{"eval-lm", []string{"eval", "--model", "{--model}", "--data", "{--data}", "--bench-time", "0", "--threads", "1", "--out", "{OUT}"},
		[]slot{slotEvalLM, slotLMData}, "--out", true, nil},
	// A transformer checkpoint on a per-token cache.
	{"eval-lm-ckpt", []string{"eval", "--model", "{--model}", "--data", "{--data}", "--bench-time", "0", "--threads", "1", "--out", "{OUT}"},
		[]slot{slotLM, slotLMData}, "--out", false, nil},
	{"inspect", []string{"inspect", "{CACHE}", "--logits-npy", "{OUT}"}, []slot{slotInspect}, "--logits-npy", false, nil},
	{"report", []string{"report", "{RUN_DIR}", "--out", "{OUT}"}, []slot{slotRun}, "--out", false,
		[]string{"--out-inside-RUN_DIR", "RUN_DIR=truncated"}},
	{"tensors", []string{"tensors", "{MODEL}"}, []slot{slotTensors}, "", true, nil},
	{"data-info", []string{"data", "info", "{FILE}"}, []slot{slotInfo}, "", false, nil},
	{"data-text", []string{"data", "text", "--tokenizer", "{--tokenizer}", "--seq-len", "16", "--out", "{OUT}", "{INPUT}"},
		[]slot{slotTok, slotText}, "--out", false, []string{"INPUT=truncated"}}, // half a text is a text
	{"data-text-val", []string{"data", "text", "--tokenizer", "{--tokenizer}", "--seq-len", "4", "--val-every", "2", "--val-out", "{OUT}", "--out", "main.parquet", "{INPUT}"},
		[]slot{slotTok, slotText}, "--val-out", false, []string{"INPUT=truncated"}},
	{"inspect-tokenizer", []string{"inspect", "{CACHE}", "--tokenizer", "{--tokenizer}"}, []slot{slotInspect, slotTok}, "", false, nil},
	{"generate", []string{"generate", "--model", "{--model}", "--tokenizer", "{--tokenizer}", "--samples", "2", "--max-new", "4", "--threads", "1", "--out", "{OUT}"},
		[]slot{slotLM, slotTok}, "--out", false, nil},
	{"generate-tokens", []string{"generate", "--model", "{--model}", "--tokenizer", "{--tokenizer}", "--prompts", "{--prompts}", "--max-new", "4",
		"--threads", "1", "--tokens", "{OUT}", "--seq-len", "4"}, []slot{slotLM, slotTok, slotPrompts}, "--tokens", false, nil},
}

// numeric lists each command's numeric flags with the values that are
// valid among 0, -1 and absurd (so the run must succeed).
var numeric = []struct {
	tmpl  string
	flag  string
	valid []string
}{
	{"extract", "--batch", []string{"0"}}, {"extract", "--topk", []string{"0"}}, {"extract", "--threads", []string{"0"}}, {"extract", "--streams", []string{"0"}},
	{"extract", "--part-rows", []string{"0"}}, {"extract", "--shard-count", []string{"0"}},
	{"extract", "--scale", nil}, {"extract", "--mean", []string{"0", "-1"}}, {"extract", "--std", nil},
	{"extract", "--samples", []string{"0"}}, {"extract", "--sample-temperature", nil}, {"extract", "--seed", []string{"0", "99999999999"}},
	{"train", "--epochs", nil}, {"train", "--batch", nil}, {"train", "--lr", nil}, {"train", "--temperature", nil},
	{"train", "--alpha", []string{"0"}}, {"train", "--dropout", []string{"0"}}, {"train", "--momentum", []string{"0"}},
	{"train", "--weight-decay", []string{"0"}}, {"train", "--warmup", []string{"0"}}, {"train", "--threads", []string{"0"}},
	{"train", "--shuffle-window", []string{"0"}}, {"train", "--seed", []string{"0", "99999999999"}},
	{"train", "--dim", []string{"0"}}, {"train", "--heads", []string{"0"}}, {"train", "--kv-heads", []string{"0"}}, {"train", "--ffn", []string{"0"}},
	{"train", "--beta", []string{"0"}}, {"train", "--adam-beta2", nil},
	{"train-transformer-data", "--threads", []string{"0"}}, // 0 succeeds: the valid inputs train
	{"export", "--opset", nil}, {"export", "--verify-rows", nil},
	{"export-transformer", "--opset", nil}, {"export-transformer", "--verify-rows", nil},
	{"eval", "--batch", nil}, {"eval", "--threads", []string{"0"}}, {"eval", "--bench-time", []string{"0"}},
	{"eval", "--scale", nil}, {"eval", "--mean", nil}, {"eval", "--std", nil},
	{"eval-lm", "--batch", nil}, {"eval-lm", "--decode-steps", nil}, {"eval-lm", "--decode-prompt", nil}, {"eval-lm", "--decode-batch", nil},
	{"eval-lm", "--rows", []string{"0", "99999999999"}}, // more windows than the data has: all of them
	{"inspect", "--rows", []string{"0"}},
	{"data-text", "--seq-len", nil}, {"data-text", "--stride", []string{"0"}}, {"data-text", "--val-every", []string{"0"}},
	{"data-text", "--threads", []string{"0"}}, {"data-text", "--max-doc-bytes", nil}, {"data-text", "--join-blocks", nil},
	{"generate", "--samples", nil}, {"generate", "--max-new", nil}, {"generate", "--temperature", []string{"0"}}, {"generate", "--top-k", []string{"0"}},
	{"generate", "--top-p", nil}, {"generate", "--seed", []string{"0", "99999999999"}}, {"generate", "--batch", nil},
	{"generate", "--eos", []string{"0", "-1"}}, {"generate", "--threads", []string{"0"}}, {"generate-tokens", "--seq-len", nil},
}

// choices lists flags of a few named values, each with a value the
// template must refuse naming the flag: one that is no choice, or (gelu,
// learned, at) one that contradicts the template's Llama --init-from or
// its mlp student.
var choices = []struct{ tmpl, flag, bad string }{
	{"train-transformer", "--norm", "batchnorm"}, {"train-transformer", "--mlp", "relu"}, {"train-transformer", "--pos", "alibi"},
	{"train-transformer", "--mlp", "gelu"}, {"train-transformer", "--pos", "learned"},
	{"eval-lm", "--split", "test"},
	{"train-cnn", "--arch", "conv3x3:2,fc:3"}, {"train-cnn", "--arch", "resnet18"}, {"train-cnn", "--arch", "conv3x3:0,flatten,fc:3"},
	{"train-cnn", "--student", "gru"},
	{"train", "--calibrate-teachers", "true"},                                                         // one teacher: nothing to calibrate against
	{"train", "--ensemble", "median"}, {"train", "--ensemble", ""}, {"train", "--ensemble", "logits"}, // logits: one teacher is no ensemble
	{"train", "--teacher-weights", "-1"}, {"train", "--teacher-weights", "x"}, {"train", "--teacher-weights", "NaN"},
	{"train", "--teacher-weights", "1e400"}, {"train", "--teacher-weights", "1"}, // 1: one teacher
	{"train", "--feature-loss", "l1"}, {"train", "--feature-loss", "at"}, // at: attention transfer needs a cnn student
}

// absurd is the value each numeric flag gets besides 0 and -1.
func absurd(flag string) string {
	switch flag {
	case "--bench-time":
		return "100000h"
	case "--scale", "--mean", "--std", "--lr", "--temperature", "--alpha", "--dropout", "--momentum", "--weight-decay", "--sample-temperature", "--beta", "--adam-beta2":
		return "1e300"
	}
	return "99999999999"
}

// sweepCase is one run of the sweep.
type sweepCase struct {
	name     string
	tmpl     template
	bad      map[string]maker // slot → replacement input
	out      string           // "": a new path; "=SLOT": the slot's input; "in:SLOT": inside it
	outMaker maker            // when set, makes the output path (an existing artefact, a file inside one)
	extra    []string         // appended flags
	ok       bool             // the run must succeed
	mention  []string         // the error line names one of these ("" entries: the bad path's base name)
	// hold, when set, takes the lock another distill process writing the
	// output would hold, for the length of the run.
	hold func(t *testing.T, out string) (release func() error)
}

func sweepCases() []sweepCase {
	var cs []sweepCase
	for _, tm := range templates {
		for _, s := range tm.slots {
			kinds := badKinds
			for _, k := range kinds {
				k := k
				s := s
				cs = append(cs, sweepCase{
					name: tm.name + "/" + s.name + "=" + k.name, tmpl: tm,
					bad:     map[string]maker{s.name: func(t *testing.T, dir string) string { return k.make(t, dir, s.valid, s.other) }},
					mention: []string{s.name, ""},
				})
			}
			if s.sealed {
				s := s
				cs = append(cs, sweepCase{name: tm.name + "/" + s.name + "=flipped-byte", tmpl: tm,
					bad:     map[string]maker{s.name: func(t *testing.T, dir string) string { return flipLargest(t, s.valid(t, dir)) }},
					mention: []string{s.name, "", "sha256", "corrupt"}})
			}
			if s.nan != nil {
				cs = append(cs, sweepCase{name: tm.name + "/" + s.name + "=nan", tmpl: tm, bad: map[string]maker{s.name: s.nan},
					mention: []string{s.name, "", "NaN"}})
			}
			if tm.outFlag != "" {
				cs = append(cs,
					sweepCase{name: tm.name + "/" + tm.outFlag + "=" + s.name, tmpl: tm, out: "=" + s.name, mention: []string{tm.outFlag}},
					sweepCase{name: tm.name + "/" + tm.outFlag + "-inside-" + s.name, tmpl: tm, out: "in:" + s.name, mention: []string{tm.outFlag}})
			}
		}
	}
	byName := map[string]template{}
	for _, tm := range templates {
		byName[tm.name] = tm
	}
	for _, nf := range numeric {
		for _, v := range []string{"0", "-1", absurd(nf.flag)} {
			valid := false
			for _, ok := range nf.valid {
				valid = valid || ok == v
			}
			cs = append(cs, sweepCase{name: nf.tmpl + "/" + nf.flag + "=" + v, tmpl: byName[nf.tmpl], extra: []string{nf.flag + "=" + v},
				ok: valid, mention: []string{nf.flag}})
		}
	}
	for _, c := range choices {
		cs = append(cs, sweepCase{name: c.tmpl + "/" + c.flag + "=" + c.bad, tmpl: byName[c.tmpl], extra: []string{c.flag + "=" + c.bad},
			mention: []string{c.flag}})
	}
	// inspect --gc on a cache with nothing to collect succeeds and
	// changes nothing.
	cs = append(cs, sweepCase{name: "inspect/--gc", tmpl: byName["inspect"], extra: []string{"--gc"}, ok: true})

	cs = append(cs, extraCases()...)
	for i := range cs {
		for _, ok := range cs[i].tmpl.ok {
			if cs[i].name == cs[i].tmpl.name+"/"+ok {
				cs[i].ok = true
			}
		}
	}
	return cs
}

func TestBadInputSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("the sweep runs a few hundred subprocesses")
	}
	needORT := false
	for _, tm := range templates {
		needORT = needORT || tm.ort
	}
	var env []string
	if needORT {
		requireLib(t)
		lib, _, err := extract.LocateLibrary("")
		if err != nil {
			t.Fatal(err)
		}
		// The cases run in directories of their own: name the library.
		env = []string{extract.EnvLibraryPath + "=" + lib}
	}
	cases := sweepCases()
	t.Logf("%d cases", len(cases))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runSweepCase(t, c, env)
		})
	}
}

func runSweepCase(t *testing.T, c sweepCase, env []string) {
	dir := t.TempDir()
	inputs := map[string]string{}
	for _, s := range c.tmpl.slots {
		if s.valid == nil {
			continue
		}
		sub := filepath.Join(dir, strings.Trim(s.name, "-"))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if mk, ok := c.bad[s.name]; ok {
			inputs[s.name] = mk(t, sub)
		} else {
			inputs[s.name] = s.valid(t, sub)
		}
	}
	out := filepath.Join(dir, "new-output")
	switch {
	case c.outMaker != nil:
		sub := filepath.Join(dir, "out")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		out = c.outMaker(t, sub)
	case strings.HasPrefix(c.out, "="):
		out = inputs[c.out[1:]]
	case strings.HasPrefix(c.out, "in:"):
		out = filepath.Join(inputs[c.out[3:]], "inner")
		if st, err := os.Stat(inputs[c.out[3:]]); err == nil && !st.IsDir() {
			out = inputs[c.out[3:]] // a file input: "inside" is the file itself
		}
	}
	var args []string
	for _, a := range c.tmpl.args {
		switch {
		case a == "{OUT}":
			args = append(args, out)
		case strings.HasPrefix(a, "{"):
			args = append(args, inputs[strings.Trim(a, "{}")])
		default:
			args = append(args, a)
		}
	}
	args = append(args, c.extra...)
	if c.hold != nil {
		release := c.hold(t, out)
		defer release()
	}
	before := snapshot(t, dir)
	cmd := distillCmd(args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = dir
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	all := stdout.String() + stderr.String()
	if strings.Contains(all, "panic:") || strings.Contains(all, "goroutine ") {
		t.Fatalf("distill %q panicked:\n%s", args, all)
	}
	after := snapshot(t, dir)
	if c.ok {
		if code != 0 {
			t.Fatalf("distill %q: exit %d, want 0\n%s", args, code, all)
		}
		for p, h := range before {
			if after[p] != h {
				t.Errorf("input %s changed", p)
			}
		}
		return
	}
	if code == 0 {
		t.Fatalf("distill %q: exit 0, want a failure\n%s", args, all)
	}
	var errLines []string
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "distill") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || lines[len(lines)-1] != errLines[0] {
		t.Errorf("distill %q: want one error line, last on stderr; got:\n%s", args, stderr.String())
	} else {
		// The case directory's name holds the case's: it names nothing.
		line := strings.ReplaceAll(errLines[0], dir, "DIR")
		named := false
		for _, m := range c.mention {
			if m == "" {
				for s := range c.bad {
					named = named || strings.Contains(line, filepath.Base(inputs[s]))
				}
				continue
			}
			named = named || strings.Contains(line, m)
		}
		if !named {
			t.Errorf("distill %q: the error names none of %q:\n%s", args, c.mention, line)
		}
	}
	if d := diffSnapshots(before, after); d != "" {
		t.Errorf("distill %q changed the case directory:\n%s\nstderr:\n%s", args, d, stderr.String())
	}
}

// snapshot maps every path below dir (files and directories) to its
// kind and the sha256 of its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	s := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			s[rel] = "dir"
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			s[rel] = "link"
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s[rel] = fmt.Sprintf("%x", sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func diffSnapshots(before, after map[string]string) string {
	var d []string
	for p, h := range before {
		switch a, ok := after[p]; {
		case !ok:
			d = append(d, "removed "+p)
		case a != h:
			d = append(d, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "new "+p)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func copyFile(t *testing.T, src, dst string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dst, data)
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// truncate cuts a file to half its size; for a directory (a cache or a
// checkpoint) it cuts its largest data file.
func truncate(t *testing.T, path string) string {
	t.Helper()
	target := largestFile(path)
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(target, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	return path
}

// extraCases are the cases outside the slot × kind grid: outputs of
// commands without inputs, and --resume into what is not a cache.
func extraCases() []sweepCase {
	tmpl := func(name string) template {
		for _, tm := range templates {
			if tm.name == name {
				return tm
			}
		}
		panic("sweep: no template " + name)
	}
	mnist := template{name: "data-mnist", args: []string{"data", "mnist", "--split", "test", "--out", "{OUT}"}}
	resume := template{name: "extract-resume", args: []string{"extract", "--teacher", "{--teacher}", "--data", "{--data}", "--out", "{OUT}", "--resume"},
		slots: []slot{slotTeacher, slotData}, ort: true}
	var cs []sweepCase
	for name, mk := range map[string]maker{
		"a-cache": mkCache, "a-checkpoint": mkCkpt,
		"inside-a-cache":      func(t *testing.T, dir string) string { return filepath.Join(mkCache(t, dir), "mnist.parquet") },
		"inside-a-checkpoint": func(t *testing.T, dir string) string { return filepath.Join(mkCkpt(t, dir), "mnist.parquet") },
	} {
		cs = append(cs, sweepCase{name: "data-mnist/--out=" + name, tmpl: mnist, outMaker: mk, mention: []string{"--out"}})
	}
	// Commands without files: an argument too many, no command, an unknown one.
	for _, a := range [][]string{{"version", "extra"}, {}, {"nosuch"}, {"help", "nosuch"}, {"data"}, {"data", "nosuch"}} {
		cs = append(cs, sweepCase{name: "args/" + strings.Join(append([]string{"distill"}, a...), "_"), tmpl: template{name: "args", args: a},
			mention: []string{"argument", "command", "subcommand"}})
	}
	for name, mk := range map[string]maker{
		"a-checkpoint": mkCkpt,
		"a-plain-directory": func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "plain", "notes.txt"), []byte("mine"))
			return filepath.Join(dir, "plain")
		},
	} {
		cs = append(cs, sweepCase{name: "extract/--resume-into-" + name, tmpl: resume, outMaker: mk, mention: []string{"--out", "--resume"}})
	}
	// --resume of a transformer student into what is not its checkpoint,
	// or a damaged one; a fresh run into a directory of other files.
	trainLM := tmpl("train-transformer")
	damaged := func(file string, damage func(t *testing.T, path string) string) maker {
		return func(t *testing.T, dir string) string {
			out := mkLMCkpt(t, dir)
			damage(t, filepath.Join(out, file))
			return out
		}
	}
	plain := func(t *testing.T, dir string) string {
		writeFile(t, filepath.Join(dir, "plain", "notes.txt"), []byte("mine"))
		return filepath.Join(dir, "plain")
	}
	for name, c := range map[string]struct {
		mk      maker
		resume  bool
		mention []string
	}{
		"--resume-into-a-checkpoint":      {mkCkpt, true, []string{"--out"}},
		"--resume-damaged-state":          {damaged(train.StateFile, func(t *testing.T, p string) string { return truncate(t, p) }), true, []string{train.StateFile}},
		"--resume-flipped-weights":        {damaged(train.ModelFile, flipLargest), true, []string{train.ModelFile}},
		"--resume-damaged-training.json":  {damaged(train.TrainingFile, func(t *testing.T, p string) string { return truncate(t, p) }), true, []string{train.TrainingFile}},
		"--resume-into-a-plain-directory": {plain, true, []string{"--out"}},
		"--out-a-plain-directory":         {plain, false, []string{"--out"}},
	} {
		var extra []string
		if c.resume {
			extra = []string{"--resume"}
		}
		cs = append(cs, sweepCase{name: "train-transformer/" + name, tmpl: trainLM, outMaker: c.mk, extra: extra, mention: c.mention})
	}
	// Attention pairs and --layer-map (--student transformer flags).
	trainT := tmpl("train")
	attn := template{name: "train-attention", args: []string{"train", "--student", "transformer", "--cache", "{--cache}", "--init-from", "{--init-from}",
		"--init-layers", "0", "--out", "{OUT}", "--epochs", "1", "--batch", "4", "--threads", "1"},
		slots: []slot{{"--cache", mkAttnTokenCache, mkCkpt, nil, true}, slotInitHF}}
	for _, c := range []struct {
		name    string
		tmpl    template
		extra   []string
		ok      bool
		mention []string
	}{
		{"kl", attn, []string{"--attention", "attentions.0=0"}, true, nil},
		{"mse", attn, []string{"--attention", "attentions.0=0:2", "--attention-loss", "mse"}, true, nil},
		{"two-pairs-one-block", attn, []string{"--attention", "attentions.0=0", "--attention", "attentions.0=0:0.5"}, true, nil},
		{"layer-map", attn, []string{"--layer-map", "uniform:0.5"}, true, nil},
		{"not-cached", attn, []string{"--attention", "attentions.9=0"}, false, []string{"attentions.9"}},
		{"block-out-of-range", attn, []string{"--attention", "attentions.0=1"}, false, []string{"--attention"}},
		{"heads-do-not-divide", attn, []string{"--attention", "attentions.1=0"}, false, []string{"6 heads"}},
		{"not-an-attention-map", attn, []string{"--attention", "hidden_states.1=0"}, false, []string{"hidden_states.1"}},
		{"no-block", attn, []string{"--attention", "attentions.0"}, false, []string{"--attention"}},
		{"bad-weight", attn, []string{"--attention", "attentions.0=0:-1"}, false, []string{"--attention"}},
		{"bad-loss", attn, []string{"--attention", "attentions.0=0", "--attention-loss", "js"}, false, []string{"--attention-loss"}},
		{"loss-without-pairs", attn, []string{"--attention-loss", "mse"}, false, []string{"--attention-loss"}},
		{"bad-layer-map", attn, []string{"--layer-map", "every"}, false, []string{"--layer-map"}},
		{"layer-map-zero-weight", attn, []string{"--layer-map", "uniform:0"}, false, []string{"--layer-map"}},
		{"layer-map-no-hidden-outputs", tmpl("train-transformer"), []string{"--layer-map", "uniform"}, false, []string{"--layer-map"}},
		{"mlp", trainT, []string{"--attention", "attentions.0=0"}, false, []string{"--attention"}},
	} {
		cs = append(cs, sweepCase{name: c.tmpl.name + "/attention-" + c.name, tmpl: c.tmpl, extra: c.extra, ok: c.ok, mention: c.mention})
	}
	// A second writer: the output is being written by another process.
	extractT := tmpl("extract")
	cs = append(cs,
		sweepCase{name: "extract/--out-being-written", tmpl: resume, outMaker: mkCache, mention: []string{"another distill process"},
			hold: func(t *testing.T, out string) func() error {
				return mustLock(t, func() (func() error, error) { return lock.Dir(out) })
			}},
		sweepCase{name: "extract/--out-being-written-fresh", tmpl: extractT, outMaker: mkCache, mention: []string{"another distill process"},
			hold: func(t *testing.T, out string) func() error {
				return mustLock(t, func() (func() error, error) { return lock.Dir(out) })
			}},
		sweepCase{name: "train/--out-being-written", tmpl: trainT, outMaker: mkCkpt, mention: []string{"another", "lock"},
			hold: func(t *testing.T, out string) func() error {
				return mustLock(t, func() (func() error, error) {
					return lock.File(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".lock"))
				})
			}},
	)
	return cs
}

// mustLock takes a lock and returns its release.
// The lock may be busy for a moment after the maker released it: flock
// locks belong to the open file description, and a distill child being
// started by a parallel case shares every descriptor between its fork and
// its exec (O_CLOEXEC closes them only at the exec).
func mustLock(t *testing.T, take func() (func() error, error)) func() error {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		release, err := take()
		if err == nil {
			return release
		}
		if !errors.Is(err, lock.ErrLocked) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// flipLargest flips a bit near the end of the largest data file below
// path (a cache's part, a checkpoint's weights): damage that may leave the
// file readable, which only a checksum is sure to catch.
func flipLargest(t *testing.T, path string) string {
	t.Helper()
	target := largestFile(path)
	data, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	// Near the end: a safetensors file's weights follow its JSON header,
	// and for a small student the middle byte may still be header.
	data[len(data)-3] ^= 0x01
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// largestFile returns path if it is a file, else the largest data file
// below it (not the JSON that describes the data: a cache's part, a
// checkpoint's weights).
func largestFile(path string) string {
	target := path
	var size int64
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) != ".json" {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				target, size = p, fi.Size()
			}
		}
		return nil
	})
	return target
}

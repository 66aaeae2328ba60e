package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
	"github.com/distill-ml/distill/lm"
)

// readJSONL reads generate's --out, failing on a line that is not whole
// JSON.
func readJSONL(t *testing.T, path string) []genRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a whole line", path)
	}
	var out []genRecord
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" && len(data) == 0 {
			break
		}
		var r genRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s:%d: %v: %q", path, i+1, err, line)
		}
		out = append(out, r)
	}
	return out
}

// TestGenerateGolden decodes stories260K greedily from BOS through the
// command line, 200 new tokens: as the Hugging Face directory (the Go
// decoder; always), and as stories260K-kv.onnx (decoder with past) and
// stories260K.onnx (re-run over the prefix) through onnxruntime (which
// must be present under CI). Each prints llama2.c's golden text byte for
// byte, and its JSONL record holds the text, BOS as the prompt, the 200
// ids, seed and stop reason.
func TestGenerateGolden(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	for _, model := range []string{"stories260K-hf", "stories260K-kv.onnx", "stories260K.onnx"} {
		t.Run(model, func(t *testing.T) {
			if strings.HasSuffix(model, ".onnx") {
				requireLib(t)
			}
			args := []string{"generate", "--model", filepath.Join(seq, model), "--tokenizer", filepath.Join(seq, "tok512.bin"),
				"--temperature", "0", "--max-new", "200", "--threads", "1"}
			code, stdout, stderr := runDistill(args...)
			if code != exitOK || stdout != sharedtest.StoriesGreedy+"\n" {
				t.Fatalf("exit %d\nstdout %q\nwant %q\n%s", code, stdout, sharedtest.StoriesGreedy+"\n", stderr)
			}
			if !strings.Contains(stderr, "generated 1 samples of 1 (200 tokens)") || !strings.Contains(stderr, "tokens/s") {
				t.Errorf("no summary on stderr:\n%s", stderr)
			}
			out := filepath.Join(dir, model+".jsonl")
			if code, _, stderr := runDistill(append(args, "--out", out)...); code != exitOK {
				t.Fatalf("--out: exit %d\n%s", code, stderr)
			}
			recs := readJSONL(t, out)
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			r := recs[0]
			if r.Text != sharedtest.StoriesGreedy || r.Prompt != "" || !slices.Equal(r.PromptIDs, []int64{1}) || len(r.IDs) != 200 ||
				r.Seed != 1 || r.Stop != lm.StopMaxNew || r.Temperature != 0 || len(r.Model) != 64 {
				t.Errorf("record %+v", r)
			}
		})
	}
}

// TestGenerateOutputs samples 2 continuations of each of three prompts
// (a JSONL prompts file; one prompt has a newline) from the stories260K
// Hugging Face directory in batches of 4, writing JSONL and a token
// dataset: the records come in order with seeds --seed + i, their ids
// continue the prompt's encoding and their text is its decoding; one
// sample run again alone with its seed gives the same ids; the dataset's
// windows are the samples packed as documents with EOS, and its metadata
// names the tokenizer and the model.
func TestGenerateOutputs(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	tokPath := filepath.Join(seq, "tok512.bin")
	tok, tinfo, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"Once upon a time", "The cat sat.\nThen", "Tom had a red ball"}
	prompts := filepath.Join(dir, "prompts.jsonl")
	var lines []string
	for _, p := range texts {
		js, _ := json.Marshal(map[string]string{"prompt": p})
		lines = append(lines, string(js))
	}
	writeFile(t, prompts, []byte(strings.Join(lines, "\n")+"\n\n"))
	model := filepath.Join(seq, "stories260K-hf")
	out, tokens := filepath.Join(dir, "gen.jsonl"), filepath.Join(dir, "gen.parquet")
	common := []string{"generate", "--model", model, "--tokenizer", tokPath, "--temperature", "0.8", "--top-k", "20", "--top-p", "0.95",
		"--max-new", "40", "--threads", "1"}
	code, stdout, stderr := runDistill(append(common, "--prompts", prompts, "--samples", "2", "--batch", "4", "--seed", "5",
		"--out", out, "--tokens", tokens, "--seq-len", "16")...)
	if code != exitOK || !strings.Contains(stdout, "wrote 6 samples as JSON lines") || !strings.Contains(stdout, "windows of 17 tokens") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	recs := readJSONL(t, out)
	if len(recs) != 6 {
		t.Fatalf("%d records, want 6", len(recs))
	}
	var stream []int32
	for i, r := range recs {
		want, _ := tok.Encode(texts[i/2], true)
		if r.Index != i || r.Seed != uint64(5+i) || r.Prompt != texts[i/2] || !slices.Equal(toInts(r.PromptIDs), want) || len(r.IDs) == 0 {
			t.Fatalf("record %d: %+v", i, r)
		}
		all := append(slices.Clone(r.PromptIDs), r.IDs...)
		if full := tok.Decode(toInts(all), true); full != r.Prompt+r.Text {
			t.Errorf("record %d: prompt + text %q, the ids decode to %q", i, r.Prompt+r.Text, full)
		}
		if (r.Stop == lm.StopEOS) != (r.IDs[len(r.IDs)-1] == 2) || r.Stop == lm.StopMaxNew && len(r.IDs) != 40 {
			t.Errorf("record %d: stop %s after %d ids ending %d", i, r.Stop, len(r.IDs), r.IDs[len(r.IDs)-1])
		}
		for _, id := range all {
			stream = append(stream, int32(id))
		}
		if all[len(all)-1] != 2 {
			stream = append(stream, 2)
		}
	}
	if slices.Equal(recs[0].IDs, recs[1].IDs) {
		t.Error("two samples of one prompt drew the same tokens")
	}
	// Sample 3 alone: its prompt, its seed.
	again := filepath.Join(dir, "again.jsonl")
	if code, _, stderr := runDistill(append(common, "--prompt", texts[1], "--seed", "8", "--batch", "1", "--out", again)...); code != exitOK {
		t.Fatalf("alone: exit %d\n%s", code, stderr)
	}
	if r := readJSONL(t, again); len(r) != 1 || !slices.Equal(r[0].IDs, recs[3].IDs) || r[0].Seed != 8 {
		t.Errorf("sample 3 alone: %+v\nwant ids %v", r, recs[3].IDs)
	}
	// The token dataset.
	d, err := dataset.Open(tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var b dataset.Batch
	if err := d.Read(0, d.Len(), &b); err != nil {
		t.Fatal(err)
	}
	ids := b.Cols[dataset.ColInputIDs]
	if d.Len() != len(stream)/17 || len(ids) != d.Len()*17 {
		t.Fatalf("%d windows (%d ids) from a stream of %d", d.Len(), len(ids), len(stream))
	}
	for i, v := range ids {
		if int32(v) != stream[i] {
			t.Fatalf("window value %d: %v, the packed samples have %d", i, v, stream[i])
		}
	}
	meta, err := dataset.ReadTokensMeta(tokens)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Documents != 6 || meta.Tokens != int64(len(stream)) || meta.Tokenizer.SHA256 != tinfo.SHA256 || !meta.EOS ||
		len(meta.Inputs) != 1 || meta.Inputs[0].SHA256 != recs[0].Model || !strings.HasPrefix(meta.Tool, "distill generate") {
		t.Errorf("metadata %+v", meta)
	}
}

// TestGenerateExtract: a token dataset written by generate feeds distill
// extract as it is, and a transformer trained on that cache (the
// sequence-level distillation loop) opens as a language model whose BOS
// and EOS come from the tokenizer the generated data records, and
// generates.
func TestGenerateExtract(t *testing.T) {
	requireLib(t)
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	tokPath := filepath.Join(seq, "tok512.bin")
	data := filepath.Join(dir, "gen.parquet")
	if code, _, stderr := runDistill("generate", "--model", filepath.Join(seq, "stories260K-hf"), "--tokenizer", tokPath,
		"--samples", "16", "--max-new", "60", "--tokens", data, "--seq-len", "32", "--threads", "1"); code != exitOK {
		t.Fatalf("generate: exit %d\n%s", code, stderr)
	}
	cache := filepath.Join(dir, "cache")
	if code, _, stderr := runDistill("extract", "--teacher", filepath.Join(seq, "stories260K.onnx"), "--data", data, "--out", cache,
		"--topk", "8", "--keep-input", "--threads", "1"); code != exitOK {
		t.Fatalf("extract of the generated windows: exit %d\n%s", code, stderr)
	}
	student := filepath.Join(dir, "student")
	if code, _, stderr := runDistill("train", "--student", "transformer", "--cache", cache, "--out", student, "--layers", "1", "--dim", "16",
		"--heads", "2", "--ffn", "32", "--epochs", "1", "--batch", "8", "--threads", "1"); code != exitOK {
		t.Fatalf("train: exit %d\n%s", code, stderr)
	}
	m, err := lm.OpenCheckpoint(student, 1)
	if err != nil {
		t.Fatal(err)
	}
	if info := m.Info(); info.BOS != 1 || info.EOS != 2 || info.MaxPositions != 32 || info.Vocab != 512 || info.Kind != lm.KindCheckpoint || len(info.SHA256) != 64 {
		t.Errorf("checkpoint info %+v", info)
	}
	m.Close()
	out := filepath.Join(dir, "student.jsonl")
	if code, _, stderr := runDistill("generate", "--model", student, "--tokenizer", tokPath, "--samples", "3", "--max-new", "40", "--out", out); code != exitOK {
		t.Fatalf("generate with the student: exit %d\n%s", code, stderr)
	}
	for _, r := range readJSONL(t, out) {
		if len(r.PromptIDs)+len(r.IDs) > 32 || r.Stop == lm.StopMaxNew {
			t.Errorf("a sample of the 32-position student: %d + %d ids, stop %s", len(r.PromptIDs), len(r.IDs), r.Stop)
		}
	}
}

// TestGenerateInterrupt sends SIGINT to a long run once it has written
// three samples: exit 130; the JSONL file holds whole lines only, and the
// token dataset (written atomically) the samples finished, as its
// metadata counts them.
func TestGenerateInterrupt(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	out, tokens := filepath.Join(dir, "gen.jsonl"), filepath.Join(dir, "gen.parquet")
	cmd, buf := startDistill(t, "generate", "--model", filepath.Join(seq, "stories260K-hf"), "--tokenizer", filepath.Join(seq, "tok512.bin"),
		"--samples", "100000", "--max-new", "200", "--batch", "1", "--eos", "-1", "--threads", "1", "--out", out, "--tokens", tokens, "--seq-len", "64")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if data, err := os.ReadFile(out); err == nil && strings.Count(string(data), "\n") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no 3 samples after 60 s:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(tokens); !os.IsNotExist(err) {
		t.Errorf("the token dataset exists before the run ends: %v", err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d (%v), want %d\n%s", code, err, exitInterrupted, buf.String())
	}
	recs := readJSONL(t, out)
	if !strings.Contains(buf.String(), "interrupted after "+strconv.Itoa(len(recs))+" of 100,000 samples") {
		t.Errorf("stderr does not count %d samples:\n%s", len(recs), buf.String())
	}
	meta, err := dataset.ReadTokensMeta(tokens)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Documents != int64(len(recs)) || meta.Tokens != int64(len(recs))*202 {
		t.Errorf("token dataset of %d documents, %d tokens; JSONL has %d samples (of 1 + 200 ids + EOS)", meta.Documents, meta.Tokens, len(recs))
	}
	for _, r := range recs {
		if len(r.IDs) != 200 {
			t.Errorf("a sample of %d ids in the JSONL", len(r.IDs))
		}
	}
}

// TestGenerateErrors: bad inputs are errors naming the problem, and
// leave no output.
func TestGenerateErrors(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	model, tok := filepath.Join(seq, "stories260K-hf"), filepath.Join(seq, "tok512.bin")
	bad := writeFile(t, filepath.Join(dir, "bad.jsonl"), []byte("{\"prompt\": \"Once\"}\n{\"text\": \"no prompt\"}\n"))
	binary := writeFile(t, filepath.Join(dir, "prompts.txt"), []byte("Once\n\xff\xfe\x00\n"))
	empty := writeFile(t, filepath.Join(dir, "empty.txt"), []byte("\n\n"))
	garbage := writeFile(t, filepath.Join(dir, "tok.bin"), []byte("not a tokenizer"))
	long := strings.Repeat("The cat sat on the mat. ", 120)
	out := filepath.Join(dir, "out.jsonl")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--tokenizer", filepath.Join(seq, "vocab.json")}, exitFailure, "the model scores 512 tokens but the tokenizer"},
		{[]string{"--tokenizer", garbage}, exitFailure, "--tokenizer"},
		{[]string{"--prompt", long}, exitFailure, "prompt 1: lm: a prompt of"},
		{[]string{"--prompts", bad}, exitFailure, "bad.jsonl:2: want a JSON object with a string field \"prompt\""},
		{[]string{"--prompts", binary}, exitFailure, "prompts.txt:2: not UTF-8 text"},
		{[]string{"--prompts", empty}, exitFailure, "holds no prompt"},
		{[]string{"--prompt", "x", "--prompts", empty}, exitUsage, "--prompt and --prompts"},
		{[]string{"--tokens", filepath.Join(dir, "t.parquet")}, exitUsage, "--tokens needs --seq-len"},
		{[]string{"--seq-len", "8"}, exitUsage, "--seq-len is for --tokens"},
		{[]string{"--eos", "512"}, exitUsage, "--eos 512: beyond the model's 512-token vocabulary"},
		{[]string{"--top-p", "0"}, exitUsage, "--top-p 0 keeps no token"},
		{[]string{"--model", filepath.Join(seq, "tinystories_val.txt")}, exitFailure, "--model"},
	} {
		args := append([]string{"generate", "--model", model, "--tokenizer", tok, "--max-new", "2", "--out", out}, tc.args...)
		code, _, stderr := runDistill(args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d naming %q:\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: %s written", tc.args, out)
			os.Remove(out)
		}
	}
	if code, _, stderr := runDistill("generate", "--tokenizer", tok); code != exitUsage || !strings.Contains(stderr, "--model") {
		t.Errorf("no --model: exit %d\n%s", code, stderr)
	}
}

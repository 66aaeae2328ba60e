package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distill-ml/distill/formats/dataset"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/human"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// digits formats n as the summary lines do: 1,234.
func digits(n int) string { return human.Digits(int64(n)) }

// storyDocs returns the first n blank-line documents of
// tinystories_val.txt.
func storyDocs(t testing.TB, n int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, block := range strings.Split(string(data), "\n\n") {
		if block = strings.Trim(block, "\n"); block != "" {
			docs = append(docs, block)
		}
		if len(docs) == n {
			return docs
		}
	}
	t.Fatalf("fewer than %d documents", n)
	return nil
}

// tokenWindows reads the input_ids rows of a token dataset.
func tokenWindows(t testing.TB, path string, seqLen int) [][]int32 {
	t.Helper()
	d, err := dataset.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := d.Columns()
	if len(c) != 1 || c[0].Name != "input_ids" || c[0].DType != dataset.Int32 || !slices.Equal(c[0].Shape, []int{seqLen + 1}) {
		t.Fatalf("%s: columns %+v", path, c)
	}
	var out [][]int32
	for b, err := range dataset.All(d, 0, 100) {
		if err != nil {
			t.Fatal(err)
		}
		v := b.Cols["input_ids"]
		for i := range b.Len() {
			var w []int32
			for _, x := range v[i*(seqLen+1) : (i+1)*(seqLen+1)] {
				w = append(w, int32(x))
			}
			out = append(out, w)
		}
	}
	return out
}

func TestDataText(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	tokPath := filepath.Join(seq, "tok512.bin")
	tok, _, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	docs := storyDocs(t, 50)
	dir := t.TempDir()
	txt := writeFile(t, filepath.Join(dir, "in", "stories.txt"), []byte(strings.Join(docs, "\n\n")+"\n"))
	var jsonl bytes.Buffer
	for _, d := range docs {
		b, _ := json.Marshal(map[string]string{"body": d})
		jsonl.Write(append(b, '\n'))
	}
	jl := writeFile(t, filepath.Join(dir, "in", "stories.jsonl"), jsonl.Bytes())
	// The reference: the encodings (BOS first) concatenated, cut into
	// windows of 65 every 40 tokens.
	const seqLen, stride = 64, 40
	var stream []int32
	for _, d := range docs {
		ids, _ := tok.Encode(d, true)
		for _, id := range ids {
			stream = append(stream, int32(id))
		}
	}
	var want [][]int32
	for s := 0; s+seqLen+1 <= len(stream); s += stride {
		want = append(want, stream[s:s+seqLen+1])
	}
	lastEnd := (len(want)-1)*stride + seqLen + 1

	out := filepath.Join(dir, "new", "tokens.parquet")
	code, stdout, stderr := runDistill("data", "text", "--tokenizer", tokPath, "--seq-len", "64", "--stride", "40", "--out", out, txt)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	tail := "no partial window"
	if lastEnd < len(stream) {
		tail = "dropped the final partial window: the last " + digits(len(stream)-lastEnd) + " tokens"
	}
	mustContain(t, stdout, "tokenized 50 documents of 1 inputs", "windows of 65 tokens (seq-len 64, stride 40)", out, tail)
	if !strings.Contains(stderr, "tokens/s") {
		t.Errorf("no progress with tokens/s on stderr: %q", stderr)
	}
	if got := tokenWindows(t, out, seqLen); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("%d windows differ from the %d of the reference", len(got), len(want))
	}
	m, err := dataset.ReadTokensMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Tool != "distill "+version || m.Tokens != int64(len(stream)) || m.DroppedTokens != int64(len(stream)-lastEnd) || m.Tokenizer.Kind != "llama2c" ||
		len(m.Inputs) != 1 || m.Inputs[0].Path != txt || m.Val != "none" {
		t.Errorf("metadata %+v", m)
	}
	code, info, _ := runDistill("data", "info", out)
	if code != exitOK {
		t.Fatalf("data info: exit %d", code)
	}
	mustContain(t, info, "input_ids int32 [65] 65", "tokens: "+digits(len(want))+" windows of 65 (seq-len 64, stride 40)", "tokenizer "+tokPath+" (llama2c, 512 ids")

	// The same documents as JSON Lines, with the val split in its own
	// Arrow file (by extension).
	trainOut, valOut := filepath.Join(dir, "train.parquet"), filepath.Join(dir, "val.arrow")
	code, stdout, stderr = runDistill("data", "text", "--tokenizer", tokPath, "--seq-len=64", "--stride=40", "--text-field", "body",
		"--val-every", "4", "--val-out", valOut, "--out", trainOut, "--threads", "2", jl)
	if code != exitOK {
		t.Fatalf("jsonl: exit %d\n%s", code, stderr)
	}
	var wantTrain, wantVal [][]int32
	for i, w := range want {
		if i%4 == 3 {
			wantVal = append(wantVal, w)
		} else {
			wantTrain = append(wantTrain, w)
		}
	}
	mustContain(t, stdout, digits(len(wantTrain))+" train windows", digits(len(wantVal))+" val windows to "+valOut+" (arrow")
	if got := tokenWindows(t, trainOut, seqLen); !slices.EqualFunc(got, wantTrain, slices.Equal) {
		t.Errorf("train windows differ")
	}
	if got := tokenWindows(t, valOut, seqLen); !slices.EqualFunc(got, wantVal, slices.Equal) {
		t.Errorf("val windows differ")
	}

	// The val column, Arrow by --format.
	colOut := filepath.Join(dir, "marked.arrow")
	if code, stdout, stderr = runDistill("data", "text", "--tokenizer", tokPath, "--seq-len", "64", "--stride", "40", "--val-every", "4",
		"--format", "arrow", "--out", colOut, txt); code != exitOK {
		t.Fatalf("val column: exit %d\n%s", code, stderr)
	}
	mustContain(t, stdout, digits(len(wantVal))+" of them marked val")
	d, err := dataset.Open(colOut, &dataset.Options{Features: []string{"val"}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var marks []float32
	for b, err := range dataset.All(d, 0, 1000) {
		if err != nil {
			t.Fatal(err)
		}
		marks = append(marks, b.Cols["input"]...)
	}
	for i, v := range marks {
		if (v == 1) != (i%4 == 3) {
			t.Fatalf("window %d marked %v", i, v)
		}
	}
}

func TestDataTextChars(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	vocabPath := filepath.Join(seq, "vocab.json")
	var vocab []string
	raw, err := os.ReadFile(vocabPath)
	if err != nil || json.Unmarshal(raw, &vocab) != nil {
		t.Fatalf("vocab.json: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(seq, "tinyshakespeare.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "shakespeare.txt"), data[:10000])
	out := filepath.Join(dir, "chars.parquet")
	code, stdout, stderr := runDistill("data", "text", "--tokenizer", vocabPath, "--seq-len", "128", "--split", "none", "--out", out, in)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	mustContain(t, stdout, "10,000 tokens (chars tokenizer, 65 ids)", digits(10000/129)+" windows of 129 tokens", "the last "+digits(10000%129)+" tokens")
	for i, w := range tokenWindows(t, out, 128) {
		for j, id := range w {
			if c := string(data[i*129+j]); vocab[id] != c {
				t.Fatalf("window %d position %d: id %d (%q), want %q", i, j, id, vocab[id], c)
			}
		}
	}
}

// TestDataTextDeterministic checks that runs with 1 and 2 threads write
// byte-identical files.
func TestDataTextDeterministic(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "stories.txt"), []byte(strings.Join(storyDocs(t, 600), "\n\n")))
	var files [][]byte
	for i, threads := range []string{"1", "2", "2"} {
		out := filepath.Join(dir, "run"+threads+string(rune('a'+i))+".parquet")
		if code, _, stderr := runDistill("data", "text", "--tokenizer", filepath.Join(seq, "tok512.bin"), "--seq-len", "100", "--stride", "77",
			"--eos", "--val-every", "7", "--threads", threads, "--out", out, in); code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if !bytes.Equal(files[0], files[1]) || !bytes.Equal(files[1], files[2]) {
		t.Errorf("outputs differ between runs (sizes %d, %d, %d)", len(files[0]), len(files[1]), len(files[2]))
	}
}

func TestDataTextErrors(t *testing.T) {
	seq := sharedtest.Dir(t, "teachers", "seq")
	tok, vocab := filepath.Join(seq, "tok512.bin"), filepath.Join(seq, "vocab.json")
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.txt"), []byte(strings.Join(storyDocs(t, 5), "\n\n")))
	blank := writeFile(t, filepath.Join(dir, "blank.txt"), []byte("\n \n\n"))
	short := writeFile(t, filepath.Join(dir, "short.txt"), []byte("Hi."))
	accent := writeFile(t, filepath.Join(dir, "accent.txt"), []byte("First.\n\nSecond,\ncafé.\n"))
	badJSON := writeFile(t, filepath.Join(dir, "bad.jsonl"), []byte(`{"text": "a"}`+"\n"+`{"text": 7}`+"\n"))
	notTok := writeFile(t, filepath.Join(dir, "not-a-tokenizer.bin"), []byte("hello, I am not a tokenizer"))
	out := filepath.Join(dir, "out.parquet")
	base := func(extra ...string) []string {
		return append([]string{"data", "text", "--tokenizer", tok, "--seq-len", "16", "--out", out}, extra...)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no tokenizer", []string{"data", "text", "--seq-len", "16", "--out", out, good}, exitUsage, "needs --tokenizer"},
		{"no seq-len", []string{"data", "text", "--tokenizer", tok, "--out", out, good}, exitUsage, "needs --seq-len"},
		{"seq-len negative", base("--seq-len", "-1", good), exitUsage, "--seq-len -1: want 1..65536"},
		{"seq-len too big", base("--seq-len", "65537", good), exitUsage, "--seq-len 65537: want 1..65536"},
		{"stride too big", base("--stride", "18", good), exitUsage, "--stride 18: want 1..17"},
		{"stride negative", base("--stride", "-3", good), exitUsage, "--stride -3"},
		{"val-every negative", base("--val-every", "-1", good), exitUsage, "--val-every -1"},
		{"val-every 1", base("--val-every", "1", good), exitUsage, "--val-every 1 would make every window validation"},
		{"val-out alone", base("--val-out", filepath.Join(dir, "v.parquet"), good), exitUsage, "--val-out needs --val-every"},
		{"val-out is out", base("--val-every", "3", "--val-out", out, good), exitUsage, "is also --out"},
		{"val-out format", base("--val-every", "3", "--format", "parquet", "--val-out", filepath.Join(dir, "v.arrow"), good), exitUsage, "disagrees with --format parquet"},
		{"threads", base("--threads", "-1", good), exitUsage, "--threads -1"},
		{"max-doc-bytes", base("--max-doc-bytes", "0", good), exitUsage, "--max-doc-bytes 0"},
		{"split", base("--split", "train", good), exitUsage, `--split "train": data text wants blank, line or none`},
		{"text-field", base("--text-field", "", good), exitUsage, "--text-field"},
		{"no out", []string{"data", "text", "--tokenizer", tok, "--seq-len", "16", good}, exitUsage, "needs --out"},
		{"no inputs", base(), exitUsage, "one or more INPUT"},
		{"input extension", base(filepath.Join(dir, "data.csv")), exitUsage, "INPUT " + filepath.Join(dir, "data.csv")},
		{"out is input", []string{"data", "text", "--tokenizer", tok, "--seq-len", "16", "--out", good, good}, exitUsage, "is also the input"},
		{"out is tokenizer", []string{"data", "text", "--tokenizer", tok, "--seq-len", "16", "--out", tok, good}, exitUsage, "is also the input --tokenizer"},
		{"out format", base("--format", "arrow", good), exitUsage, "--format is arrow"},
		{"eos without eos", []string{"data", "text", "--tokenizer", vocab, "--seq-len", "16", "--eos", "--out", out, good}, exitUsage, "has no EOS"},
		{"missing tokenizer", []string{"data", "text", "--tokenizer", filepath.Join(dir, "nope.bin"), "--seq-len", "16", "--out", out, good}, exitFailure, "nope.bin"},
		{"unknown tokenizer", []string{"data", "text", "--tokenizer", notTok, "--seq-len", "16", "--out", out, good}, exitFailure, "not-a-tokenizer.bin: tokenizer: unrecognized file"},
		{"missing input", base(good, filepath.Join(dir, "missing.txt")), exitFailure, "missing.txt"},
		{"char not in vocabulary", []string{"data", "text", "--tokenizer", vocab, "--seq-len", "4", "--out", out, accent}, exitFailure, accent + ":3 (document 2): tokenizer: character 'é'"},
		{"jsonl non-string", base(good, badJSON), exitFailure, badJSON + ":2 (document 2): dataset: bad column: field \"text\" is a number, want a string"},
		{"empty corpus", base(blank), exitFailure, "no text in " + blank},
		{"fewer tokens than a window", base(short), exitFailure, "fewer than one window of 17"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runDistill(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("distill %q: exit %d, stderr %q; want exit %d with %q", tc.args, code, stderr, tc.code, tc.msg)
			}
			// One error line, after at most the progress line of a run
			// that read all its input.
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "data text: ") {
					t.Errorf("stderr line %q is neither progress nor the error", l)
				}
			}
			if len(lines) > 2 || stdout != "" || !strings.HasPrefix(lines[len(lines)-1], "distill data: ") {
				t.Errorf("want one error line and no output; stdout %q, stderr %q", stdout, stderr)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), "out.parquet") || strings.HasPrefix(e.Name(), "v.") || strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".spill-") {
					t.Errorf("%s left behind", e.Name())
				}
			}
		})
	}
}

func TestDataTextHelp(t *testing.T) {
	code, out, _ := runDistill("data", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	mustContain(t, out, "text --tokenizer TOK --seq-len T --out FILE [flags] INPUT...", "'distill data text'",
		"distill.tokens", "--val-every", "--stride", "--text-field", "--eos", "--threads", "--max-doc-bytes", "byte-identical")
}

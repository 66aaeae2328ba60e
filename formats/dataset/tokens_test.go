package dataset

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/distill-ml/distill/formats/tokenizer"
	"github.com/distill-ml/distill/internal/sharedtest"
)

// loadTokenizer loads a tokenizer of ../shared/teachers/seq.
func loadTokenizer(t testing.TB, name string) (tokenizer.Tokenizer, tokenizer.Info) {
	t.Helper()
	tok, info, err := tokenizer.Load(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), name))
	if err != nil {
		t.Fatal(err)
	}
	return tok, info
}

// blankBlocks splits text at blank lines as SplitBlank documents it
// (an independent reference): runs of lines that are not only white
// space, joined by "\n", without "\r" line ends.
func blankBlocks(text string) []string {
	var docs, cur []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSuffix(l, "\r")
		if strings.Trim(l, " \t\r\v\f") == "" {
			if len(cur) > 0 {
				docs = append(docs, strings.Join(cur, "\n"))
			}
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		docs = append(docs, strings.Join(cur, "\n"))
	}
	return docs
}

// tinyStories returns the first n blank-line documents of
// tinystories_val.txt.
func tinyStories(t testing.TB, n int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := blankBlocks(string(data))
	if len(docs) < n {
		t.Fatalf("tinystories_val.txt has %d documents, want %d", len(docs), n)
	}
	return docs[:n]
}

// refWindows is the definition of the windows: the documents' encodings
// (plus eos where missing, if eos >= 0) concatenated and cut into windows
// of size ids every stride ids, the partial tail dropped.
func refWindows(t testing.TB, tok tokenizer.Tokenizer, docs []string, eos, size, stride int) (windows [][]int32, tokens int) {
	t.Helper()
	var stream []int32
	for _, d := range docs {
		if d == "" {
			continue
		}
		ids, err := tok.Encode(d, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			stream = append(stream, int32(id))
		}
		if eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
			stream = append(stream, int32(eos))
		}
	}
	for s := 0; s+size <= len(stream); s += stride {
		windows = append(windows, stream[s:s+size])
	}
	return windows, len(stream)
}

// readWindows reads a token dataset back through Open, checking its
// columns, and returns its windows.
func readWindows(t testing.TB, path string, seqLen int) [][]int32 {
	t.Helper()
	d, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cols := d.Columns()
	if len(cols) != 1 || cols[0].Name != ColInputIDs || cols[0].DType != Int32 || !slices.Equal(cols[0].Shape, []int{seqLen + 1}) || d.Label() {
		t.Fatalf("%s: columns %+v, label %v; want input_ids int32 [%d]", path, cols, d.Label(), seqLen+1)
	}
	b := readAll(t, d, 97)
	vals := b.Cols[ColInputIDs]
	out := make([][]int32, d.Len())
	for i := range out {
		for _, v := range vals[i*(seqLen+1) : (i+1)*(seqLen+1)] {
			out[i] = append(out[i], int32(v))
		}
		if b.Rows[i] != int64(i) {
			t.Fatalf("row %d numbered %d", i, b.Rows[i])
		}
	}
	return out
}

// writeText writes docs as a text file with blank lines between them.
func writeText(t testing.TB, dir, name string, docs []string) string {
	t.Helper()
	return writeFile(t, dir, name, []byte(strings.Join(docs, "\n\n")+"\n"))
}

func TestTokensTinyStories(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 60)
	dir := t.TempDir()
	in := writeText(t, dir, "stories.txt", docs)
	for _, tc := range []struct{ seqLen, stride int }{
		{64, 0}, {64, 16}, {64, 65}, {7, 3}, {1, 1}, {255, 0},
	} {
		for _, format := range []string{"parquet", "arrow"} {
			name := fmt.Sprintf("T%d-S%d.%s", tc.seqLen, tc.stride, format)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				out := filepath.Join(t.TempDir(), name)
				meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
					&TokensOptions{SeqLen: tc.seqLen, Stride: tc.stride, Format: format, RowsPerGroup: 50, Tool: "test"})
				if err != nil {
					t.Fatal(err)
				}
				stride := cmp.Or(tc.stride, tc.seqLen+1)
				want, tokens := refWindows(t, tok, docs, -1, tc.seqLen+1, stride)
				got := readWindows(t, out, tc.seqLen)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%d windows differ from the %d of the reference", len(got), len(want))
				}
				if got[0][0] != 1 {
					t.Errorf("the first window starts with %d, want BOS 1", got[0][0])
				}
				last := (len(want)-1)*stride + tc.seqLen + 1
				if meta.Tokens != int64(tokens) || meta.Documents != int64(len(docs)) || meta.Windows.Train != int64(len(want)) ||
					meta.Windows.Val != 0 || meta.DroppedTokens != int64(tokens-last) || meta.Stride != stride || meta.Window != tc.seqLen+1 {
					t.Errorf("meta %+v; want %d tokens, %d documents, %d windows, %d dropped", meta, tokens, len(docs), len(want), tokens-last)
				}
				back, err := ReadTokensMeta(out)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, meta) {
					t.Errorf("ReadTokensMeta:\n%+v\nwant\n%+v", back, meta)
				}
				if meta.Part != "all" || meta.Val != "none" || meta.Rows() != int64(len(want)) || meta.Split != SplitBlank ||
					meta.TextField != DefaultTextField || *meta.BOSID != 1 || *meta.EOSID != 2 || meta.VocabSize != 512 || meta.Tool != "test" {
					t.Errorf("meta %+v", meta)
				}
				if ins := meta.Inputs; len(ins) != 1 || ins[0].Path != in || ins[0].Format != "text" ||
					ins[0].Documents != int64(len(docs)) || ins[0].Tokens != int64(tokens) {
					t.Errorf("inputs %+v", ins)
				}
				if sum, _ := FileSHA256(in); meta.Inputs[0].SHA256 != sum || meta.Tokenizer.SHA256 != info.SHA256 || meta.Tokenizer.Kind != "llama2c" {
					t.Errorf("hashes: input %s (want %s), tokenizer %+v", meta.Inputs[0].SHA256, sum, meta.Tokenizer)
				}
			})
		}
	}
}

// TestTokensInputFormats checks that the same documents give the same
// windows from a text file, JSON Lines and Parquet/Arrow string columns,
// and from several inputs read in order.
func TestTokensInputFormats(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 40)
	docs[3] = "Ünïcödé “quotes” — and a tab\there"
	dir := t.TempDir()
	var jsonl bytes.Buffer
	for i, d := range docs {
		b, _ := json.Marshal(map[string]any{"id": i, "text": d, "source": "tinystories"})
		jsonl.Write(b)
		jsonl.WriteString("\n")
		if i == 5 {
			jsonl.WriteString(`{"text": ""}` + "\n\n") // an empty document and a blank line: skipped
		}
	}
	ptrs := make([]*string, len(docs))
	for i := range docs {
		ptrs[i] = &docs[i]
	}
	rec := stringRecord(t, memory.DefaultAllocator, arrow.BinaryTypes.String, ptrs)
	defer rec.Release()
	inputs := map[string]string{
		"text":    writeText(t, dir, "docs.txt", docs),
		"jsonl":   writeFile(t, dir, "docs.jsonl", jsonl.Bytes()),
		"parquet": writeFile(t, dir, "docs.parquet", encodeArrow(t, "parquet", rec, 7)),
		"arrow":   writeFile(t, dir, "docs.arrow", encodeArrow(t, "arrow", rec, 7)),
		"stream":  writeFile(t, dir, "data-00000-of-00001.arrow", encodeArrow(t, "arrows", rec, 7)),
		"md":      writeFile(t, dir, "docs.md", []byte(strings.Join(docs[:20], "\n\n"))),
		"json":    writeFile(t, dir, "rest.json", bytes.Join(bytes.Split(jsonl.Bytes(), []byte("\n"))[22:], []byte("\n"))),
	}
	const seqLen = 32
	want, tokens := refWindows(t, tok, docs, -1, seqLen+1, seqLen+1)
	for _, tc := range []struct {
		name   string
		inputs []string
	}{
		{"text", []string{inputs["text"]}},
		{"jsonl", []string{inputs["jsonl"]}},
		{"parquet", []string{inputs["parquet"]}},
		{"arrow", []string{inputs["arrow"]}},
		{"hf-stream", []string{inputs["stream"]}},
		{"md+json", []string{inputs["md"], inputs["json"]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "w.parquet")
			meta, err := WriteTokensFile(context.Background(), out, tc.inputs, tok, info, &TokensOptions{SeqLen: seqLen})
			if err != nil {
				t.Fatal(err)
			}
			if got := readWindows(t, out, seqLen); !reflect.DeepEqual(got, want) {
				t.Fatalf("%d windows differ from the text file's %d", len(got), len(want))
			}
			if meta.Tokens != int64(tokens) || meta.Documents != int64(len(docs)) || len(meta.Inputs) != len(tc.inputs) {
				t.Errorf("meta: %d tokens, %d documents, %d inputs", meta.Tokens, meta.Documents, len(meta.Inputs))
			}
			var docsSum, tokSum int64
			for i, in := range meta.Inputs {
				want, _ := TextFormat(tc.inputs[i])
				if in.Path != tc.inputs[i] || in.Format != want || len(in.SHA256) != 64 || in.Bytes <= 0 {
					t.Errorf("input %d: %+v", i, in)
				}
				docsSum += in.Documents
				tokSum += in.Tokens
			}
			if docsSum != meta.Documents || tokSum != meta.Tokens {
				t.Errorf("inputs sum to %d documents, %d tokens; meta says %d, %d", docsSum, tokSum, meta.Documents, meta.Tokens)
			}
			if tc.name == "jsonl" && meta.EmptyDocuments != 1 {
				t.Errorf("%d empty documents, want 1", meta.EmptyDocuments)
			}
		})
	}
}

// TestTokensChars uses the character vocabulary of the char teacher on
// tinyshakespeare: every id is the index of its character.
func TestTokensChars(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "vocab.json")
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tinyshakespeare.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var vocab []string
	raw, _ := os.ReadFile(info.Path)
	if err := json.Unmarshal(raw, &vocab); err != nil {
		t.Fatal(err)
	}
	text := string(data[:20000])
	dir := t.TempDir()
	in := writeFile(t, dir, "shakespeare.txt", []byte(text))
	const seqLen = 128
	for _, split := range []string{SplitNone, SplitBlank} {
		t.Run(split, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "chars.arrow")
			meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
				&TokensOptions{SeqLen: seqLen, Format: "arrow", TextOptions: TextOptions{Split: split}})
			if err != nil {
				t.Fatal(err)
			}
			docs := []string{text}
			if split == SplitBlank {
				docs = blankBlocks(text)
			}
			var stream []int32
			for _, d := range docs {
				for _, r := range d {
					stream = append(stream, int32(slices.Index(vocab, string(r))))
				}
			}
			got := readWindows(t, out, seqLen)
			if len(got) != len(stream)/(seqLen+1) || meta.Tokens != int64(len(stream)) || meta.BOSID != nil || meta.EOSID != nil {
				t.Fatalf("%d windows of %d ids; meta %+v", len(got), len(stream), meta)
			}
			for i, w := range got {
				if !slices.Equal(w, stream[i*(seqLen+1):(i+1)*(seqLen+1)]) {
					t.Fatalf("window %d differs", i)
				}
			}
			if meta.DroppedTokens != int64(len(stream)%(seqLen+1)) {
				t.Errorf("dropped %d, want %d", meta.DroppedTokens, len(stream)%(seqLen+1))
			}
		})
	}
	// A character outside the vocabulary names the file, line and document.
	bad := writeFile(t, dir, "bad.txt", []byte("To be.\n\nOr not\nto bé.\n"))
	out := filepath.Join(dir, "bad.parquet")
	_, err = WriteTokensFile(context.Background(), out, []string{in, bad}, tok, info, &TokensOptions{SeqLen: 4})
	var de *DocumentError
	if !errors.As(err, &de) || de.Path != bad || de.Line != 3 || de.Number != 2 || !strings.Contains(err.Error(), bad+":3 (document 2)") || !strings.Contains(err.Error(), "é") {
		t.Errorf("unknown character: %v", err)
	}
	assertNoFiles(t, dir, "bad.parquet")
	// The chars vocabulary has no eos.
	if _, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info, &TokensOptions{SeqLen: 4, EOS: true}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "no eos") {
		t.Errorf("EOS with chars: %v", err)
	}
}

// assertNoFiles fails if dir holds name or a temporary or spill file of it.
func assertNoFiles(t testing.TB, dir, name string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == name || strings.HasPrefix(e.Name(), "."+name+".") {
			t.Errorf("%s left behind in %s", e.Name(), dir)
		}
	}
}

func TestTokensEOS(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := []string{"Once upon a time.", "The end.", "Hi"}
	dir := t.TempDir()
	in := writeText(t, dir, "eos.txt", docs)
	out := filepath.Join(dir, "eos.parquet")
	meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info, &TokensOptions{SeqLen: 3, Stride: 1, EOS: true})
	if err != nil {
		t.Fatal(err)
	}
	want, tokens := refWindows(t, tok, docs, 2, 4, 1)
	got := readWindows(t, out, 3)
	if !reflect.DeepEqual(got, want) || !meta.EOS || meta.Tokens != int64(tokens) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	var n int
	for _, w := range got {
		if w[3] == 2 {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d windows end in EOS, want one per document (3)", n)
	}
}

// TestTokensVal checks both homes of the validation windows (zero-based
// windows ValEvery-1, 2*ValEvery-1, ...): the val column of the one
// file, and a file of their own.
func TestTokensVal(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 30)
	dir := t.TempDir()
	in := writeText(t, dir, "stories.txt", docs)
	const seqLen, every = 16, 3
	all, _ := refWindows(t, tok, docs, -1, seqLen+1, seqLen+1)
	var wantTrain, wantVal [][]int32
	var marks []float32
	for i, w := range all {
		if (i+1)%every == 0 {
			wantVal = append(wantVal, w)
			marks = append(marks, 1)
		} else {
			wantTrain = append(wantTrain, w)
			marks = append(marks, 0)
		}
	}
	for _, format := range []string{"parquet", "arrow"} {
		t.Run("column-"+format, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "all."+format)
			meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
				&TokensOptions{SeqLen: seqLen, ValEvery: every, Format: format, RowsPerGroup: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := readWindows(t, out, seqLen); !reflect.DeepEqual(got, all) {
				t.Fatal("windows differ")
			}
			// The val column is read when named as a feature.
			d, err := Open(out, &Options{Features: []string{ColVal}, FeatureName: "is_val"})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if c := d.Columns(); len(c) != 2 || c[1].Name != "is_val" || c[1].DType != Bool {
				t.Fatalf("columns %+v", c)
			}
			if got := readAll(t, d, 64).Cols["is_val"]; !slices.Equal(got, marks) {
				t.Errorf("val marks %v, want %v", got, marks)
			}
			if meta.Val != "column" || meta.Part != "all" || meta.Windows.Val != int64(len(wantVal)) || meta.Windows.Train != int64(len(wantTrain)) || meta.Rows() != int64(len(all)) {
				t.Errorf("meta %+v", meta.Windows)
			}
		})
		t.Run("file-"+format, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			out, valOut := filepath.Join(tmp, "train."+format), filepath.Join(tmp, "val.parquet")
			meta, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
				&TokensOptions{SeqLen: seqLen, ValEvery: every, ValOut: valOut, Format: format, ValFormat: "parquet"})
			if err != nil {
				t.Fatal(err)
			}
			if got := readWindows(t, out, seqLen); !reflect.DeepEqual(got, wantTrain) {
				t.Errorf("train windows differ")
			}
			if got := readWindows(t, valOut, seqLen); !reflect.DeepEqual(got, wantVal) {
				t.Errorf("val windows differ")
			}
			vm, err := ReadTokensMeta(valOut)
			if err != nil {
				t.Fatal(err)
			}
			if meta.Part != "train" || vm.Part != "val" || meta.Val != "file" || vm.Rows() != int64(len(wantVal)) || meta.Rows() != int64(len(wantTrain)) {
				t.Errorf("train meta %+v, val meta %+v", meta, vm)
			}
			vm.Part = meta.Part
			if !reflect.DeepEqual(vm, meta) {
				t.Errorf("the two files' metadata differ beyond part")
			}
		})
	}
}

// TestTokensDeterministic checks that the output does not depend on the
// number of workers or on the run: byte-identical files.
func TestTokensDeterministic(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t, "teachers", "seq"), "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 150_000
	if testing.Short() {
		n = 30_000
	}
	dir := t.TempDir()
	in := writeFile(t, dir, "stories.txt", data[:n])
	for _, format := range []string{"parquet", "arrow"} {
		var first []byte
		for i, workers := range []int{1, 2, 4, 2} {
			out := filepath.Join(dir, fmt.Sprintf("run%d.%s", i, format))
			valOut := filepath.Join(dir, fmt.Sprintf("val%d.%s", i, format))
			if _, err := WriteTokensFile(context.Background(), out, []string{in}, tok, info,
				&TokensOptions{SeqLen: 63, Stride: 50, Workers: workers, RowsPerGroup: 37, ValEvery: 10, ValOut: valOut, Format: format}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			gotVal, _ := os.ReadFile(valOut)
			got = append(got, gotVal...)
			if i == 0 {
				first = got
				continue
			}
			if !bytes.Equal(got, first) {
				t.Errorf("%s: run %d with %d workers differs from run 0 with 1 worker", format, i, workers)
			}
		}
	}
}

func TestTokensErrors(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	dir := t.TempDir()
	good := writeText(t, dir, "good.txt", tinyStories(t, 3))
	blankFile := writeFile(t, dir, "blank.txt", []byte("\n\n  \n"))
	emptyJSONL := writeFile(t, dir, "empty.jsonl", []byte(`{"text": ""}`+"\n"))
	short := writeFile(t, dir, "short.txt", []byte("Hi."))
	noField := writeFile(t, dir, "nofield.jsonl", []byte(`{"text": "a"}`+"\n"+`{"body": "b"}`+"\n"))
	for _, tc := range []struct {
		name   string
		inputs []string
		o      TokensOptions
		is     error
		msg    string
	}{
		{"seq-len 0", []string{good}, TokensOptions{}, nil, "sequence length 0"},
		{"seq-len too big", []string{good}, TokensOptions{SeqLen: MaxSeqLen + 1}, nil, "want 1..65536"},
		{"stride too big", []string{good}, TokensOptions{SeqLen: 8, Stride: 10}, nil, "stride 10: want 1..9"},
		{"negative stride", []string{good}, TokensOptions{SeqLen: 8, Stride: -1}, nil, "stride -1"},
		{"val every 1", []string{good}, TokensOptions{SeqLen: 8, ValEvery: 1}, nil, "at least 2"},
		{"val out without val every", []string{good}, TokensOptions{SeqLen: 8, ValOut: filepath.Join(dir, "v.parquet")}, nil, "ValEvery"},
		{"format", []string{good}, TokensOptions{SeqLen: 8, Format: "csv"}, nil, `"csv"`},
		{"split", []string{good}, TokensOptions{SeqLen: 8, TextOptions: TextOptions{Split: "para"}}, nil, `"para"`},
		{"no inputs", nil, TokensOptions{SeqLen: 8}, ErrShortCorpus, "no input"},
		{"unknown extension", []string{filepath.Join(dir, "x.csv")}, TokensOptions{SeqLen: 8}, ErrFormat, "x.csv"},
		{"missing input", []string{good, filepath.Join(dir, "missing.txt")}, TokensOptions{SeqLen: 8}, os.ErrNotExist, "missing.txt"},
		{"directory", []string{filepath.Join(dir, "sub.txt")}, TokensOptions{SeqLen: 8}, ErrFormat, "directory"},
		{"empty corpus", []string{blankFile, emptyJSONL}, TokensOptions{SeqLen: 8}, ErrShortCorpus, "no text in the 2 inputs (" + blankFile + ", ...) (empty documents skipped: 1)"},
		{"one window short", []string{short}, TokensOptions{SeqLen: 8}, ErrShortCorpus, "fewer than one window of 9"},
		{"jsonl field", []string{good, noField}, TokensOptions{SeqLen: 8}, ErrColumn, noField + ":2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Mkdir(filepath.Join(dir, "sub.txt"), 0o755)
			out := filepath.Join(dir, "out.parquet")
			_, err := WriteTokensFile(context.Background(), out, tc.inputs, tok, info, &tc.o)
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v, want %v with %q", err, tc.is, tc.msg)
			}
			assertNoFiles(t, dir, "out.parquet")
			assertNoFiles(t, dir, "v.parquet")
		})
	}
	// A missing folder is named.
	out := filepath.Join(dir, "no", "such", "out.parquet")
	if _, err := WriteTokensFile(context.Background(), out, []string{good}, tok, info, &TokensOptions{SeqLen: 8}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing folder: %v", err)
	}
	// A cancelled context stops the run and leaves nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, format := range []string{"parquet", "arrow"} {
		out := filepath.Join(dir, "cancel."+format)
		if _, err := WriteTokensFile(ctx, out, []string{good}, tok, info, &TokensOptions{SeqLen: 8, Format: format}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
		assertNoFiles(t, dir, "cancel."+format)
	}
	// Not a token dataset.
	if _, err := ReadTokensMeta(good); !errors.Is(err, ErrFormat) {
		t.Errorf("ReadTokensMeta of a text file: %v", err)
	}
}

// TestTokensMemory checks that every Arrow allocation of a run, reading
// Parquet and writing both formats, is released.
func TestTokensMemory(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	docs := tinyStories(t, 20)
	ptrs := make([]*string, len(docs))
	for i := range docs {
		ptrs[i] = &docs[i]
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := stringRecord(t, mem, arrow.BinaryTypes.String, ptrs)
	dir := t.TempDir()
	in := []string{writeFile(t, dir, "in.parquet", encodeArrow(t, "parquet", rec, 5)), writeFile(t, dir, "in.arrow", encodeArrow(t, "arrow", rec, 5))}
	rec.Release()
	for _, format := range []string{"parquet", "arrow"} {
		o := &TokensOptions{SeqLen: 16, Format: format, ValEvery: 4, RowsPerGroup: 8, TextOptions: TextOptions{Allocator: mem}}
		if _, err := WriteTokensFile(context.Background(), filepath.Join(dir, "out."+format), in, tok, info, o); err != nil {
			t.Fatal(err)
		}
		// And on failure: the second input breaks after the first wrote groups.
		bad := writeFile(t, dir, "bad.jsonl", []byte(`{"text": 1}`))
		if _, err := WriteTokensFile(context.Background(), filepath.Join(dir, "fail."+format), append(in, bad), tok, info, o); err == nil {
			t.Fatal("no error for a bad input")
		}
	}
}

func TestTokensProgress(t *testing.T) {
	t.Parallel()
	tok, info := loadTokenizer(t, "tok512.bin")
	dir := t.TempDir()
	in := writeText(t, dir, "stories.txt", tinyStories(t, 400))
	var calls []TokensProgress
	meta, err := WriteTokensFile(context.Background(), filepath.Join(dir, "out.parquet"), []string{in}, tok, info,
		&TokensOptions{SeqLen: 64, Progress: func(p TokensProgress) { calls = append(calls, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 {
		t.Fatalf("%d progress calls, want several", len(calls))
	}
	last := calls[len(calls)-1]
	st, _ := os.Stat(in)
	if last.Tokens != meta.Tokens || last.Documents != meta.Documents || last.Windows != meta.Rows() || last.Bytes != st.Size() || last.TotalBytes != st.Size() {
		t.Errorf("last progress %+v; meta %d tokens, %d documents, %d windows, %d bytes", last, meta.Tokens, meta.Documents, meta.Rows(), st.Size())
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].Tokens < calls[i-1].Tokens || calls[i].Bytes < calls[i-1].Bytes {
			t.Errorf("progress went back: %+v after %+v", calls[i], calls[i-1])
		}
	}
}

package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distill-ml/distill/internal/sharedtest"
)

// hfTokenizers are the tokenizer.json files of ../shared/tokenizers, each
// with golden.jsonl: 40 cases, with add_special_tokens false then true,
// encoded and decoded by the Rust tokenizers crate (npm tokenizers
// 0.23.2).
var hfTokenizers = []string{"roberta-base", "bert-base-uncased", "phi-3-mini", "t5-small", "olmo2-dolma2"}

// hfGolden is a line of golden.jsonl.
type hfGolden struct {
	Case       string   `json:"case"`
	Text       string   `json:"text"`
	AddSpecial bool     `json:"add_special_tokens"`
	IDs        []int    `json:"ids"`
	Tokens     []string `json:"tokens"`
	Decoded    string   `json:"decoded"`
	DecodedSk  string   `json:"decoded_skip_special"`
	PreTokens  []string `json:"pre_tokens"`
	Normalized string   `json:"normalized"`
}

var hfCache sync.Map // path -> *hfCacheEntry

type hfCacheEntry struct {
	once sync.Once
	tok  *HF
	err  error
}

// loadHFFile parses a tokenizer.json once per test binary.
func loadHFFile(t testing.TB, path string) *HF {
	t.Helper()
	e, _ := hfCache.LoadOrStore(path, &hfCacheEntry{})
	entry := e.(*hfCacheEntry)
	entry.once.Do(func() {
		data, err := os.ReadFile(path)
		if err != nil {
			entry.err = err
			return
		}
		entry.tok, entry.err = ParseHF(data)
	})
	if entry.err != nil {
		t.Fatal(entry.err)
	}
	return entry.tok
}

func loadHFShared(t testing.TB, name string) *HF {
	t.Helper()
	return loadHFFile(t, filepath.Join(sharedtest.Dir(t), "tokenizers", name, "tokenizer.json"))
}

func readGolden(t testing.TB, name string) []hfGolden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "tokenizers", name, "golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []hfGolden
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var g hfGolden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("%s golden line %d: %v", name, len(out)+1, err)
		}
		out = append(out, g)
	}
	return out
}

// TestHFGolden checks every golden line of the five tokenizers: the ids,
// and Decode of them with and without skipSpecial.
func TestHFGolden(t *testing.T) {
	for _, name := range hfTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := loadHFShared(t, name)
			lines := readGolden(t, name)
			if len(lines) != 80 {
				t.Errorf("%d golden lines, want 80", len(lines))
			}
			pass := 0
			for _, g := range lines {
				ok := true
				ids, err := tok.Encode(g.Text, g.AddSpecial)
				if err != nil {
					t.Errorf("%s (special %v): Encode: %v", g.Case, g.AddSpecial, err)
					continue
				}
				if !slices.Equal(ids, g.IDs) {
					ok = false
					t.Errorf("%s (special %v): ids\n got %v\nwant %v\n got tokens %q\nwant tokens %q",
						g.Case, g.AddSpecial, ids, g.IDs, hfTokens(tok, ids), g.Tokens)
				}
				if got := tok.Decode(g.IDs, false); got != g.Decoded {
					ok = false
					t.Errorf("%s (special %v): Decode(ids, false)\n got %q\nwant %q", g.Case, g.AddSpecial, got, g.Decoded)
				}
				if got := tok.Decode(g.IDs, true); got != g.DecodedSk {
					ok = false
					t.Errorf("%s (special %v): Decode(ids, true)\n got %q\nwant %q", g.Case, g.AddSpecial, got, g.DecodedSk)
				}
				for _, id := range ids {
					if id < 0 || id >= tok.VocabSize() {
						ok = false
						t.Errorf("%s: id %d outside VocabSize %d", g.Case, id, tok.VocabSize())
					}
				}
				if ok {
					pass++
				}
			}
			t.Logf("%s: %d/%d golden lines pass", name, pass, len(lines))
		})
	}
}

// hfTokens returns the token strings of ids, for failure messages.
func hfTokens(tok *HF, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := tok.added.token(id)
		if !ok {
			s, _ = tok.model.token(id)
		}
		out[i] = s
	}
	return out
}

// TestHFStories260K checks stories260K-hf/tokenizer.json (tok512 in the
// Llama-2 tokenizer.json layout) against the llama2.c tokenizer it was
// made from: the same ids, BOS included, on every blank-line-separated
// block of the TinyStories text, and Decode(ids, true) gives the block
// back.
func TestHFStories260K(t *testing.T) {
	dir := filepath.Join(sharedtest.Dir(t), "teachers", "seq")
	hf := loadHFFile(t, filepath.Join(dir, "stories260K-hf", "tokenizer.json"))
	ll := loadTok512(t)
	if hf.VocabSize() != ll.VocabSize() {
		t.Errorf("VocabSize %d, llama2c %d", hf.VocabSize(), ll.VocabSize())
	}
	for _, role := range []string{"bos", "eos", "unk"} {
		a, ok1 := hf.Special(role)
		b, ok2 := ll.Special(role)
		if a != b || ok1 != ok2 {
			t.Errorf("Special(%q) = %d %v, llama2c %d %v", role, a, ok1, b, ok2)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// The file ends with a blank line: its last split is empty.
	blocks := strings.Split(strings.TrimSuffix(string(data), "\n\n"), "\n\n")
	same, ids := 0, 0
	for i, b := range blocks {
		got, err := hf.Encode(b, true)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		want, _ := ll.Encode(b, true)
		if !slices.Equal(got, want) {
			t.Errorf("block %d: ids differ from llama2c\n got %v\nwant %v", i, got, want)
			continue
		}
		if back := hf.Decode(got, true); back != b {
			t.Errorf("block %d decodes to\n%q\nwant\n%q", i, back, b)
			continue
		}
		same++
		ids += len(got)
	}
	if len(blocks) != 4300 {
		t.Errorf("%d blocks, the README says 4,300", len(blocks))
	}
	if same != len(blocks) {
		t.Errorf("%d/%d blocks agree", same, len(blocks))
	}
	t.Logf("%d/%d blocks agree with llama2c (%d ids)", same, len(blocks), ids)
}

// regexTexts are texts for comparing the built-in regex matchers with
// regexp2: the golden texts and runs of whitespace, contractions, digits.
func regexTexts(t *testing.T) []string {
	texts := []string{
		"", " ", "  ", "a  b", "a \n b", "x\u2003\u2003y", "x\v\vy", "\r\n\r\n  x", "  \n\t\n  ",
		"I'm they'll it's we've isn't DON'T YOU'D'VE 'S 'Ll", "'", "''s", " 's", "'llama", "it'ſ x",
		"12345678901234567890123", "٣٤٥٦ ①②③④", "!!!\n\n", " !!\r\n", "$hello (world)", "\ttab\tx",
		"a\u0085b\u00a0c\u3000d\u2028e", "emoji 🤗👍🏽 🇫🇷", "a\u0301e\u0301", "x\u200by",
	}
	for _, name := range hfTokenizers {
		for _, g := range readGolden(t, name) {
			texts = append(texts, g.Text)
		}
	}
	return texts
}

// TestHFRegexTilers checks the hand-written GPT-2 and Llama 3 matchers
// against regexp2 running the same regexes.
func TestHFRegexTilers(t *testing.T) {
	texts := regexTexts(t)
	for _, expr := range []string{gpt2Regex, llama3Regex} {
		fast, _ := newRegexPattern(expr)
		slow, err := compileRegexp2(expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			a, _ := collectSpans(fast, s)
			b, err := collectSpans(slow, s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a, b) {
				t.Errorf("%.20s… on %q:\n tiler   %v\n regexp2 %v", expr, s, spanStrings(s, a), spanStrings(s, b))
			}
		}
	}
}

// collectSpans returns the spans of s.
func collectSpans(p pattern, s string) ([]span, error) {
	var out []span
	err := p.find(s, func(sp span) error {
		out = append(out, sp)
		return nil
	})
	return out, err
}

func spanStrings(s string, spans []span) []string {
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = s[sp.start:sp.end]
		if !sp.match {
			out[i] = "!" + out[i]
		}
	}
	return out
}

// TestHFStages checks the normalizer and the pre-tokenizer on their own
// against the goldens' stage diagnostics: normalized is the normalizer
// over the whole text, pre_tokens the pre-tokenizer over that.
func TestHFStages(t *testing.T) {
	for _, name := range hfTokenizers {
		t.Run(name, func(t *testing.T) {
			tok := loadHFShared(t, name)
			for _, g := range readGolden(t, name) {
				if g.AddSpecial {
					continue
				}
				s := g.Text
				if tok.normalizer != nil {
					var err error
					if s, err = tok.normalizer.normalize(s); err != nil {
						t.Fatal(err)
					}
				}
				if s != g.Normalized {
					t.Errorf("%s: normalized\n got %q\nwant %q", g.Case, s, g.Normalized)
				}
				if tok.pre == nil {
					if g.PreTokens != nil {
						t.Errorf("%s: no pre-tokenizer, but the golden has pre_tokens", g.Case)
					}
					continue
				}
				got := []string{}
				err := tok.pre.split(piece{s: s, first: true}, func(p piece) error {
					got = append(got, p.text())
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, g.PreTokens) {
					t.Errorf("%s: pre_tokens\n got %q\nwant %q", g.Case, got, g.PreTokens)
				}
			}
		})
	}
}

// hfBenchTokenizers maps benchmark names to tokenizer.json paths below
// ../shared.
var hfBenchTokenizers = [][2]string{
	{"roberta-base", "tokenizers/roberta-base/tokenizer.json"},
	{"bert-base-uncased", "tokenizers/bert-base-uncased/tokenizer.json"},
	{"phi-3-mini", "tokenizers/phi-3-mini/tokenizer.json"},
	{"t5-small", "tokenizers/t5-small/tokenizer.json"},
	{"olmo2-dolma2", "tokenizers/olmo2-dolma2/tokenizer.json"},
	{"stories260K-hf", "teachers/seq/stories260K-hf/tokenizer.json"},
}

// BenchmarkEncode encodes the TinyStories text (794 KB, as one string)
// with each tokenizer, in MB/s. The word caches are warm after the first
// iteration, as they are in a long extraction. The /regexp2 variants run
// the split regex on regexp2 instead of the hand-written matcher.
func BenchmarkEncode(b *testing.B) {
	shared := sharedtest.Dir(b)
	data, err := os.ReadFile(filepath.Join(shared, "teachers", "seq", "tinystories_val.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	run := func(name string, load func() *HF) {
		b.Run(name, func(b *testing.B) {
			tok := load()
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				ids, err := tok.Encode(text, true)
				if err != nil {
					b.Fatal(err)
				}
				n = len(ids)
			}
			b.ReportMetric(float64(len(text))/float64(n), "bytes/token")
		})
	}
	for _, bt := range hfBenchTokenizers {
		run(bt[0], func() *HF { return loadHFFile(b, filepath.Join(shared, bt[1])) })
	}
	// The same with regexp2 running the split regex, for comparison.
	for _, name := range []string{"roberta-base", "olmo2-dolma2"} {
		run(name+"/regexp2", func() *HF { return withRegexp2(b, name) })
	}
}

// BenchmarkParseHF measures loading each tokenizer.json.
func BenchmarkParseHF(b *testing.B) {
	shared := sharedtest.Dir(b)
	for _, bt := range hfBenchTokenizers {
		b.Run(bt[0], func(b *testing.B) {
			data, err := os.ReadFile(filepath.Join(shared, bt[1]))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseHF(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// withRegexp2 returns a copy of the roberta-base or olmo2-dolma2
// tokenizer whose split regex runs on regexp2 instead of the tiler.
func withRegexp2(t testing.TB, name string) *HF {
	tok := *loadHFShared(t, name)
	switch name {
	case "roberta-base": // ByteLevel(add_prefix_space false) with its regex
		re, err := compileRegexp2(gpt2Regex)
		if err != nil {
			t.Fatal(err)
		}
		tok.pre = sequencePreTokenizer{splitPreTokenizer{pattern: re, behavior: splitIsolated}, byteLevelPreTokenizer{}}
	case "olmo2-dolma2": // Split(regex, Removed, invert), ByteLevel(use_regex false)
		re, err := compileRegexp2(llama3Regex)
		if err != nil {
			t.Fatal(err)
		}
		seq := slices.Clone(tok.pre.(sequencePreTokenizer))
		sp := seq[0].(splitPreTokenizer)
		sp.pattern = re
		seq[0] = sp
		tok.pre = seq
	}
	return &tok
}

// TestHFGoldenRegexp2 runs the goldens of the two regex tokenizers with
// regexp2 in place of the hand-written matchers: regexp2's \s, \p{L},
// \p{N}, (?i:...) and lookahead give the reference's pieces as well.
func TestHFGoldenRegexp2(t *testing.T) {
	for _, name := range []string{"roberta-base", "olmo2-dolma2"} {
		tok := withRegexp2(t, name)
		pass := 0
		lines := readGolden(t, name)
		for _, g := range lines {
			ids, err := tok.Encode(g.Text, g.AddSpecial)
			if err != nil || !slices.Equal(ids, g.IDs) {
				t.Errorf("%s %s: %v %v, want %v", name, g.Case, ids, err, g.IDs)
				continue
			}
			pass++
		}
		t.Logf("%s with regexp2: %d/%d golden lines", name, pass, len(lines))
	}
}

// BenchmarkSplitRegex compares the hand-written GPT-2 and Llama 3
// matchers with regexp2 on the TinyStories text.
func BenchmarkSplitRegex(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(b), "teachers", "seq", "tinystories_val.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, r := range []struct{ name, expr string }{{"gpt2", gpt2Regex}, {"llama3", llama3Regex}} {
		fast, _ := newRegexPattern(r.expr)
		slow, err := compileRegexp2(r.expr)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range []struct {
			name string
			p    pattern
		}{{"tiler", fast}, {"regexp2", slow}} {
			b.Run(r.name+"/"+e.name, func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					n := 0
					if err := e.p.find(text, func(span) error { n++; return nil }); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

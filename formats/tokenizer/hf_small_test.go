package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/clipperhouse/uax29/v2/graphemes"
)

// Small tokenizer.json documents built in-line, one per model kind, for
// unit tests and as fuzz seeds.

type jmap = map[string]any

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func special(id int, content string) jmap {
	return jmap{"id": id, "content": content, "single_word": false, "lstrip": false,
		"rstrip": false, "normalized": false, "special": true}
}

// byteLevelVocab is the 256 byte-level chars, ids 0..255 in byte order.
func byteLevelVocab() map[string]int {
	v := map[string]int{}
	for b := range 256 {
		v[string(byteLevelChars[b])] = b
	}
	return v
}

// docByteBPE is a GPT-2-style byte-level BPE with merges as pairs and a
// template given as a string.
func docByteBPE() []byte {
	v := byteLevelVocab()
	for i, t := range []string{"Ġt", "he", "Ġthe", "in", "Ġa"} {
		v[t] = 256 + i
	}
	return mustJSON(jmap{
		"version":       "1.0",
		"added_tokens":  []jmap{special(261, "<|endoftext|>")},
		"normalizer":    nil,
		"pre_tokenizer": jmap{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
		"post_processor": jmap{"type": "TemplateProcessing", "single": "$A <|endoftext|>", "pair": "$A $B",
			"special_tokens": jmap{"<|endoftext|>": jmap{"id": "<|endoftext|>", "ids": []int{261}, "tokens": []string{"<|endoftext|>"}}}},
		"decoder": jmap{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": jmap{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "vocab": v,
			"merges": [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}}},
	})
}

// docSPBPE is a Llama-2-style BPE: byte_fallback, fuse_unk, the Prepend
// and Replace normalizer, no pre-tokenizer, merges as "a b" strings.
func docSPBPE(byteFallback, fuseUnk bool) []byte {
	v := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := range 256 {
		v[byteToken(byte(b))] = 3 + b
	}
	for i, t := range []string{"▁", "a", "b", "▁a", "ab", "▁ab", "c"} {
		v[t] = 259 + i
	}
	return mustJSON(jmap{
		"version":      "1.0",
		"added_tokens": []jmap{special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")},
		"normalizer": jmap{"type": "Sequence", "normalizers": []jmap{
			{"type": "Prepend", "prepend": "▁"},
			{"type": "Replace", "pattern": jmap{"String": " "}, "content": "▁"}}},
		"pre_tokenizer": nil,
		"post_processor": jmap{"type": "TemplateProcessing",
			"single":         []jmap{{"SpecialToken": jmap{"id": "<s>", "type_id": 0}}, {"Sequence": jmap{"id": "A", "type_id": 0}}},
			"pair":           []jmap{{"Sequence": jmap{"id": "A", "type_id": 0}}, {"Sequence": jmap{"id": "B", "type_id": 1}}},
			"special_tokens": jmap{"<s>": jmap{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}}}},
		"decoder": jmap{"type": "Sequence", "decoders": []jmap{
			{"type": "Replace", "pattern": jmap{"String": "▁"}, "content": " "},
			{"type": "ByteFallback"}, {"type": "Fuse"},
			{"type": "Strip", "content": " ", "start": 1, "stop": 0}}},
		"model": jmap{"type": "BPE", "unk_token": "<unk>", "fuse_unk": fuseUnk, "byte_fallback": byteFallback,
			"vocab": v, "merges": []string{"▁ a", "a b", "▁a b"}},
	})
}

// docWordPiece is a BERT-style WordPiece.
func docWordPiece() []byte {
	v := map[string]int{}
	for i, t := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "ab", "##b", "##c",
		"hello", ",", "!", "##s", "world"} {
		v[t] = i
	}
	added := []jmap{}
	for i, t := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} {
		added = append(added, special(i, t))
	}
	return mustJSON(jmap{
		"added_tokens": added,
		"normalizer": jmap{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
			"strip_accents": nil, "lowercase": true},
		"pre_tokenizer":  jmap{"type": "BertPreTokenizer"},
		"post_processor": jmap{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}},
		"decoder":        jmap{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": jmap{"unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 10, "vocab": v},
	})
}

// unigramVocab has <unk>, ▁, a, b, ab, ▁a, c, then the 256 byte tokens.
func unigramVocab() [][2]any {
	v := [][2]any{{"<unk>", 0.0}, {"▁", -2.0}, {"a", -3.0}, {"b", -3.0}, {"ab", -2.5}, {"▁a", -2.2}, {"c", -4.0}}
	for b := range 256 {
		v = append(v, [2]any{byteToken(byte(b)), -10.0})
	}
	return v
}

// docUnigram is a Unigram with byte_fallback and the newer Metaspace
// (prepend_scheme "first").
func docUnigram() []byte {
	return mustJSON(jmap{
		"added_tokens":  []jmap{special(0, "<unk>")},
		"normalizer":    jmap{"type": "Sequence", "normalizers": []jmap{{"type": "NFKC"}, {"type": "Lowercase"}}},
		"pre_tokenizer": jmap{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
		"decoder":       jmap{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
		"model":         jmap{"type": "Unigram", "unk_id": 0, "byte_fallback": true, "vocab": unigramVocab()},
	})
}

// docPrecompiled is a T5-style Unigram (untagged): a Precompiled
// normalizer (testCharsmap), WhitespaceSplit and the old Metaspace.
func docPrecompiled() []byte {
	return mustJSON(jmap{
		"added_tokens": []jmap{special(0, "<unk>")},
		"normalizer":   jmap{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(testCharsmap())},
		"pre_tokenizer": jmap{"type": "Sequence", "pretokenizers": []jmap{{"type": "WhitespaceSplit"},
			{"type": "Metaspace", "replacement": "▁", "str_rep": "▁", "add_prefix_space": true}}},
		"decoder": jmap{"type": "Metaspace", "replacement": "▁", "str_rep": "▁", "add_prefix_space": true},
		"model":   jmap{"unk_id": 0, "vocab": unigramVocab()[:7]},
	})
}

// docWordLevel is a WordLevel with added tokens of every kind: lstrip,
// normalized, single_word, and two sharing a prefix.
func docWordLevel() []byte {
	tok := func(content string, singleWord, lstrip, normalized bool) jmap {
		return jmap{"id": 0, "content": content, "single_word": singleWord, "lstrip": lstrip,
			"rstrip": false, "normalized": normalized, "special": false}
	}
	mask := tok("[MASK]", false, true, false)
	mask["special"] = true
	return mustJSON(jmap{
		"added_tokens": []jmap{mask, tok("Special", false, false, true), tok("ab", true, false, false),
			tok("<a>", false, false, false), tok("<a><b>", false, false, false)},
		"normalizer":    jmap{"type": "Sequence", "normalizers": []jmap{{"type": "Strip", "strip_left": true, "strip_right": true}, {"type": "Lowercase"}}},
		"pre_tokenizer": jmap{"type": "Whitespace"},
		"model":         jmap{"type": "WordLevel", "unk_token": "<unk>", "vocab": map[string]int{"<unk>": 0, "hello": 1, "world": 2, "!": 3}},
	})
}

// docSplit is a char-level BPE (no merges) behind a Split with a
// lookahead regex (regexp2), Digits and Punctuation.
func docSplit() []byte {
	v := map[string]int{"<unk>": 0}
	for c := ' '; c <= '~'; c++ {
		v[string(c)] = len(v)
	}
	return mustJSON(jmap{
		"pre_tokenizer": jmap{"type": "Sequence", "pretokenizers": []jmap{
			{"type": "Split", "pattern": jmap{"Regex": `\s+(?!\S)|\s+|\p{L}+|[^\s\p{L}]+`}, "behavior": "MergedWithPrevious", "invert": false},
			{"type": "Digits", "individual_digits": true},
			{"type": "Punctuation", "behavior": "Contiguous"}}},
		"decoder": jmap{"type": "Fuse"},
		"model":   jmap{"type": "BPE", "unk_token": "<unk>", "vocab": v, "merges": []string{}},
	})
}

// smallDocs are the in-line documents by name.
var smallDocs = []struct {
	name string
	doc  func() []byte
}{
	{"bytebpe", docByteBPE},
	{"spbpe", func() []byte { return docSPBPE(true, true) }},
	{"wordpiece", docWordPiece},
	{"unigram", docUnigram},
	{"precompiled", docPrecompiled},
	{"wordlevel", docWordLevel},
	{"split", docSplit},
}

func parseSmall(t testing.TB, doc []byte) *HF {
	t.Helper()
	tok, err := ParseHF(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return tok
}

// testCharsmapRules are the rules of testCharsmap: NFKC-like
// replacements, a two-char key, and a key that is a prefix of another.
var testCharsmapRules = map[string]string{
	"Ａ": "A", "ﬁ": "fi", "\r": " ", "e\u0301": "é", "\u00a0": " ", "①": "1", "ab": "x", "\u200b": "",
}

// testCharsmap builds a SentencePiece precompiled charsmap (a Darts
// double array and its NUL-terminated replacements) for
// testCharsmapRules, placing each trie node greedily.
func testCharsmap() []byte {
	keys := make([]string, 0, len(testCharsmapRules))
	for k := range testCharsmapRules {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var repl []byte
	value := map[string]int{}
	for _, k := range keys {
		value[k] = len(repl)
		repl = append(append(repl, testCharsmapRules[k]...), 0)
	}
	// The trie of the keys: node = prefix.
	children := map[string][]byte{}
	for _, k := range keys {
		for i := 1; i <= len(k); i++ {
			p, c := k[:i-1], k[i-1]
			if !slices.Contains(children[p], c) {
				children[p] = append(children[p], c)
			}
		}
	}
	units := make([]uint32, 1)
	used := map[int]bool{0: true}
	usedBase := map[int]bool{} // as in Darts, no two nodes share a base

	pos := map[string]int{"": 0}
	queue := []string{""}
	for len(queue) > 0 {
		node := queue[0]
		queue = queue[1:]
		_, leaf := value[node]
		kids := children[node]
		base := 1
		for ; ; base++ {
			ok := !usedBase[base] && (!leaf || !used[base])
			for _, c := range kids {
				ok = ok && !used[base^int(c)]
			}
			if ok && base^pos[node] < 1<<20 {
				break
			}
		}
		grow := func(i int) {
			for len(units) <= i {
				units = append(units, 0)
			}
			used[i] = true
		}
		usedBase[base] = true
		p := pos[node]
		units[p] |= uint32(base^p) << 10
		if leaf {
			grow(base)
			units[base] = 1<<31 | uint32(value[node])
			units[p] |= 1 << 8
		}
		for _, c := range kids {
			q := base ^ int(c)
			grow(q)
			units[q] = uint32(c)
			child := node + string([]byte{c})
			pos[child] = q
			queue = append(queue, child)
		}
	}
	// A node's has-leaf bit is on its own unit; its label stays in bits 0-7.
	out := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		out = binary.LittleEndian.AppendUint32(out, u)
	}
	return append(out, repl...)
}

// precompiledRef is the Precompiled normalizer without the ASCII fast
// path, for checking it.
func precompiledRef(p *precompiled, s string) string {
	var b strings.Builder
	g := graphemes.FromString(s)
	for g.Next() {
		cluster := g.Value()
		if len(cluster) < 6 {
			if r, ok := p.transform(cluster); ok {
				b.WriteString(r)
				continue
			}
		}
		for _, r := range cluster {
			if x, ok := p.transform(string(r)); ok {
				b.WriteString(x)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func TestHFPrecompiled(t *testing.T) {
	p, err := parsePrecompiled(testCharsmap())
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range testCharsmapRules {
		if got, ok := p.transform(k); !ok || got != want {
			t.Errorf("transform(%q) = %q %v, want %q", k, got, ok, want)
		}
	}
	for in, want := range map[string]string{
		"ＡＢ ﬁx":           "AＢ fix",
		"a\r\nb":          "a b", // the cluster CR LF takes CR's replacement
		"cafe\u0301":      "café",
		"Ａ\u0301":         "A", // the shortest key of the cluster replaces all of it
		"abc":             "abc",
		"x\u200by\u00a0z": "xy z",
		"①②":              "1②",
		"":                "",
	} {
		got, _ := p.normalize(in)
		if got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
		if ref := precompiledRef(p, in); ref != got {
			t.Errorf("normalize(%q) = %q, reference %q", in, got, ref)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2}, {8, 0, 0, 0, 1, 2, 3}, append(binary.LittleEndian.AppendUint32(nil, 4), 0, 0, 0, 0, 0xff)} {
		if _, err := parsePrecompiled(bad); err == nil {
			t.Errorf("parsePrecompiled(%v): no error", bad)
		}
	}
	// A corrupt trie gives no replacements, not a panic.
	junk := &precompiled{trie: []uint32{0xffffffff, 0x7fffffff, 1}, repl: []byte("x\x00")}
	if got, _ := junk.normalize("abc"); got != "abc" {
		t.Errorf("corrupt trie: %q", got)
	}
}

func TestHFSmallModels(t *testing.T) {
	t.Parallel()
	t.Run("bytebpe", func(t *testing.T) {
		tok := parseSmall(t, docByteBPE())
		v := byteLevelVocab()
		ids, _ := tok.Encode("the the at", true)
		if want := []int{v["t"], 257, 258, 260, v["t"], 261}; !slices.Equal(ids, want) {
			t.Errorf("ids %v, want %v", ids, want)
		}
		if got := tok.Decode(ids, false); got != "the the at<|endoftext|>" {
			t.Errorf("Decode: %q", got)
		}
		if got := tok.Decode(ids, true); got != "the the at" {
			t.Errorf("Decode skip: %q", got)
		}
		// Merges as "a b" strings give the same model.
		var doc map[string]any
		json.Unmarshal(docByteBPE(), &doc)
		m := doc["model"].(map[string]any)
		var lines []string
		for _, p := range m["merges"].([]any) {
			q := p.([]any)
			lines = append(lines, q[0].(string)+" "+q[1].(string))
		}
		m["merges"] = lines
		tok2 := parseSmall(t, mustJSON(doc))
		if ids2, _ := tok2.Encode("the the at", true); !slices.Equal(ids, ids2) {
			t.Errorf("string merges: %v, pairs %v", ids2, ids)
		}
		if eos, ok := tok.Special("eos"); !ok || eos != 261 {
			t.Errorf("eos %d %v", eos, ok)
		}
	})
	t.Run("spbpe", func(t *testing.T) {
		tok := parseSmall(t, docSPBPE(true, true))
		if tok.model.(*bpe).splitBefore != "▁" {
			t.Errorf("no chunking on ▁")
		}
		for _, c := range []struct {
			text string
			ids  []int
		}{
			{"ab a", []int{1, 264, 262}},
			{"é", []int{1, 259, 3 + 0xC3, 3 + 0xA9}},
			{"<s>a", []int{1, 1, 262}},
			{"", []int{1}},
		} {
			ids, _ := tok.Encode(c.text, true)
			if !slices.Equal(ids, c.ids) {
				t.Errorf("%q: %v, want %v", c.text, ids, c.ids)
			}
			if got := tok.Decode(ids, true); got != strings.TrimPrefix(c.text, "<s>") {
				t.Errorf("%q decodes to %q", c.text, got)
			}
		}
		fused := parseSmall(t, docSPBPE(false, true))
		if ids, _ := fused.Encode("éé a", false); !slices.Equal(ids, []int{259, 0, 262}) {
			t.Errorf("fuse_unk: %v", ids)
		}
		unfused := parseSmall(t, docSPBPE(false, false))
		if ids, _ := unfused.Encode("éé a", false); !slices.Equal(ids, []int{259, 0, 0, 262}) {
			t.Errorf("no fuse_unk: %v", ids)
		}
		if got := tok.Decode([]int{259, 3 + 0xC3, 260, 3 + 0xFF}, false); got != "\uFFFDa\uFFFD" {
			t.Errorf("invalid byte tokens decode to %q", got)
		}
	})
	t.Run("wordpiece", func(t *testing.T) {
		tok := parseSmall(t, docWordPiece())
		for _, c := range []struct {
			text string
			ids  []int
		}{
			{"Hello, ABc! hello", []int{2, 10, 11, 7, 9, 12, 10, 3}},
			{"xyz abababababab", []int{2, 1, 1, 3}}, // unknown; longer than 10 chars
			{"Héllo a中b", []int{2, 10, 5, 1, 6, 3}},
			{"a [MASK]b\x07", []int{2, 5, 4, 6, 3}},
		} {
			if ids, _ := tok.Encode(c.text, true); !slices.Equal(ids, c.ids) {
				t.Errorf("%q: %v, want %v", c.text, ids, c.ids)
			}
		}
		ids := []int{2, 10, 11, 7, 9, 12, 10, 3}
		if got := tok.Decode(ids, true); got != "hello, abc! hello" {
			t.Errorf("Decode skip: %q", got)
		}
		if got := tok.Decode(ids, false); got != "[CLS] hello, abc! hello [SEP]" {
			t.Errorf("Decode: %q", got)
		}
		for role, want := range map[string]int{"bos": 2, "eos": 3, "unk": 1, "pad": 0} {
			if id, ok := tok.Special(role); !ok || id != want {
				t.Errorf("Special(%q) = %d %v, want %d", role, id, ok, want)
			}
		}
	})
	t.Run("unigram", func(t *testing.T) {
		tok := parseSmall(t, docUnigram())
		for _, c := range []struct {
			text string
			ids  []int
		}{
			{"ab", []int{1, 4}},
			{"x", []int{1, 7 + 'x'}},
			{"<unk>x", []int{0, 7 + 'x'}}, // "first": no ▁ after a leading added token
			{"AB ab", []int{1, 4, 1, 4}},
			{"ｘ", []int{1, 7 + 'x'}}, // NFKC
		} {
			if ids, _ := tok.Encode(c.text, false); !slices.Equal(ids, c.ids) {
				t.Errorf("%q: %v, want %v", c.text, ids, c.ids)
			}
		}
		if got := tok.Decode([]int{1, 4, 1, 4}, false); got != "ab ab" {
			t.Errorf("Decode: %q", got)
		}
	})
	t.Run("precompiled", func(t *testing.T) {
		tok := parseSmall(t, docPrecompiled())
		if _, ok := tok.model.(*unigram); !ok {
			t.Fatalf("untagged model with a vocab list is %T, want Unigram", tok.model)
		}
		// Ａ becomes A (not in the vocabulary: unknown); the key "ab" never
		// applies, a and b being clusters of their own.
		if ids, _ := tok.Encode("ａb Ａ ab c", false); !slices.Equal(ids, []int{1, 0, 3, 1, 0, 1, 4, 1, 6}) {
			t.Errorf("ids %v", ids)
		}
	})
	t.Run("wordlevel", func(t *testing.T) {
		tok := parseSmall(t, docWordLevel())
		// Added tokens not in the vocabulary get ids 4.. in order.
		const mask, spec, ab, a, aB = 4, 5, 6, 7, 8
		for _, c := range []struct {
			text string
			ids  []int
		}{
			{"  Hello world! ", []int{1, 2, 3}},
			{"x [MASK]", []int{0, mask}},
			{"SPECIAL special", []int{spec, spec}},
			{"ab xab ab", []int{ab, 0, ab}},
			{"<a><b><a><c>", []int{aB, a, 0, 0, 0}}, // Whitespace: < c >
		} {
			if ids, _ := tok.Encode(c.text, false); !slices.Equal(ids, c.ids) {
				t.Errorf("%q: %v, want %v", c.text, ids, c.ids)
			}
		}
		if got := tok.Decode([]int{1, spec, mask, 2}, true); got != "hello special world" {
			t.Errorf("Decode: %q", got)
		}
		if tok.VocabSize() != 9 {
			t.Errorf("VocabSize %d", tok.VocabSize())
		}
	})
	t.Run("split", func(t *testing.T) {
		tok := parseSmall(t, docSplit())
		if _, ok := tok.pre.(sequencePreTokenizer)[0].(splitPreTokenizer).pattern.(*regexPattern); !ok {
			t.Fatalf("the lookahead regex does not use regexp2")
		}
		text := "a1, b   c\u00e9!"
		ids, err := tok.Encode(text, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Decode(ids, false); got != "a1, b   c<unk>!" {
			t.Errorf("Decode: %q", got)
		}
	})
}

func TestHFSplitBehaviors(t *testing.T) {
	for _, c := range []struct {
		b    splitBehavior
		want []string
	}{ // the examples of the tokenizers documentation
		{splitRemoved, []string{"the", "final", "countdown"}},
		{splitIsolated, []string{"the", "-", "final", "-", "-", "countdown"}},
		{splitMergedWithPrevious, []string{"the-", "final-", "-", "countdown"}},
		{splitMergedWithNext, []string{"the", "-final", "-", "-countdown"}},
		{splitContiguous, []string{"the", "-", "final", "--", "countdown"}},
	} {
		var got []string
		splitPattern(piece{s: "the-final--countdown"}, literalPattern("-"), c.b, false, func(p piece) error {
			got = append(got, p.s)
			return nil
		})
		if !slices.Equal(got, c.want) {
			t.Errorf("behavior %d: %q, want %q", c.b, got, c.want)
		}
	}
	// invert: the matches are what Removed keeps.
	re, _ := newRegexPattern(`\w+`)
	var got []string
	splitPattern(piece{s: "hey, you!"}, re, splitRemoved, true, func(p piece) error {
		got = append(got, p.s)
		return nil
	})
	if !slices.Equal(got, []string{"hey", "you"}) {
		t.Errorf("invert: %q", got)
	}
	// Metaspace's prepend schemes.
	for _, c := range []struct {
		doc   string
		first bool
		want  []string
	}{
		{`{"replacement": "▁", "prepend_scheme": "always"}`, false, []string{"▁hey", "▁", "▁", "▁there"}},
		{`{"replacement": "▁", "prepend_scheme": "first"}`, false, []string{"hey", "▁", "▁", "▁there"}},
		{`{"replacement": "▁", "prepend_scheme": "first"}`, true, []string{"▁hey", "▁", "▁", "▁there"}},
		{`{"replacement": "▁", "add_prefix_space": false}`, true, []string{"hey", "▁", "▁", "▁there"}},
		{`{"replacement": "▁", "add_prefix_space": true, "split": false}`, false, []string{"▁hey▁▁▁there"}},
	} {
		o, _ := newObj("m", json.RawMessage(c.doc))
		m, err := parseMetaspace(o)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		m.split(piece{s: "hey   there", first: c.first}, func(p piece) error {
			got = append(got, p.s)
			return nil
		})
		if !slices.Equal(got, c.want) {
			t.Errorf("%s first %v: %q, want %q", c.doc, c.first, got, c.want)
		}
	}
}

func TestHFUnicodeHelpers(t *testing.T) {
	for in, want := range map[string]string{
		"\xF0\x9F\x98":     "\uFFFD",
		"\xFF\xFE":         "\uFFFD\uFFFD",
		"a\xE2\x82b":       "a\uFFFDb",
		"\xED\xA0\x80":     "\uFFFD\uFFFD\uFFFD",
		"\xC0\xAF":         "\uFFFD\uFFFD",
		"ok \uFFFD \u00e9": "ok \uFFFD \u00e9",
	} {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
	if got := lowercase("İSTANBUL Σ"); got != "i\u0307stanbul σ" {
		t.Errorf("lowercase: %q", got)
	}
	for _, c := range []struct {
		r    rune
		want bool
	}{{0xE000, true}, {0xE001, false}, {0x200B, true}, {0x13439, false}, {'\t', false}, {0x7F, true}} {
		if got := bertControl(c.r); got != c.want {
			t.Errorf("bertControl(%U) = %v", c.r, got)
		}
	}
	for _, c := range []struct {
		r    rune
		want bool
	}{{'$', true}, {'`', true}, {'a', false}, {'。', true}, {0x11F43, false}} {
		if got := bertPunct(c.r); got != c.want {
			t.Errorf("bertPunct(%U) = %v", c.r, got)
		}
	}
	if got := spanStrings("it'ſ x", mustSpans(llama3Regex, "it'ſ x")); !slices.Equal(got, []string{"it", "'ſ", " x"}) {
		t.Errorf("llama3 (?i) contraction with ſ: %q", got)
	}
}

func mustSpans(expr, s string) []span {
	p, err := newRegexPattern(expr)
	if err != nil {
		panic(err)
	}
	spans, _ := collectSpans(p, s)
	return spans
}

func TestHFParseErrors(t *testing.T) {
	good := func(edit func(m jmap)) []byte {
		var doc jmap
		json.Unmarshal(docWordPiece(), &doc)
		edit(doc)
		return mustJSON(doc)
	}
	model := func(doc jmap) jmap { return doc["model"].(map[string]any) }
	for _, c := range []struct {
		name string
		data []byte
		want string // in the error message
	}{
		{"not json", []byte("{oops"), "tokenizer.json"},
		{"array", []byte(`[1, 2]`), "tokenizer.json"},
		{"version", good(func(d jmap) { d["version"] = "2.0" }), "version"},
		{"no model", good(func(d jmap) { delete(d, "model") }), "model is missing"},
		{"model type", good(func(d jmap) { model(d)["type"] = "Magic" }), `unknown model type "Magic"`},
		{"untagged", good(func(d jmap) { delete(model(d), "unk_token") }), "fit no model"},
		{"vocab", good(func(d jmap) { model(d)["vocab"] = []int{1} }), "vocab"},
		{"negative id", good(func(d jmap) { model(d)["vocab"] = map[string]int{"a": -1} }), `"a" has id -1`},
		{"huge id", good(func(d jmap) { model(d)["vocab"] = map[string]int{"a": 1 << 30} }), "outside"},
		{"normalizer", good(func(d jmap) { d["normalizer"] = jmap{"type": "Nope"} }), `normalizer: unknown normalizer type "Nope"`},
		{"normalizer field", good(func(d jmap) { d["normalizer"] = jmap{"type": "BertNormalizer", "lowercase": "yes"} }), "lowercase is not a boolean"},
		{"no type", good(func(d jmap) { d["decoder"] = jmap{"prefix": "##"} }), `decoder: no "type"`},
		{"sequence item", good(func(d jmap) {
			d["pre_tokenizer"] = jmap{"type": "Sequence", "pretokenizers": []jmap{{"type": "Whitespace"}, {"type": "UnicodeScripts"}}}
		}), `pre_tokenizer.pretokenizers[1]: unsupported pre_tokenizer type "UnicodeScripts"`},
		{"regex", good(func(d jmap) {
			d["pre_tokenizer"] = jmap{"type": "Split", "pattern": jmap{"Regex": "(a"}, "behavior": "Isolated", "invert": false}
		}), "regex"},
		{"behavior", good(func(d jmap) {
			d["pre_tokenizer"] = jmap{"type": "Split", "pattern": jmap{"String": "a"}, "behavior": "Sideways"}
		}), `behavior "Sideways"`},
		{"pattern", good(func(d jmap) {
			d["pre_tokenizer"] = jmap{"type": "Split", "pattern": jmap{"Glob": "a"}, "behavior": "Isolated"}
		}), "pattern is not"},
		{"template", good(func(d jmap) {
			d["post_processor"] = jmap{"type": "TemplateProcessing", "single": "[X] $A", "special_tokens": jmap{}}
		}), `special token "[X]"`},
		{"template id", good(func(d jmap) {
			d["post_processor"] = jmap{"type": "BertProcessing", "sep": []any{"[SEP]", 99999}, "cls": []any{"[CLS]", 2}}
		}), "outside the vocabulary"},
		{"metaspace", good(func(d jmap) { d["decoder"] = jmap{"type": "Metaspace", "replacement": "ab"} }), "not one character"},
		{"precompiled", good(func(d jmap) { d["normalizer"] = jmap{"type": "Precompiled", "precompiled_charsmap": "!!"} }), "base64"},
		{"precompiled trie", good(func(d jmap) {
			d["normalizer"] = jmap{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 0, 0})}
		}), "trie"},
		{"added", good(func(d jmap) { d["added_tokens"] = "x" }), "added_tokens is not a list"},
		{"added content", good(func(d jmap) { d["added_tokens"] = []jmap{{"id": 1}} }), "added_tokens[0]: content is missing"},
		{"bpe merges", []byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}`), `the merge "ab" is not in the vocabulary`},
		{"bpe merge token", []byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "z"]]}}`), `"z" is not in the vocabulary`},
		{"bpe merge line", []byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`), "merges[0]"},
		{"bpe dropout", []byte(`{"model": {"type": "BPE", "dropout": 2, "vocab": {}, "merges": []}}`), "dropout"},
		{"unigram unk", []byte(`{"model": {"type": "Unigram", "unk_id": 5, "vocab": [["a", -1]]}}`), "unk_id 5"},
		{"unigram pair", []byte(`{"model": {"type": "Unigram", "vocab": [["a"]]}}`), "vocab[0]"},
		{"unigram score", []byte(`{"model": {"type": "Unigram", "vocab": [["a", "x"]]}}`), "score"},
	} {
		_, err := ParseHF(c.data)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: error %v does not wrap ErrFormat", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
	}
	// Parse routes a JSON object here.
	if tok, kind, err := Parse(docWordPiece()); err != nil || kind != "huggingface" || tok.VocabSize() != 15 {
		t.Errorf("Parse: %v %q", err, kind)
	}
}

// TestHFUnknownTokenErrors checks the encode errors of models whose
// unknown token is missing.
func TestHFUnknownTokenErrors(t *testing.T) {
	for _, doc := range []string{
		`{"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}, "merges": []}}`,
		`{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}`,
		`{"model": {"type": "WordLevel", "unk_token": "<unk>", "vocab": {"a": 0}}}`,
		`{"model": {"type": "Unigram", "vocab": [["a", -1]]}}`,
	} {
		tok := parseSmall(t, []byte(doc))
		if ids, err := tok.Encode("a", false); err != nil || !slices.Equal(ids, []int{0}) {
			t.Errorf("%s: a → %v %v", doc, ids, err)
		}
		if _, err := tok.Encode("b", false); err == nil {
			t.Errorf("%s: no error for an unknown char", doc)
		}
	}
}

// TestHFConcurrent encodes from several goroutines at once (the caches
// are shared).
func TestHFConcurrent(t *testing.T) {
	tok := parseSmall(t, docByteBPE())
	texts := []string{"the cat sat", "in the hat", "at the end", "théâtre 日本"}
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i], _ = tok.Encode(s, true)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 200 {
				i := (g + k) % len(texts)
				if ids, _ := tok.Encode(texts[i], true); !slices.Equal(ids, want[i]) {
					t.Errorf("%q: %v, want %v", texts[i], ids, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestHFLongText checks that encoding is not quadratic in the text
// length: 1 MiB without a space (one BPE word, one WordPiece word, one
// Unigram lattice) for each real tokenizer, which a quadratic encoder
// would take hours on.
func TestHFLongText(t *testing.T) {
	if testing.Short() {
		t.Skip("long texts")
	}
	text := strings.Repeat("abcdefghij0123456789", 1<<20/20)
	for _, name := range hfTokenizers {
		tok := loadHFShared(t, name)
		ids, err := tok.Encode(text, false)
		if err != nil || len(ids) == 0 {
			t.Errorf("%s: %d ids, %v", name, len(ids), err)
		}
	}
}

// fuzzDocs are small tokenizer.json documents covering every component,
// the seeds of FuzzParseHF (small, so that the fuzzer's mutations and
// minimizations stay fast).
var fuzzDocs = []string{
	`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<unk>":3,"<0x61>":4},"merges":[["a","b"]],"unk_token":"<unk>","byte_fallback":true,"fuse_unk":true},
	  "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
	  "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}}`,
	`{"version":"1.0","added_tokens":[{"id":4,"content":"<s>","special":true,"normalized":false}],"model":{"vocab":{"a":0,"b":1,"ab":2,"Ġ":3},"merges":["a b"]},
	  "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true},"decoder":{"type":"ByteLevel"},"post_processor":{"type":"RobertaProcessing","sep":["<s>",4],"cls":["<s>",4]}}`,
	`{"model":{"unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":5,"vocab":{"[UNK]":0,"a":1,"##b":2}},
	  "normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
	  "post_processor":{"type":"TemplateProcessing","single":"[UNK] $A","special_tokens":{"[UNK]":{"id":"[UNK]","ids":[0],"tokens":["[UNK]"]}}}}`,
	`{"model":{"type":"Unigram","unk_id":0,"byte_fallback":true,"vocab":[["<unk>",0],["▁",-1],["a",-2],["<0x62>",-5]]},"normalizer":{"type":"NFKC"},
	  "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Metaspace","replacement":"▁","prepend_scheme":"first"}]},
	  "decoder":{"type":"Metaspace","replacement":"▁","add_prefix_space":true}}`,
	`{"model":{"type":"WordLevel","unk_token":"?","vocab":{"?":0,"a":1}},"normalizer":{"type":"Lowercase"},
	  "pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)|\\w+"},"behavior":"MergedWithNext","invert":true},
	  "added_tokens":[{"id":2,"content":"<X>","lstrip":true,"rstrip":true,"single_word":true,"normalized":true}]}`,
	`{"model":{"type":"WordLevel","unk_token":"?","vocab":{"?":0}},
	  "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"Punctuation"},{"type":"CharDelimiterSplit","delimiter":"x"},{"type":"FixedLength","length":3},{"type":"Whitespace"}]},
	  "normalizer":{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"},{"type":"Strip"},{"type":"Nmt"},{"type":"ByteLevel"}]},"decoder":{"type":"CTC"}}`,
	`{"model":{"type":"BPE","vocab":{"a</w>":0,"a":1,"##a":2},"merges":[],"end_of_word_suffix":"</w>","continuing_subword_prefix":"##","ignore_merges":true},
	  "decoder":{"type":"Sequence","decoders":[{"type":"BPEDecoder","suffix":"</w>"},{"type":"Replace","pattern":{"Regex":"a+"},"content":"b"}]},
	  "post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"BertProcessing","sep":["a",0],"cls":["a",1]}]}}`,
}

// FuzzParseHF feeds arbitrary bytes to the loader: no input may panic,
// errors wrap ErrFormat, and a document that loads encodes a short text
// to ids below VocabSize and decodes them.
func FuzzParseHF(f *testing.F) {
	for _, d := range fuzzDocs {
		f.Add([]byte(d))
	}
	f.Add([]byte(`{"normalizer":{"type":"Precompiled","precompiled_charsmap":"` + base64.StdEncoding.EncodeToString(testCharsmap()) + `"},` +
		`"model":{"vocab":[["a",0]],"unk_id":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8<<10 {
			return // keeps the corpus small; big documents are tested above
		}
		tok, err := ParseHF(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		ids, err := tok.Encode("ab a\u00e9 12!<s>", true)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d outside VocabSize %d", id, tok.VocabSize())
			}
		}
		tok.Decode(ids, false)
		tok.Decode([]int{-1, 0, 1, 1 << 30}, true)
	})
}

// FuzzHFEncode encodes arbitrary text with each small tokenizer: no
// panic, every id below VocabSize, and a round trip where the pipeline
// keeps the text.
func FuzzHFEncode(f *testing.F) {
	toks := make([]*HF, len(smallDocs))
	for i, d := range smallDocs {
		toks[i] = parseSmall(f, d.doc())
	}
	for _, s := range []string{"", " ", "the cat  sat\n", "Héllo, 世界! 123", "<s>ab </s>", "x\u2003\u2003y", "\x00\xff"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, text string, which uint8) {
		if len(text) > 256 {
			return // long texts: TestHFLongText; short inputs keep minimizing fast
		}
		for i, tok := range toks {
			if which != 0 && int(which)%len(toks) != i {
				continue
			}
			ids, err := tok.Encode(text, which%2 == 0)
			if err != nil {
				t.Fatalf("%s: %v", smallDocs[i].name, err)
			}
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("%s: id %d outside VocabSize %d", smallDocs[i].name, id, tok.VocabSize())
				}
			}
			got := tok.Decode(ids, false)
			tok.Decode(ids, true)
			if !utf8.ValidString(text) {
				continue
			}
			switch smallDocs[i].name {
			case "bytebpe":
				if want := text; which%2 == 0 {
					if got != want+"<|endoftext|>" {
						t.Fatalf("bytebpe: %q decodes to %q", text, got)
					}
				} else if got != want {
					t.Fatalf("bytebpe: %q decodes to %q", text, got)
				}
			case "spbpe":
				// ▁ in the text reads as a space; the special tokens' texts
				// are special.
				if got := tok.Decode(ids, true); !strings.ContainsAny(text, "▁<") && got != text {
					t.Fatalf("spbpe: %q decodes to %q", text, got)
				}
			}
		}
	})
}

// FuzzHFMatchers checks the fast paths against their references on
// arbitrary text: the GPT-2 and Llama 3 tilers against regexp2, the
// ASCII paths of BertNormalizer and Precompiled against the general ones.
func FuzzHFMatchers(f *testing.F) {
	slow := map[string]*regexPattern{}
	for _, expr := range []string{gpt2Regex, llama3Regex} {
		re, err := compileRegexp2(expr)
		if err != nil {
			f.Fatal(err)
		}
		slow[expr] = re
	}
	pc, err := parsePrecompiled(testCharsmap())
	if err != nil {
		f.Fatal(err)
	}
	bert := bertNormalizer{cleanText: true, chinese: true, stripAccents: true, lowercase: true}
	for _, s := range []string{"", "I'm  here\n\n", "x\u2003\u2003y 12345", "'S 'll ſ", "a\r\nb\x07\vc", "Ａe\u0301ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 256 {
			return
		}
		for expr, re := range slow {
			fast, _ := newRegexPattern(expr)
			a, _ := collectSpans(fast, s)
			b, err := collectSpans(re, s)
			if err != nil {
				t.Skip(err)
			}
			if !slices.Equal(a, b) {
				t.Fatalf("%.12s… on %q: tiler %q, regexp2 %q", expr, s, spanStrings(s, a), spanStrings(s, b))
			}
		}
		if got, want := string(bert.appendASCII(nil, asciiOnly(s))), bert.normalizeRun(asciiOnly(s)); got != want {
			t.Fatalf("BertNormalizer on %q: ASCII path %q, general %q", asciiOnly(s), got, want)
		}
		if got, _ := pc.normalize(s); got != precompiledRef(pc, s) {
			t.Fatalf("Precompiled on %q: %q, reference %q", s, got, precompiledRef(pc, s))
		}
	})
}

// asciiOnly keeps the ASCII bytes of s.
func asciiOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf {
			return r
		}
		return -1
	}, s)
}

func ExampleParseHF() {
	tok, err := ParseHF(docWordPiece())
	if err != nil {
		panic(err)
	}
	ids, _ := tok.Encode("Hello, world!", true)
	fmt.Println(ids, tok.Decode(ids, true))
	// Output: [2 10 11 14 12 3] hello, world!
}

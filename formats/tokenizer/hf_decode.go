package tokenizer

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// A decoder turns the tokens of ids back into text (a tokenizer.json
// "decoder"): each step maps the list of token strings to a new list, and
// the last list is concatenated (the Rust crate's decode_chain).
type decoder interface {
	decodeChain(tokens []string) ([]string, error)
}

// parseDecoder reads a "decoder" object (nil for JSON null).
func parseDecoder(o *jobj) (decoder, error) {
	if o == nil {
		return nil, nil
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := parseSequence(o, "decoders", parseDecoder)
		if err != nil {
			return nil, err
		}
		return sequenceDecoder(seq), nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "WordPiece":
		var d wordPieceDecoder
		def := "##"
		if d.prefix, err = o.str("prefix", &def); err != nil {
			return nil, err
		}
		if d.cleanup, err = o.boolean("cleanup", true); err != nil {
			return nil, err
		}
		return d, nil
	case "Metaspace":
		return parseMetaspace(o)
	case "Replace":
		p, content, err := parseReplace(o)
		if err != nil {
			return nil, err
		}
		return replaceDecoder{p, content}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		var d stripDecoder
		if d.content, err = o.char("content", ' '); err != nil {
			return nil, err
		}
		if d.start, err = o.count("start", 0); err != nil {
			return nil, err
		}
		if d.stop, err = o.count("stop", 0); err != nil {
			return nil, err
		}
		return d, nil
	case "BPEDecoder":
		def := "</w>"
		suffix, err := o.str("suffix", &def)
		if err != nil {
			return nil, err
		}
		return bpeDecoder(suffix), nil
	case "CTC":
		var d ctcDecoder
		def := "<pad>"
		if d.pad, err = o.str("pad_token", &def); err != nil {
			return nil, err
		}
		def = "|"
		if d.delimiter, err = o.str("word_delimiter_token", &def); err != nil {
			return nil, err
		}
		if d.cleanup, err = o.boolean("cleanup", true); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, o.errorf("unknown decoder type %q", typ)
}

type sequenceDecoder []decoder

func (seq sequenceDecoder) decodeChain(tokens []string) ([]string, error) {
	for _, d := range seq {
		var err error
		if tokens, err = d.decodeChain(tokens); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// byteLevelDecoder is the ByteLevel decoder: each token's byte-level
// chars back to bytes (a token with another char stays as its UTF-8),
// all tokens as one string, invalid UTF-8 replaced as Rust's
// String::from_utf8_lossy does.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) ([]string, error) {
	var b []byte
	for _, t := range tokens {
		n := len(b)
		ok := true
		for _, r := range t {
			if r >= rune(len(byteLevelBytes)) || byteLevelBytes[r] < 0 {
				ok = false
				break
			}
			b = append(b, byte(byteLevelBytes[r]))
		}
		if !ok {
			b = append(b[:n], t...)
		}
	}
	return []string{lossyUTF8(b)}, nil
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal invalid
// subpart (a truncated sequence, or one bad byte) becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			out.Write(b[i : i+w])
			i += w
			continue
		}
		out.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return out.String()
}

// maximalSubpart returns the length of the longest prefix of b (which
// does not start with a valid UTF-8 sequence) that starts one: at least 1.
func maximalSubpart(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	need := 0
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if x := b[n]; k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}

// stringToUTF8 returns the lossy conversion of a Go string that may hold
// invalid UTF-8.
func stringToUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return lossyUTF8([]byte(s))
}

// wordPieceDecoder is the WordPiece decoder: a token after the first
// loses its prefix ("##") or gets a space before it; cleanup then undoes
// the spaces BERT puts around punctuation and contractions.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (d wordPieceDecoder) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i > 0 {
			if rest, ok := strings.CutPrefix(t, d.prefix); ok {
				t = rest
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = wordPieceCleanup(t)
		}
		out[i] = t
	}
	return out, nil
}

// wordPieceCleanup is tokenizers' decoders::wordpiece::cleanup.
func wordPieceCleanup(s string) string {
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
		{" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// decodeChain is the Metaspace decoder: the replacement becomes a space,
// except in the first token (unless the prepend scheme is never), where
// it is dropped.
func (m *metaspace) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i == 0 && m.prepend != prependNever {
			out[i] = strings.ReplaceAll(t, m.repl, "")
		} else {
			out[i] = strings.ReplaceAll(t, m.repl, " ")
		}
	}
	return out, nil
}

// replaceDecoder is the Replace decoder, per token.
type replaceDecoder struct {
	pattern pattern
	content string
}

func (d replaceDecoder) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var err error
		if out[i], err = replaceAll(d.pattern, t, d.content); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// byteFallbackDecoder is ByteFallback: runs of <0xNN> tokens become the
// string of their bytes, or one U+FFFD per byte if that is not UTF-8.
type byteFallbackDecoder struct{}

// fallbackByte parses a byte token "<0xNN>" as Rust's u8::from_str_radix
// does its two chars (which may be "+N").
func fallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	hex := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	if t[3] == '+' {
		return hex(t[4])
	}
	hi, ok1 := hex(t[3])
	lo, ok2 := hex(t[4])
	return hi<<4 | lo, ok1 && ok2
}

func (byteFallbackDecoder) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := fallbackByte(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out, nil
}

// fuseDecoder is Fuse: all tokens as one.
type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) ([]string, error) {
	return []string{strings.Join(tokens, "")}, nil
}

// stripDecoder is Strip: up to start leading and stop trailing content
// chars removed from each token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (d stripDecoder) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		for n := 0; n < d.start && strings.HasPrefix(t, string(d.content)); n++ {
			t = t[utf8.RuneLen(d.content):]
		}
		for n := 0; n < d.stop && strings.HasSuffix(t, string(d.content)); n++ {
			t = t[:len(t)-utf8.RuneLen(d.content)]
		}
		out[i] = t
	}
	return out, nil
}

// bpeDecoder is BPEDecoder: the end-of-word suffix becomes a space, or
// nothing in the last token.
type bpeDecoder string

func (suffix bpeDecoder) decodeChain(tokens []string) ([]string, error) {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, string(suffix), rep)
	}
	return out, nil
}

// ctcDecoder is CTC: repeated tokens collapsed, the pad token removed,
// with cleanup the word delimiter as a space; empty tokens dropped.
type ctcDecoder struct {
	pad, delimiter string
	cleanup        bool
}

func (d ctcDecoder) decodeChain(tokens []string) ([]string, error) {
	var out []string
	for i, t := range tokens {
		if i > 0 && t == tokens[i-1] {
			continue
		}
		t = strings.ReplaceAll(t, d.pad, "")
		if d.cleanup {
			t = strings.ReplaceAll(wordPieceCleanup(t), d.delimiter, " ")
		}
		if t != "" {
			out = append(out, t)
		}
	}
	return out, nil
}

// A postProcessor adds the special tokens of a sequence (a tokenizer.json
// "post_processor"); only single sequences are encoded here.
type postProcessor interface {
	process(ids []int, addSpecial bool) []int
	// bounds returns the special ids before and after the sequence.
	bounds() (before, after []int)
	// specialIDs returns all the special ids it adds.
	specialIDs() []int
}

// parsePostProcessor reads a "post_processor" object (nil for JSON null).
func parsePostProcessor(o *jobj) (postProcessor, error) {
	if o == nil {
		return nil, nil
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "TemplateProcessing":
		return parseTemplate(o)
	case "RobertaProcessing", "BertProcessing":
		cls, err := tokenPair(o, "cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenPair(o, "sep")
		if err != nil {
			return nil, err
		}
		return template{{ids: []int{cls}}, {seq: true}, {ids: []int{sep}}}, nil
	case "ByteLevel":
		return identityProcessor{}, nil
	case "Sequence":
		seq, err := parseSequence(o, "processors", parsePostProcessor)
		if err != nil {
			return nil, err
		}
		return sequenceProcessor(seq), nil
	}
	return nil, o.errorf("unknown post_processor type %q", typ)
}

// tokenPair reads a [token, id] pair ("cls", "sep") and returns the id.
func tokenPair(o *jobj, key string) (int, error) {
	var pair []json.RawMessage
	if err := o.decode(key, &pair, "a [token, id] pair"); err != nil {
		return 0, err
	}
	var name string
	var id int
	if len(pair) != 2 || json.Unmarshal(pair[0], &name) != nil || json.Unmarshal(pair[1], &id) != nil || id < 0 || id > maxHFID {
		return 0, o.errorf("%s is not a [token, id] pair", key)
	}
	return id, nil
}

// template is the single-sequence template of TemplateProcessing (and
// of RobertaProcessing, BertProcessing: cls $A sep): special ids and the
// sequence ($A) in order. As in the Rust crate, the template applies
// without addSpecial too (special ids left out), so a template without
// $A drops the sequence and one with $A twice repeats it.
type template []templateItem

// templateItem is $A (seq) or the ids of a special token.
type templateItem struct {
	seq bool
	ids []int
}

func (t template) process(ids []int, addSpecial bool) []int {
	var out []int
	for _, it := range t {
		if it.seq {
			out = append(out, ids...)
		} else if addSpecial {
			out = append(out, it.ids...)
		}
	}
	return out
}

func (t template) specialIDs() []int {
	var ids []int
	for _, it := range t {
		ids = append(ids, it.ids...)
	}
	return ids
}

func (t template) bounds() (before, after []int) {
	first, last := len(t), len(t)
	for i, it := range t {
		if it.seq {
			if first == len(t) {
				first = i
			}
			last = i
		}
	}
	for i, it := range t {
		if i < first {
			before = append(before, it.ids...)
		} else if i > last {
			after = append(after, it.ids...)
		}
	}
	return before, after
}

// parseTemplate reads TemplateProcessing's "single" template (a list of
// {"Sequence": ...} / {"SpecialToken": ...} pieces, or of strings such
// as "[CLS]" and "$A:0", or one space-separated string) and the ids of
// its special tokens. $B does not occur in a single sequence and adds
// nothing.
func parseTemplate(o *jobj) (template, error) {
	var specials map[string]struct {
		IDs []int `json:"ids"`
	}
	if _, ok := o.get("special_tokens"); ok {
		if err := o.decode("special_tokens", &specials, "an object of special tokens"); err != nil {
			return nil, err
		}
	}
	raw, ok := o.get("single")
	if !ok {
		return nil, o.errorf("single is missing")
	}
	var items []json.RawMessage
	var whole string
	if json.Unmarshal(raw, &whole) == nil {
		for _, f := range strings.Split(whole, " ") {
			b, _ := json.Marshal(f)
			items = append(items, b)
		}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return nil, o.errorf("single is not a template")
	}
	var t template
	for i, item := range items {
		special, seq := "", ""
		var s string
		if json.Unmarshal(item, &s) == nil {
			name, _, _ := strings.Cut(s, ":")
			if strings.HasPrefix(name, "$") {
				seq = name[1:]
			} else {
				special = name
			}
		} else {
			var p struct {
				Sequence *struct {
					ID string `json:"id"`
				}
				SpecialToken *struct {
					ID string `json:"id"`
				}
			}
			if err := json.Unmarshal(item, &p); err != nil || (p.Sequence == nil) == (p.SpecialToken == nil) {
				return nil, o.errorf("single[%d] is not a Sequence or SpecialToken piece", i)
			}
			if p.Sequence != nil {
				seq = p.Sequence.ID
			} else {
				special = p.SpecialToken.ID
			}
		}
		if special == "" {
			if seq != "B" && seq != "b" {
				t = append(t, templateItem{seq: true})
			}
			continue
		}
		st, ok := specials[special]
		if !ok {
			return nil, o.errorf("single uses the special token %q, which special_tokens does not define", special)
		}
		for _, id := range st.IDs {
			if id < 0 || id > maxHFID {
				return nil, o.errorf("special token %q has id %d", special, id)
			}
		}
		t = append(t, templateItem{ids: st.IDs})
	}
	return t, nil
}

// identityProcessor is the ByteLevel post-processor, which only trims
// offsets.
type identityProcessor struct{}

func (identityProcessor) process(ids []int, _ bool) []int { return ids }
func (identityProcessor) bounds() (before, after []int)   { return nil, nil }
func (identityProcessor) specialIDs() []int               { return nil }

// sequenceProcessor applies its processors in turn.
type sequenceProcessor []postProcessor

func (seq sequenceProcessor) process(ids []int, addSpecial bool) []int {
	for _, p := range seq {
		ids = p.process(ids, addSpecial)
	}
	return ids
}

func (seq sequenceProcessor) specialIDs() []int {
	var ids []int
	for _, p := range seq {
		ids = append(ids, p.specialIDs()...)
	}
	return ids
}

func (seq sequenceProcessor) bounds() (before, after []int) {
	for _, p := range seq {
		b, a := p.bounds()
		before = append(append([]int(nil), b...), before...)
		after = append(after, a...)
	}
	return before, after
}

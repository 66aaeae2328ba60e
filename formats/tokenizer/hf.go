package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

func init() {
	hfLoader = func(data []byte) (Tokenizer, error) { return ParseHF(data) }
}

// HF is a Hugging Face tokenizer.json: the pipeline of the Rust
// tokenizers crate (the reference the tests compare against), for single
// sequences:
//
//  1. added tokens are split out of the raw text (the longest at the
//     leftmost position; lstrip, rstrip and single_word honoured), first
//     those with normalized false, then, in the normalized rest, those
//     with normalized true;
//  2. the normalizer rewrites the rest of the text;
//  3. the pre-tokenizer splits it into pieces;
//  4. the model (BPE, WordPiece, WordLevel or Unigram) encodes each piece;
//  5. the post-processor adds special tokens (with addSpecial).
//
// Decode maps ids to tokens (added tokens first), leaves special ones out
// with skipSpecial, and runs the decoder. Truncation and padding are not
// applied. An HF is safe for concurrent use.
type HF struct {
	model      hfModel
	normalizer normalizer
	pre        preTokenizer
	post       postProcessor
	decoder    decoder
	added      addedVocab
	vocabSize  int
	special    map[string]int // role -> id
}

// ParseHF reads a tokenizer.json. It supports the models BPE (with
// byte_fallback, fuse_unk, continuing_subword_prefix, end_of_word_suffix,
// ignore_merges; merges as "a b" strings or ["a", "b"] pairs), WordPiece,
// WordLevel and Unigram (untagged models have their type inferred); the
// normalizers Sequence, BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase,
// Strip, StripAccents, Replace, Prepend, Nmt, ByteLevel and Precompiled;
// the pre-tokenizers Sequence, ByteLevel, Split, Whitespace,
// WhitespaceSplit, BertPreTokenizer, Metaspace, Punctuation, Digits,
// CharDelimiterSplit and FixedLength (not UnicodeScripts); the
// post-processors TemplateProcessing, RobertaProcessing, BertProcessing,
// ByteLevel and Sequence; the decoders ByteLevel, WordPiece, Metaspace,
// Replace, ByteFallback, Fuse, Strip, BPEDecoder, CTC and Sequence.
//
// As in the Rust crate, the "id" of an added token is checked but not
// used: a token in the model's vocabulary has its id there, the others
// get the ids after the vocabulary in order. BPE dropout is not applied
// (encoding is deterministic). Ids must be below 2^24. A malformed or
// unsupported file is an error wrapping ErrFormat that names the part at
// fault (as "pre_tokenizer.pretokenizers[1]: ..."); ParseHF never panics.
func ParseHF(data []byte) (*HF, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		msg := "not a JSON object"
		if err != nil {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%w: tokenizer.json: %s", ErrFormat, msg)
	}
	doc := &jobj{path: "tokenizer.json", m: top}
	if v, err := doc.optStr("version"); err != nil {
		return nil, err
	} else if v != nil && *v != "1.0" {
		return nil, doc.errorf("version %q is not 1.0", *v)
	}
	t := &HF{}
	objs := map[string]*jobj{}
	for _, key := range []string{"model", "normalizer", "pre_tokenizer", "post_processor", "decoder"} {
		o, err := newObj(key, top[key])
		if err != nil {
			return nil, err
		}
		objs[key] = o
	}
	var err error
	if t.model, err = parseModel(objs["model"]); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(objs["normalizer"]); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(objs["pre_tokenizer"]); err != nil {
		return nil, err
	}
	if t.post, err = parsePostProcessor(objs["post_processor"]); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(objs["decoder"]); err != nil {
		return nil, err
	}
	if err := t.added.build(doc, t.model, t.normalizer); err != nil {
		return nil, err
	}
	t.vocabSize = max(t.model.maxID(), t.added.maxID) + 1
	if t.post != nil {
		for _, id := range t.post.specialIDs() {
			if id >= t.vocabSize {
				return nil, fmt.Errorf("%w: post_processor: special token id %d is outside the vocabulary of %d", ErrFormat, id, t.vocabSize)
			}
		}
	}
	t.special = t.findSpecial(doc)
	return t, nil
}

// VocabSize implements Tokenizer: the largest id of the model and the
// added tokens, plus one.
func (t *HF) VocabSize() int { return t.vocabSize }

// Special implements Tokenizer. tokenizer.json has no roles, so they are
// inferred: unk is the model's unknown token (else a special added token
// named <unk> or [UNK]); bos and eos are the first and the last special
// id the post-processor puts around the text (else the first special
// added token named <s>, <|begin_of_text|>, <bos> or <|startoftext|>,
// and </s>, <|endoftext|>, <|end_of_text|> or <eos>); pad is padding's
// pad_id, else a special added token named <pad>, [PAD], <|pad|> or
// <|padding|>.
func (t *HF) Special(role string) (int, bool) {
	id, ok := t.special[role]
	return id, ok
}

func (t *HF) findSpecial(doc *jobj) map[string]int {
	sp := map[string]int{}
	byName := func(role string, names ...string) {
		if _, ok := sp[role]; ok {
			return
		}
		for _, n := range names {
			if id, ok := t.added.byContent[n]; ok && t.added.special[n] {
				sp[role] = id
				return
			}
		}
	}
	switch m := t.model.(type) {
	case *bpe:
		if m.unkID >= 0 {
			sp["unk"] = m.unkID
		}
	case *wordPiece:
		if id, ok := m.ids[m.unk]; ok {
			sp["unk"] = id
		}
	case *wordLevel:
		if id, ok := m.ids[m.unk]; ok {
			sp["unk"] = id
		}
	case *unigram:
		if m.unkID >= 0 {
			sp["unk"] = m.unkID
		}
	}
	if t.post != nil {
		before, after := t.post.bounds()
		if len(before) > 0 {
			sp["bos"] = before[0]
		}
		if len(after) > 0 {
			sp["eos"] = after[len(after)-1]
		}
	}
	byName("unk", "<unk>", "[UNK]")
	byName("bos", "<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>")
	byName("eos", "</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>")
	if pad, _ := doc.obj("padding"); pad != nil {
		if id, err := pad.count("pad_id", -1); err == nil && id >= 0 && id < t.vocabSize {
			sp["pad"] = id
		}
	}
	byName("pad", "<pad>", "[PAD]", "<|pad|>", "<|padding|>")
	return sp
}

// Encode implements Tokenizer. Invalid UTF-8 in text is first replaced
// as Rust's String::from_utf8_lossy does. It fails only when the model
// needs an unknown token it does not have (or on a regexp2 error).
func (t *HF) Encode(text string, addSpecial bool) ([]int, error) {
	text = stringToUTF8(text)
	var ids []int
	var segs, subs []addedSplit
	segs = t.added.split(segs, text, &t.added.raw)
	for _, seg := range segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		if seg.start >= seg.end {
			continue
		}
		s := text[seg.start:seg.end]
		if t.normalizer != nil {
			var err error
			if s, err = t.normalizer.normalize(s); err != nil {
				return nil, err
			}
			s = stringToUTF8(s)
		}
		subs = t.added.split(subs[:0], s, &t.added.norm)
		for _, sub := range subs {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			if sub.start >= sub.end {
				continue
			}
			var err error
			p := piece{s: s[sub.start:sub.end], first: seg.start == 0 && sub.start == 0}
			if ids, err = t.encodePiece(ids, p); err != nil {
				return nil, err
			}
		}
	}
	if t.post != nil {
		ids = t.post.process(ids, addSpecial)
	}
	return ids, nil
}

// encodePiece pre-tokenizes p and appends the model's ids of the pieces.
func (t *HF) encodePiece(ids []int, p piece) ([]int, error) {
	if t.pre == nil {
		return t.model.tokenize(ids, p.s)
	}
	bl, _ := t.model.(byteLevelModel)
	err := t.pre.split(p, func(q piece) error {
		var err error
		if q.byteLevel && bl != nil {
			ids, err = bl.tokenizeByteLevel(ids, q.s)
		} else {
			ids, err = t.model.tokenize(ids, q.text())
		}
		return err
	})
	return ids, err
}

// Decode implements Tokenizer: the token of each id (an added token's
// content, in its normalized form if it is normalized; ids outside the
// vocabulary are dropped), special tokens left out with skipSpecial,
// through the decoder; without a decoder, the tokens joined by spaces. A
// decoder error (only a regexp2 failure can cause one) gives the tokens
// joined.
func (t *HF) Decode(ids []int, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.added.token(id)
		if !ok {
			tok, ok = t.model.token(id)
		}
		if !ok || skipSpecial && t.added.special[tok] {
			continue
		}
		tokens = append(tokens, tok)
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	out, err := t.decoder.decodeChain(tokens)
	if err != nil {
		return strings.Join(tokens, "")
	}
	return strings.Join(out, "")
}

// addedToken is an entry of "added_tokens".
type addedToken struct {
	content                    string
	singleWord, lstrip, rstrip bool
	normalized, special        bool
}

// addedVocab is the Rust crate's AddedVocabulary.
type addedVocab struct {
	byContent  map[string]int
	byID       map[int]addedToken
	special    map[string]bool // contents of the special tokens
	normalForm map[int]string  // normalized content, where it differs
	raw, norm  tokenMatcher    // normalized false / true tokens
	maxID      int
}

// build reads "added_tokens" and assigns ids as AddedVocabulary's
// add_tokens does.
func (a *addedVocab) build(doc *jobj, model hfModel, n normalizer) error {
	a.byContent = map[string]int{}
	a.byID = map[int]addedToken{}
	a.special = map[string]bool{}
	a.normalForm = map[int]string{}
	a.maxID = -1
	list := []*jobj{}
	if _, ok := doc.get("added_tokens"); ok {
		var err error
		if list, err = doc.objects("added_tokens"); err != nil {
			return err
		}
	}
	next := model.size()
	for _, o := range list {
		if o == nil {
			continue
		}
		var tok addedToken
		var err error
		if tok.content, err = o.str("content", nil); err != nil {
			return err
		}
		for _, f := range []struct {
			key string
			v   *bool
		}{{"single_word", &tok.singleWord}, {"lstrip", &tok.lstrip}, {"rstrip", &tok.rstrip}, {"special", &tok.special}} {
			if *f.v, err = o.boolean(f.key, false); err != nil {
				return err
			}
		}
		if tok.normalized, err = o.boolean("normalized", !tok.special); err != nil {
			return err
		}
		if _, err := o.count("id", 0); err != nil {
			return err
		}
		if tok.content == "" {
			continue
		}
		if id, ok := a.byContent[tok.content]; ok && a.byID[id] == tok {
			continue
		}
		id, ok := a.byContent[tok.content]
		if !ok {
			id, ok = model.id(tok.content)
		}
		if !ok {
			if next > maxHFID {
				return o.errorf("added token %q would get id %d, beyond %d", tok.content, next, maxHFID)
			}
			id, next = next, next+1
		}
		if tok.normalized && n != nil {
			s, err := n.normalize(tok.content)
			if err != nil {
				return o.errorf("normalizing %q: %v", tok.content, err)
			}
			if s != tok.content {
				a.normalForm[id] = s
			}
		}
		a.byContent[tok.content] = id
		if tok.special {
			a.special[tok.content] = true
		}
		a.byID[id] = tok
		a.maxID = max(a.maxID, id)
	}
	for id, tok := range a.byID {
		if tok.normalized {
			p := tok.content
			if s, ok := a.normalForm[id]; ok {
				p = s
			}
			a.norm.add(p, id, tok)
		} else {
			a.raw.add(tok.content, id, tok)
		}
	}
	return nil
}

// token returns the decoded form of an added token.
func (a *addedVocab) token(id int) (string, bool) {
	tok, ok := a.byID[id]
	if !ok {
		return "", false
	}
	if s, ok := a.normalForm[id]; ok {
		return s, true
	}
	return tok.content, true
}

// addedSplit is a part of a text: an added token (id >= 0) or text
// between them (id -1).
type addedSplit struct {
	start, end, id int
}

// tokenMatcher finds added tokens in text: a trie of their strings.
type tokenMatcher struct {
	trie byteTrie
	toks map[int]addedToken
}

func (m *tokenMatcher) add(s string, id int, tok addedToken) {
	if s == "" {
		return
	}
	if m.toks == nil {
		m.toks = map[int]addedToken{}
	}
	m.trie.insert(s, int32(id))
	m.toks[id] = tok
}

// split appends to dst the parts of s: the matches of m's tokens, the
// longest at the leftmost position first (MatchKind::LeftmostLongest),
// with AddedVocabulary's find_matches rules — single_word tokens only
// between non-word chars, lstrip and rstrip tokens taking the whitespace
// before or after them — and the text between them.
func (a *addedVocab) split(dst []addedSplit, s string, m *tokenMatcher) []addedSplit {
	if m.toks == nil || s == "" {
		return append(dst, addedSplit{0, len(s), -1})
	}
	startOffset := 0
	for i := 0; i < len(s); {
		if m.trie.root[s[i]] == 0 {
			i++
			continue
		}
		n, id := m.trie.longest(s[i:])
		if id < 0 {
			i++
			continue
		}
		start, stop := i, i+n
		i = stop // the trie search resumes after the match
		tok := m.toks[int(id)]
		if tok.singleWord {
			r, _ := utf8.DecodeLastRuneInString(s[:start])
			r2, _ := utf8.DecodeRuneInString(s[stop:])
			if start > 0 && isWordChar(r) || stop < len(s) && isWordChar(r2) {
				continue
			}
		}
		if tok.lstrip {
			start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), startOffset)
		}
		if tok.rstrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			dst = append(dst, addedSplit{startOffset, start, -1})
		}
		dst = append(dst, addedSplit{start, stop, int(id)})
		startOffset = stop
	}
	if startOffset != len(s) {
		dst = append(dst, addedSplit{startOffset, len(s), -1})
	}
	return dst
}

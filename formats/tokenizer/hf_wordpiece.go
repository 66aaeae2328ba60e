package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// wordPiece is the WordPiece model: greedy longest-match-first from the
// start of the word, later pieces looked up with the
// continuing_subword_prefix ("##"); a word with a part no piece matches,
// or longer than max_input_chars_per_word chars, is one unk_token.
type wordPiece struct {
	*vocabTable
	unk      string
	prefix   string
	maxChars int
	maxLen   int // the longest vocabulary entry, in bytes
}

func parseWordPiece(o *jobj) (*wordPiece, error) {
	v, err := parseVocabObject(o)
	if err != nil {
		return nil, err
	}
	m := &wordPiece{vocabTable: v}
	def := "[UNK]"
	if m.unk, err = o.str("unk_token", &def); err != nil {
		return nil, err
	}
	def = "##"
	if m.prefix, err = o.str("continuing_subword_prefix", &def); err != nil {
		return nil, err
	}
	if m.maxChars, err = o.count("max_input_chars_per_word", 100); err != nil {
		return nil, err
	}
	for tok := range v.ids {
		m.maxLen = max(m.maxLen, len(tok))
	}
	return m, nil
}

func (m *wordPiece) unkToken(dst []int) ([]int, error) {
	id, ok := m.ids[m.unk]
	if !ok {
		return dst, fmt.Errorf("tokenizer: the unk_token %q is not in the vocabulary", m.unk)
	}
	return append(dst, id), nil
}

func (m *wordPiece) tokenize(dst []int, s string) ([]int, error) {
	if utf8.RuneCountInString(s) > m.maxChars {
		return m.unkToken(dst)
	}
	n0 := len(dst)
	var buf []byte
	for start := 0; start < len(s); {
		// Entries are at most maxLen bytes, so the search can start there
		// (on a char boundary) instead of at the end of the word.
		end := len(s)
		limit := start + m.maxLen
		if start > 0 {
			limit -= len(m.prefix)
		}
		if end > limit {
			end = max(limit, start)
			for end > start && !utf8.RuneStart(s[end]) {
				end--
			}
		}
		found := -1
		for end > start {
			var ok bool
			var id int
			if start > 0 {
				buf = append(append(buf[:0], m.prefix...), s[start:end]...)
				id, ok = m.ids[string(buf)]
			} else {
				id, ok = m.ids[s[start:end]]
			}
			if ok {
				found = id
				break
			}
			_, w := utf8.DecodeLastRuneInString(s[start:end])
			end -= w
		}
		if found < 0 {
			return m.unkToken(dst[:n0])
		}
		dst = append(dst, found)
		start = end
	}
	return dst, nil
}

// wordLevel is the WordLevel model: the whole pre-token's id, or
// unk_token's.
type wordLevel struct {
	*vocabTable
	unk string
}

func parseWordLevel(o *jobj) (*wordLevel, error) {
	v, err := parseVocabObject(o)
	if err != nil {
		return nil, err
	}
	def := "<unk>"
	unk, err := o.str("unk_token", &def)
	if err != nil {
		return nil, err
	}
	return &wordLevel{vocabTable: v, unk: unk}, nil
}

func (m *wordLevel) tokenize(dst []int, s string) ([]int, error) {
	if id, ok := m.ids[s]; ok {
		return append(dst, id), nil
	}
	if id, ok := m.ids[m.unk]; ok {
		return append(dst, id), nil
	}
	return dst, fmt.Errorf("tokenizer: the unk_token %q is not in the vocabulary", m.unk)
}

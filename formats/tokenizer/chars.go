package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Chars is a character vocabulary: vocab.json, a JSON list of strings,
// the id of each its index. It has no special tokens.
type Chars struct {
	chars    []string
	ids      map[string]int
	maxRunes int
}

// ParseChars reads a character vocabulary (a JSON array of distinct,
// non-empty strings).
func ParseChars(data []byte) (*Chars, error) {
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%w: a character vocabulary is a JSON list of strings: %v", ErrFormat, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: the character vocabulary is empty", ErrFormat)
	}
	c := &Chars{chars: list, ids: make(map[string]int, len(list))}
	for i, s := range list {
		if s == "" {
			return nil, fmt.Errorf("%w: entry %d of the character vocabulary is empty", ErrFormat, i)
		}
		if j, dup := c.ids[s]; dup {
			return nil, fmt.Errorf("%w: %q is both id %d and id %d", ErrFormat, s, j, i)
		}
		c.ids[s] = i
		c.maxRunes = max(c.maxRunes, utf8.RuneCountInString(s))
	}
	return c, nil
}

// VocabSize implements Tokenizer.
func (c *Chars) VocabSize() int { return len(c.chars) }

// Special implements Tokenizer: a character vocabulary has none.
func (c *Chars) Special(string) (int, bool) { return 0, false }

// Encode implements Tokenizer: the id of each character (the longest
// entry that matches, for vocabularies with multi-character entries). A
// character that is not in the vocabulary is an error naming it and its
// byte offset. addSpecial adds nothing.
func (c *Chars) Encode(text string, addSpecial bool) ([]int, error) {
	ids := make([]int, 0, len(text))
	for i := 0; i < len(text); {
		found := false
		// Longest match first: at most maxRunes runes ahead.
		end, n := i, 0
		var ends []int
		for end < len(text) && n < c.maxRunes {
			_, w := utf8.DecodeRuneInString(text[end:])
			end += w
			n++
			ends = append(ends, end)
		}
		for k := len(ends) - 1; k >= 0; k-- {
			if id, ok := c.ids[text[i:ends[k]]]; ok {
				ids = append(ids, id)
				i, found = ends[k], true
				break
			}
		}
		if !found {
			r, _ := utf8.DecodeRuneInString(text[i:])
			return nil, fmt.Errorf("tokenizer: character %q (U+%04X) at byte %d is not in the %d-character vocabulary", r, r, i, len(c.chars))
		}
	}
	return ids, nil
}

// Decode implements Tokenizer: the entries of ids, concatenated; ids
// outside the vocabulary decode to nothing.
func (c *Chars) Decode(ids []int, skipSpecial bool) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && id < len(c.chars) {
			b.WriteString(c.chars[id])
		}
	}
	return b.String()
}

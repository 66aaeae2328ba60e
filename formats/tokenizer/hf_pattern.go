package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// A span is the part s[start:end] of a string a pattern was run over, and
// whether the pattern matched it.
type span struct {
	start, end int
	match      bool
}

// A pattern finds the matches of a Split pre-tokenizer, a Replace
// normalizer or decoder in a string: the Rust crate's Pattern trait.
type pattern interface {
	// find calls yield with the spans of s in order, covering all of s:
	// each match (match true) and the text between matches; an empty s
	// has none. It stops at, and returns, the first error of yield.
	find(s string, yield func(span) error) error
}

// gpt2Regex is GPT-2's split regex, which ByteLevel applies when
// use_regex is true (tokenizers' pre_tokenizers/byte_level.rs).
const gpt2Regex = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// llama3Regex is the split regex of Llama 3, OpenAI's cl100k_base and
// OLMo 2's dolma2 tokenizer, as tokenizer.json files write it.
const llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// newRegexPattern compiles a tokenizer.json regex. The GPT-2 and Llama 3
// regexes, the ones most files use, get hand-written matchers (tilers)
// that give the same matches as Oniguruma, the Rust crate's engine, and
// are several times faster than a backtracking engine; any other regex
// goes to github.com/dlclark/regexp2, a backtracking engine with
// lookaround and Unicode-aware \s, \w, \d and \p{..}, as Oniguruma has.
func newRegexPattern(expr string) (pattern, error) {
	switch expr {
	case gpt2Regex:
		return tiler(gpt2Next), nil
	case llama3Regex:
		return tiler(llama3Next), nil
	}
	return compileRegexp2(expr)
}

func compileRegexp2(expr string) (*regexPattern, error) {
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", expr, err)
	}
	return &regexPattern{re: re}, nil
}

// regexPattern is a regex run by regexp2. regexp2 matches on runes, so
// spans converts rune offsets back to byte offsets.
type regexPattern struct {
	re *regexp2.Regexp
}

func (p *regexPattern) find(s string, yield func(span) error) error {
	if s == "" {
		return nil
	}
	runes := []rune(s)
	// offs[i] is the byte offset of runes[i]; offs[len(runes)] = len(s).
	offs := make([]int, 0, len(runes)+1)
	for i := range s {
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	prev := 0
	var yerr error
	err := p.re.FindRunesMatches(runes, 0, func(m regexp2.MatchView) bool {
		idx, n, _ := m.GroupRange(0)
		start, end := offs[idx], offs[idx+n]
		if start != prev {
			if yerr = yield(span{prev, start, false}); yerr != nil {
				return false
			}
		}
		if yerr = yield(span{start, end, true}); yerr != nil {
			return false
		}
		prev = end
		return true
	})
	if yerr != nil {
		return yerr
	}
	if err != nil {
		return fmt.Errorf("tokenizer: regex %q: %w", p.re.String(), err)
	}
	if prev != len(s) {
		return yield(span{prev, len(s), false})
	}
	return nil
}

// A tiler is a regex every position of a string matches (both built-in
// regexes end in an alternative for each character class), written as
// the function giving the end of the match that starts at byte i < len(s).
type tiler func(s string, i int) int

func (next tiler) find(s string, yield func(span) error) error {
	for i := 0; i < len(s); {
		j := next(s, i)
		if err := yield(span{i, j, true}); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// Character classes of the built-in regexes: Oniguruma's \s (the Unicode
// White_Space property, which unicode.IsSpace is), \p{L} and \p{N}.
const (
	classSpace = iota
	classLetter
	classNumber
	classOther // [^\s\p{L}\p{N}]
)

func runeClass(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		return asciiClass[r]
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther
}

var asciiClass = func() (c [utf8.RuneSelf]int) {
	for r := range c {
		switch {
		case unicode.IsSpace(rune(r)):
			c[r] = classSpace
		case unicode.IsLetter(rune(r)):
			c[r] = classLetter
		case unicode.IsNumber(rune(r)):
			c[r] = classNumber
		default:
			c[r] = classOther
		}
	}
	return c
}()

// runeAt decodes the rune at byte i of s.
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// classRun returns the end of the run of runes of class c from byte i,
// at most max runes long (max < 0: no limit).
func classRun(s string, i, c, max int) int {
	for n := 0; i < len(s) && n != max; n++ {
		if b := s[i]; b < utf8.RuneSelf {
			if asciiClass[b] != c {
				break
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if runeClass(r) != c {
			break
		}
		i += w
	}
	return i
}

// spaceTail handles `\s+(?!\S)|\s+` for the whitespace run from byte i:
// the whole run when it ends the string or is one rune long, else the
// run without its last rune (which the next piece starts with).
func spaceTail(s string, i int) int {
	end, last, n := i, i, 0
	for end < len(s) {
		r, w := runeAt(s, end)
		if runeClass(r) != classSpace {
			break
		}
		last, end, n = end, end+w, n+1
	}
	if end == len(s) || n == 1 {
		return end
	}
	return last
}

// contraction returns the length of the contraction ('s 't 're 've 'm
// 'll 'd) at the start of s, or 0. foldCase also accepts upper case and
// U+017F ſ for s, as Oniguruma's case folding does.
func contraction(s string, foldCase bool) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	lower := func(i int) (byte, int) {
		if i >= len(s) {
			return 0, 0
		}
		c := s[i]
		if foldCase {
			if 'A' <= c && c <= 'Z' {
				return c + 'a' - 'A', 1
			}
			if strings.HasPrefix(s[i:], "ſ") {
				return 's', len("ſ")
			}
		}
		return c, 1
	}
	c1, w1 := lower(1)
	switch c1 {
	case 's', 't', 'm', 'd':
		return 1 + w1
	case 'r', 'v', 'l':
		c2, w2 := lower(1 + w1)
		if (c1 == 'r' || c1 == 'v') && c2 == 'e' || c1 == 'l' && c2 == 'l' {
			return 1 + w1 + w2
		}
	}
	return 0
}

// gpt2Next is the tiler of gpt2Regex.
func gpt2Next(s string, i int) int {
	if n := contraction(s[i:], false); n > 0 {
		return i + n
	}
	// ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
	j := i
	if s[i] == ' ' {
		j++
	}
	if j < len(s) {
		r, _ := runeAt(s, j)
		if c := runeClass(r); c != classSpace {
			return classRun(s, j, c, -1)
		}
	}
	return spaceTail(s, i)
}

// llama3Next is the tiler of llama3Regex.
func llama3Next(s string, i int) int {
	if n := contraction(s[i:], true); n > 0 {
		return i + n
	}
	r, w := runeAt(s, i)
	c := runeClass(r)
	switch c {
	case classLetter: // `[^\r\n\p{L}\p{N}]?\p{L}+` without the optional char
		return classRun(s, i, classLetter, -1)
	case classNumber: // `\p{N}{1,3}`
		return classRun(s, i, classNumber, 3)
	}
	// `[^\r\n\p{L}\p{N}]\p{L}+`
	if r != '\r' && r != '\n' && i+w < len(s) {
		if r2, _ := runeAt(s, i+w); runeClass(r2) == classLetter {
			return classRun(s, i+w, classLetter, -1)
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if r == ' ' {
		j++
	}
	if j < len(s) {
		if r2, _ := runeAt(s, j); runeClass(r2) == classOther {
			j = classRun(s, j, classOther, -1)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			return j
		}
	}
	// `\s*[\r\n]+`: up to the last \r or \n of the whitespace run.
	nl := -1
	for j = i; j < len(s); {
		r2, w2 := runeAt(s, j)
		if runeClass(r2) != classSpace {
			break
		}
		if r2 == '\r' || r2 == '\n' {
			nl = j + 1
		}
		j += w2
	}
	if nl >= 0 {
		return nl
	}
	return spaceTail(s, i)
}

// literalPattern matches a string literally (a {"String": ...} pattern);
// the empty string matches nothing.
type literalPattern string

func (p literalPattern) find(s string, yield func(span) error) error {
	if s == "" {
		return nil
	}
	if p == "" {
		return yield(span{0, len(s), false})
	}
	prev := 0
	for {
		k := strings.Index(s[prev:], string(p))
		if k < 0 {
			break
		}
		start := prev + k
		if start != prev {
			if err := yield(span{prev, start, false}); err != nil {
				return err
			}
		}
		prev = start + len(p)
		if err := yield(span{start, prev, true}); err != nil {
			return err
		}
	}
	if prev != len(s) {
		return yield(span{prev, len(s), false})
	}
	return nil
}

// runePattern matches each rune for which the function is true, one
// match per rune (the Rust crate's Pattern for Fn(char) -> bool).
type runePattern func(rune) bool

func (p runePattern) find(s string, yield func(span) error) error {
	prev := 0
	for i := 0; i < len(s); {
		r, w := runeAt(s, i)
		if p(r) {
			if prev < i {
				if err := yield(span{prev, i, false}); err != nil {
					return err
				}
			}
			prev = i + w
			if err := yield(span{i, prev, true}); err != nil {
				return err
			}
		}
		i += w
	}
	if prev < len(s) {
		return yield(span{prev, len(s), false})
	}
	return nil
}

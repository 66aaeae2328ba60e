package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clipperhouse/uax29/v2/graphemes"
	"golang.org/x/text/unicode/norm"
)

// A normalizer rewrites text before pre-tokenization (a tokenizer.json
// "normalizer"). Offsets are not tracked: nothing here needs them.
type normalizer interface {
	normalize(s string) (string, error)
}

// parseNormalizer reads a "normalizer" object (nil for JSON null).
func parseNormalizer(o *jobj) (normalizer, error) {
	if o == nil {
		return nil, nil
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := parseSequence(o, "normalizers", parseNormalizer)
		if err != nil {
			return nil, err
		}
		return sequenceNormalizer(seq), nil
	case "BertNormalizer":
		var n bertNormalizer
		if n.cleanText, err = o.boolean("clean_text", true); err != nil {
			return nil, err
		}
		if n.chinese, err = o.boolean("handle_chinese_chars", true); err != nil {
			return nil, err
		}
		if n.lowercase, err = o.boolean("lowercase", true); err != nil {
			return nil, err
		}
		strip, err := o.optBool("strip_accents")
		if err != nil {
			return nil, err
		}
		// strip_accents null (or missing) follows lowercase.
		n.stripAccents = n.lowercase
		if strip != nil {
			n.stripAccents = *strip
		}
		return n, nil
	case "NFC":
		return formNormalizer{norm.NFC}, nil
	case "NFD":
		return formNormalizer{norm.NFD}, nil
	case "NFKC":
		return formNormalizer{norm.NFKC}, nil
	case "NFKD":
		return formNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		var n stripNormalizer
		if n.left, err = o.boolean("strip_left", true); err != nil {
			return nil, err
		}
		if n.right, err = o.boolean("strip_right", true); err != nil {
			return nil, err
		}
		return n, nil
	case "StripAccents":
		return stripAccentsNormalizer{}, nil
	case "Replace":
		p, content, err := parseReplace(o)
		if err != nil {
			return nil, err
		}
		return replaceNormalizer{p, content}, nil
	case "Prepend":
		s, err := o.str("prepend", nil)
		if err != nil {
			return nil, err
		}
		return prependNormalizer(s), nil
	case "Nmt":
		return nmtNormalizer{}, nil
	case "ByteLevel":
		return byteLevelNormalizer{}, nil
	case "Precompiled":
		b64, err := o.str("precompiled_charsmap", nil)
		if err != nil {
			return nil, err
		}
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, o.errorf("precompiled_charsmap is not base64: %v", err)
		}
		p, err := parsePrecompiled(data)
		if err != nil {
			return nil, o.errorf("precompiled_charsmap: %v", err)
		}
		return p, nil
	}
	return nil, o.errorf("unknown normalizer type %q", typ)
}

// parseReplace reads the pattern ({"String": s} or {"Regex": r}) and the
// content of a Replace normalizer or decoder.
func parseReplace(o *jobj) (pattern, string, error) {
	p, err := o.pattern("pattern")
	if err != nil {
		return nil, "", err
	}
	content, err := o.str("content", nil)
	if err != nil {
		return nil, "", err
	}
	return p, content, nil
}

type sequenceNormalizer []normalizer

func (seq sequenceNormalizer) normalize(s string) (string, error) {
	for _, n := range seq {
		var err error
		if s, err = n.normalize(s); err != nil {
			return "", err
		}
	}
	return s, nil
}

// bertNormalizer is BertNormalizer: clean_text drops NUL, U+FFFD and
// control chars and turns whitespace into ' '; handle_chinese_chars puts
// spaces around CJK ideographs; strip_accents decomposes (NFD) and drops
// nonspacing marks; lowercase lowercases.
type bertNormalizer struct {
	cleanText, chinese, stripAccents, lowercase bool
}

func (n bertNormalizer) normalize(s string) (string, error) {
	if isASCII(s) {
		return string(n.appendASCII(nil, s)), nil
	}
	// Runs of ASCII chars take the fast path: NFD, which works between
	// starters, leaves them and the runs between them independent.
	b := make([]byte, 0, len(s)+len(s)/8)
	for i := 0; i < len(s); {
		j := i
		ascii := s[i] < utf8.RuneSelf
		for j < len(s) && (s[j] < utf8.RuneSelf) == ascii {
			j++
		}
		if ascii {
			b = n.appendASCII(b, s[i:j])
		} else {
			b = append(b, n.normalizeRun(s[i:j])...)
		}
		i = j
	}
	return string(b), nil
}

// normalizeRun normalizes a run of non-ASCII chars.
func (n bertNormalizer) normalizeRun(s string) string {
	if n.cleanText || n.chinese {
		var b strings.Builder
		b.Grow(len(s))
		for _, r := range s {
			if n.cleanText {
				switch {
				case r == 0 || r == utf8.RuneError || bertControl(r):
					continue
				case r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r):
					r = ' '
				}
			}
			if n.chinese && isCJKIdeograph(r) {
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
		s = b.String()
	}
	switch {
	case n.stripAccents:
		// NFD, nonspacing marks dropped, then (the same pass) lowercase:
		// İ decomposes, so its two-rune lowercase cannot occur.
		s = strings.Map(func(r rune) rune {
			if r >= 0x300 && unicode.Is(unicode.Mn, r) && !unicode15(r) {
				return -1
			}
			if n.lowercase {
				return unicode.ToLower(r)
			}
			return r
		}, norm.NFD.String(s))
	case n.lowercase:
		s = lowercase(s)
	}
	return s
}

// appendASCII appends the normalization of ASCII text to b, in one pass:
// accents and CJK do not occur.
func (n bertNormalizer) appendASCII(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case n.cleanText && (c == '\t' || c == '\n' || c == '\r'):
			c = ' '
		case n.cleanText && (c < 0x20 || c == 0x7F):
			continue
		case n.lowercase && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// bertControl is the Rust crate's is_control: tab, newline and carriage
// return are whitespace, not control; otherwise the unicode_categories
// crate's is_other (Cc, Cf and, because its table lists only the ends of
// the private-use ranges, six Co code points), whose tables are Unicode
// 14: Go's Unicode 15 Cf additions are left out.
func bertControl(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7F
	}
	switch r {
	case '\t', '\n', '\r':
		return false
	case 0xE000, 0xF8FF, 0xF0000, 0xFFFFD, 0x100000, 0x10FFFD:
		return true
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) && !unicode15(r)
}

// bertPunct is the Rust crate's is_bert_punc (BertPreTokenizer,
// Punctuation): ASCII punctuation (which includes $ + < = > ^ ` | ~) or
// the unicode_categories crate's P* (Unicode 14).
func bertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return '!' <= r && r <= '/' || ':' <= r && r <= '@' || '[' <= r && r <= '`' || '{' <= r && r <= '~'
	}
	return unicode.IsPunct(r) && !unicode15(r)
}

// unicode15 reports the Mn, Cf and P* code points new in Unicode 15 (Go's
// tables), which the unicode_categories crate (Unicode 14) does not have.
func unicode15(r rune) bool {
	if r < 0xECE {
		return false
	}
	switch {
	case r == 0xECE, 0x10EFD <= r && r <= 0x10EFF, r == 0x11241,
		0x11B00 <= r && r <= 0x11B09, 0x11F00 <= r && r <= 0x11F01,
		0x11F36 <= r && r <= 0x11F3A, r == 0x11F40, 0x11F42 <= r && r <= 0x11F4F,
		0x13439 <= r && r <= 0x13440, 0x13447 <= r && r <= 0x13455,
		r == 0x1E08F, 0x1E4EC <= r && r <= 0x1E4EF:
		return true
	}
	return false
}

// isCJKIdeograph is the Rust crate's is_chinese_char: the CJK Unified
// Ideographs blocks and extensions A–E, and the compatibility blocks.
func isCJKIdeograph(r rune) bool {
	return 0x4E00 <= r && r <= 0x9FFF || 0x3400 <= r && r <= 0x4DBF ||
		0x20000 <= r && r <= 0x2A6DF || 0x2A700 <= r && r <= 0x2B73F ||
		0x2B740 <= r && r <= 0x2B81F || 0x2B920 <= r && r <= 0x2CEAF ||
		0xF900 <= r && r <= 0xFAFF || 0x2F800 <= r && r <= 0x2FA1F
}

// lowercase lowercases s rune by rune as Rust's char::to_lowercase does:
// the simple mappings, and U+0130 İ to "i̇" (its one unconditional
// multi-rune mapping).
func lowercase(s string) string {
	if !strings.ContainsRune(s, 0x130) {
		return strings.ToLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		if r == 0x130 {
			b.WriteString("i\u0307")
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(s string) (string, error) { return lowercase(s), nil }

// formNormalizer is NFC, NFD, NFKC or NFKD.
type formNormalizer struct{ form norm.Form }

func (n formNormalizer) normalize(s string) (string, error) { return n.form.String(s), nil }

// stripNormalizer is Strip: leading and/or trailing whitespace removed.
type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) (string, error) {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s, nil
}

// stripAccentsNormalizer is StripAccents: combining marks (M) removed,
// without decomposing first.
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(s string) (string, error) {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.M, r) {
			return -1
		}
		return r
	}, s), nil
}

// replaceNormalizer is Replace: every match of the pattern becomes the
// content.
type replaceNormalizer struct {
	pattern pattern
	content string
}

func (n replaceNormalizer) normalize(s string) (string, error) {
	return replaceAll(n.pattern, s, n.content)
}

func replaceAll(p pattern, s, content string) (string, error) {
	if lit, ok := p.(literalPattern); ok && lit != "" {
		return strings.ReplaceAll(s, string(lit), content), nil
	}
	var b strings.Builder
	err := p.find(s, func(sp span) error {
		if sp.match {
			b.WriteString(content)
		} else {
			b.WriteString(s[sp.start:sp.end])
		}
		return nil
	})
	return b.String(), err
}

// prependNormalizer is Prepend: the string before any non-empty text.
type prependNormalizer string

func (p prependNormalizer) normalize(s string) (string, error) {
	if s == "" {
		return s, nil
	}
	return string(p) + s, nil
}

// nmtNormalizer is Nmt: ASCII control chars dropped, some spaces and
// invisibles (and U+2581 ▁) turned into ' '.
type nmtNormalizer struct{}

func (nmtNormalizer) normalize(s string) (string, error) {
	return strings.Map(func(r rune) rune {
		switch {
		case 0x1 <= r && r <= 0x8, r == 0xB, 0xE <= r && r <= 0x1F, r == 0x7F, r == 0x8F, r == 0x9F:
			return -1
		case r == 0x9, r == 0xA, r == 0xC, r == 0xD, r == 0x1680, 0x200B <= r && r <= 0x200F,
			r == 0x2028, r == 0x2029, r == 0x2581, r == 0xFEFF, r == 0xFFFD:
			return ' '
		}
		return r
	}, s), nil
}

// byteLevelNormalizer is the ByteLevel normalizer: each byte becomes its
// GPT-2 byte-level char.
type byteLevelNormalizer struct{}

func (byteLevelNormalizer) normalize(s string) (string, error) { return byteLevelString(s), nil }

// precompiled is the Precompiled normalizer: SentencePiece's compiled
// normalization rules (the charsmap of a .model file; nmt_nfkc for most
// models). The charsmap is a uint32 little-endian byte size of a Darts
// double-array trie, the trie (uint32 units), then the replacement
// strings, each NUL-terminated; a trie leaf's value is the offset of its
// replacement.
//
// The lookup is the one tokenizers (the spm_precompiled crate) does, the
// reference of tokenizer.json: per extended grapheme cluster of fewer
// than 6 bytes, the replacement of the shortest trie key that is a
// prefix of the cluster, for the whole cluster; failing that (or for
// longer clusters), the same per UTF-8 char, a char without a key kept.
// SentencePiece itself takes the longest key at each position instead;
// both agree where the keys are whole clusters, as in nmt_nfkc.
type precompiled struct {
	trie []uint32
	repl []byte
	// ascii[c] is transform(string(c)) for the ASCII bytes.
	ascii   [utf8.RuneSelf]string
	asciiOK [utf8.RuneSelf]bool
}

func parsePrecompiled(data []byte) (*precompiled, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%d bytes, too short for the trie size", len(data))
	}
	size := binary.LittleEndian.Uint32(data)
	units := int(size / 4)
	if units > (len(data)-4)/4 {
		return nil, fmt.Errorf("the trie is %d bytes but only %d follow", size, len(data)-4)
	}
	p := &precompiled{trie: make([]uint32, units)}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	p.repl = data[4+4*units:]
	if !utf8.Valid(p.repl) {
		return nil, fmt.Errorf("the replacement strings are not UTF-8")
	}
	for c := range p.ascii {
		p.ascii[c], p.asciiOK[c] = p.transform(string(rune(c)))
	}
	return p, nil
}

// transform returns the replacement of the shortest trie key that is a
// prefix of s (the search stops at a NUL byte), and whether there is one.
// Out-of-range trie positions (a corrupt charsmap) end the search.
func (p *precompiled) transform(s string) (string, bool) {
	if len(p.trie) == 0 {
		return "", false
	}
	// Darts unit: bits 0-7 label, bit 8 has-leaf, bit 9 offset shift,
	// bits 10-31 offset; a leaf unit's low 31 bits are its value.
	offset := func(u uint32) int { return int(u>>10) << ((u & (1 << 9)) >> 6) }
	pos := offset(p.trie[0])
	for i := 0; i < len(s) && s[i] != 0; i++ {
		c := s[i]
		pos ^= int(c)
		if pos < 0 || pos >= len(p.trie) {
			return "", false
		}
		u := p.trie[pos]
		if u&(1<<31|0xFF) != uint32(c) {
			return "", false
		}
		pos ^= offset(u)
		if u>>8&1 == 1 {
			if pos < 0 || pos >= len(p.trie) {
				return "", false
			}
			v := int(p.trie[pos] & (1<<31 - 1))
			if v > len(p.repl) {
				return "", false
			}
			end := v
			for end < len(p.repl) && p.repl[end] != 0 {
				end++
			}
			return string(p.repl[v:end]), true
		}
	}
	return "", false
}

func (p *precompiled) normalize(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		// An ASCII char followed by one (but CR LF) is a cluster of its
		// own: no grapheme rule joins two ASCII chars but GB3.
		if c := s[i]; c < utf8.RuneSelf && (i+1 == len(s) || s[i+1] < utf8.RuneSelf && !(c == '\r' && s[i+1] == '\n')) {
			if p.asciiOK[c] {
				b.WriteString(p.ascii[c])
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		g := graphemes.FromString(s[i:])
		g.Next()
		cluster := g.Value()
		i += len(cluster)
		if len(cluster) < 6 {
			if r, ok := p.transform(cluster); ok {
				b.WriteString(r)
				continue
			}
		}
		for k := 0; k < len(cluster); {
			_, w := utf8.DecodeRuneInString(cluster[k:])
			part := cluster[k : k+w]
			if r, ok := p.transform(part); ok {
				b.WriteString(r)
			} else {
				b.WriteString(part)
			}
			k += w
		}
	}
	return b.String(), nil
}

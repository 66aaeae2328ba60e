package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A piece is a part of the normalized text on its way to the model.
// first marks the piece that starts the original text (its offset 0),
// which Metaspace's prepend_scheme "first" needs. byteLevel marks a piece
// of the ByteLevel pre-tokenizer whose bytes are still to be mapped to
// their byte-level chars: the mapping is left to the model (BPE keeps a
// cache by the unmapped piece) unless another pre-tokenizer follows.
type piece struct {
	s         string
	first     bool
	byteLevel bool
}

// text returns the piece's string, byte-level mapped if it is to be.
func (p piece) text() string {
	if p.byteLevel {
		return byteLevelString(p.s)
	}
	return p.s
}

// A preTokenizer splits pieces into smaller ones (a tokenizer.json
// "pre_tokenizer"); the model then encodes each piece on its own.
type preTokenizer interface {
	// split calls yield with each non-empty piece p splits into, in
	// order; it stops at, and returns, the first error of yield.
	split(p piece, yield func(piece) error) error
}

// splitBehavior is what Split does with the matches of its pattern
// (SplitDelimiterBehavior).
type splitBehavior int

const (
	splitRemoved            splitBehavior = iota // matches dropped
	splitIsolated                                // matches are pieces of their own
	splitMergedWithPrevious                      // a match joins the piece before it
	splitMergedWithNext                          // a match joins the piece after it
	splitContiguous                              // consecutive matches form one piece
)

var splitBehaviors = map[string]splitBehavior{
	"Removed":            splitRemoved,
	"Isolated":           splitIsolated,
	"MergedWithPrevious": splitMergedWithPrevious,
	"MergedWithNext":     splitMergedWithNext,
	"Contiguous":         splitContiguous,
}

func (o *jobj) behavior(key string, def *splitBehavior) (splitBehavior, error) {
	s, err := o.optStr(key)
	if err != nil {
		return 0, err
	}
	if s == nil {
		if def == nil {
			return 0, o.errorf("%s is missing", key)
		}
		return *def, nil
	}
	b, ok := splitBehaviors[*s]
	if !ok {
		return 0, o.errorf("%s %q is not Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous", key, *s)
	}
	return b, nil
}

// splitter turns the spans of a piece into pieces as
// NormalizedString::split does for a behavior, streaming: it holds back
// at most one piece, the one a later span may still join. Empty pieces
// are dropped.
type splitter struct {
	p        piece
	behavior splitBehavior
	invert   bool
	yield    func(piece) error

	held       bool // the piece [start, end) is held back
	start, end int
	prevMatch  bool // the previous span was a match
}

func (sp *splitter) emit(start, end int) error {
	if end <= start {
		return nil
	}
	return sp.yield(piece{s: sp.p.s[start:end], first: sp.p.first && start == 0})
}

// hold emits the held piece, if any, and holds [start, end) instead.
func (sp *splitter) hold(start, end int) error {
	if err := sp.flushHeld(); err != nil {
		return err
	}
	sp.held, sp.start, sp.end = true, start, end
	return nil
}

// flushHeld emits the held piece, if any.
func (sp *splitter) flushHeld() error {
	if !sp.held {
		return nil
	}
	sp.held = false
	return sp.emit(sp.start, sp.end)
}

func (sp *splitter) add(x span) error {
	m := x.match != sp.invert
	prev := sp.prevMatch
	sp.prevMatch = m
	switch sp.behavior {
	case splitIsolated:
		return sp.emit(x.start, x.end)
	case splitRemoved:
		if m {
			return nil
		}
		return sp.emit(x.start, x.end)
	case splitContiguous, splitMergedWithPrevious:
		// Contiguous joins a span to the piece before it when both are
		// matches or both are not; MergedWithPrevious joins a match to the
		// non-match before it.
		join := m == prev
		if sp.behavior == splitMergedWithPrevious {
			join = m && !prev
		}
		if join && sp.held {
			sp.end = x.end
			return nil
		}
		return sp.hold(x.start, x.end)
	case splitMergedWithNext:
		// A match joins the non-match right after it; only matches are
		// held.
		if sp.held && !m {
			sp.held = false
			return sp.emit(sp.start, x.end)
		}
		if m {
			return sp.hold(x.start, x.end)
		}
		return sp.emit(x.start, x.end)
	}
	return nil
}

// splitPattern splits p at the spans of pat per behavior.
func splitPattern(p piece, pat pattern, behavior splitBehavior, invert bool, yield func(piece) error) error {
	sp := &splitter{p: p, behavior: behavior, invert: invert, yield: yield}
	if err := pat.find(p.s, sp.add); err != nil {
		return err
	}
	return sp.flushHeld()
}

// parsePreTokenizer reads a "pre_tokenizer" object (nil for JSON null).
func parsePreTokenizer(o *jobj) (preTokenizer, error) {
	if o == nil {
		return nil, nil
	}
	typ, err := o.typ()
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		seq, err := parseSequence(o, "pretokenizers", parsePreTokenizer)
		if err != nil {
			return nil, err
		}
		return sequencePreTokenizer(seq), nil
	case "ByteLevel":
		var p byteLevelPreTokenizer
		if p.addPrefixSpace, err = o.boolean("add_prefix_space", true); err != nil {
			return nil, err
		}
		if p.useRegex, err = o.boolean("use_regex", true); err != nil {
			return nil, err
		}
		return p, nil
	case "Split":
		var p splitPreTokenizer
		if p.pattern, err = o.pattern("pattern"); err != nil {
			return nil, err
		}
		if p.behavior, err = o.behavior("behavior", nil); err != nil {
			return nil, err
		}
		if p.invert, err = o.boolean("invert", false); err != nil {
			return nil, err
		}
		return p, nil
	case "WhitespaceSplit":
		return splitPreTokenizer{pattern: runePattern(unicode.IsSpace), behavior: splitRemoved}, nil
	case "Whitespace":
		return whitespacePreTokenizer{}, nil
	case "BertPreTokenizer":
		return bertPreTokenizer{}, nil
	case "Punctuation":
		def := splitIsolated
		b, err := o.behavior("behavior", &def)
		if err != nil {
			return nil, err
		}
		return splitPreTokenizer{pattern: runePattern(bertPunct), behavior: b}, nil
	case "Digits":
		individual, err := o.boolean("individual_digits", false)
		if err != nil {
			return nil, err
		}
		b := splitContiguous
		if individual {
			b = splitIsolated
		}
		return splitPreTokenizer{pattern: runePattern(unicode.IsNumber), behavior: b}, nil
	case "CharDelimiterSplit":
		d, err := o.char("delimiter", -1)
		if err != nil {
			return nil, err
		}
		if d < 0 {
			return nil, o.errorf("delimiter is missing")
		}
		return splitPreTokenizer{pattern: runePattern(func(r rune) bool { return r == d }), behavior: splitRemoved}, nil
	case "Metaspace":
		return parseMetaspace(o)
	case "FixedLength":
		n, err := o.count("length", 5)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, o.errorf("length is 0")
		}
		return fixedLengthPreTokenizer(n), nil
	}
	return nil, o.errorf("unsupported pre_tokenizer type %q", typ)
}

type sequencePreTokenizer []preTokenizer

func (seq sequencePreTokenizer) split(p piece, yield func(piece) error) error {
	// stage[i] feeds a piece to seq[i], whose pieces go to stage[i+1].
	stage := make([]func(piece) error, len(seq)+1)
	stage[len(seq)] = yield
	for i := len(seq) - 1; i >= 0; i-- {
		pt, next := seq[i], stage[i+1]
		stage[i] = func(q piece) error {
			if q.byteLevel {
				q = piece{s: q.text(), first: q.first}
			}
			return pt.split(q, next)
		}
	}
	return stage[0](p)
}

// splitPreTokenizer is Split, and the fixed-pattern pre-tokenizers built
// on it (WhitespaceSplit, BertPreTokenizer, Punctuation, Digits,
// CharDelimiterSplit). invert swaps matches and the text between them.
type splitPreTokenizer struct {
	pattern  pattern
	behavior splitBehavior
	invert   bool
}

func (p splitPreTokenizer) split(in piece, yield func(piece) error) error {
	return splitPattern(in, p.pattern, p.behavior, p.invert, yield)
}

// bertPreTokenizer is BertPreTokenizer: split on whitespace (removed),
// then each punctuation char (bertPunct) a piece of its own.
type bertPreTokenizer struct{}

func (bertPreTokenizer) split(p piece, yield func(piece) error) error {
	s := p.s
	start := 0 // of the current run of other chars
	for i := 0; i < len(s); {
		r, w := runeAt(s, i)
		space := unicode.IsSpace(r)
		if space || bertPunct(r) {
			if start < i {
				if err := yield(piece{s: s[start:i], first: p.first && start == 0}); err != nil {
					return err
				}
			}
			if !space {
				if err := yield(piece{s: s[i : i+w], first: p.first && i == 0}); err != nil {
					return err
				}
			}
			start = i + w
		}
		i += w
	}
	if start < len(s) {
		return yield(piece{s: s[start:], first: p.first && start == 0})
	}
	return nil
}

// whitespacePreTokenizer is Whitespace: the runs of word chars and the
// runs of other non-space chars (the Rust regex `\w+|[^\w\s]+`).
type whitespacePreTokenizer struct{}

// isWordChar is the Rust regex crate's Unicode \w: Alphabetic, marks,
// decimal digits, connector punctuation and the joiners.
func isWordChar(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
	}
	return unicode.IsLetter(r) || unicode.In(r, unicode.M, unicode.Nd, unicode.Nl, unicode.Pc,
		unicode.Other_Alphabetic, unicode.Join_Control)
}

func (whitespacePreTokenizer) split(p piece, yield func(piece) error) error {
	s := p.s
	for i := 0; i < len(s); {
		r, w := runeAt(s, i)
		if unicode.IsSpace(r) {
			i += w
			continue
		}
		word := isWordChar(r)
		j := i + w
		for j < len(s) {
			r2, w2 := runeAt(s, j)
			if unicode.IsSpace(r2) || isWordChar(r2) != word {
				break
			}
			j += w2
		}
		if err := yield(piece{s: s[i:j], first: p.first && i == 0}); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// byteLevelPreTokenizer is ByteLevel: a space before the piece unless it
// has one (add_prefix_space), the GPT-2 regex split (use_regex), then
// each byte as its byte-level char.
type byteLevelPreTokenizer struct {
	addPrefixSpace, useRegex bool
}

func (p byteLevelPreTokenizer) split(in piece, yield func(piece) error) error {
	s := in.s
	if p.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if !p.useRegex {
		return yield(piece{s, in.first, true})
	}
	for i := 0; i < len(s); {
		j := gpt2Next(s, i)
		if err := yield(piece{s[i:j], in.first && i == 0, true}); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// byteLevelChars is GPT-2's byte-to-unicode map (bytes_char in
// tokenizers): the printable bytes ! to ~, ¡ to ¬ and ® to ÿ stand for
// themselves, the other 68 bytes, in order, for U+0100 onwards.
var byteLevelChars = func() (m [256]rune) {
	n := rune(0)
	for b := range m {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			m[b] = rune(b)
		} else {
			m[b] = 256 + n
			n++
		}
	}
	return m
}()

// byteLevelUTF8 holds the UTF-8 of byteLevelChars.
var byteLevelUTF8 = func() (m [256]string) {
	for b, r := range byteLevelChars {
		m[b] = string(r)
	}
	return m
}()

// byteLevelBytes maps a byte-level char (below U+0144) back to its byte,
// -1 for other chars.
var byteLevelBytes = func() (m [0x144]int16) {
	for i := range m {
		m[i] = -1
	}
	for b, r := range byteLevelChars {
		m[r] = int16(b)
	}
	return m
}()

// byteLevelString maps each byte of s to its byte-level char.
func byteLevelString(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteLevelUTF8[s[i]])
	}
	return b.String()
}

// prependScheme is when Metaspace puts its replacement before a piece.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst                // only before the piece that starts the text
	prependNever
)

// metaspace is the Metaspace pre-tokenizer (and decoder): spaces become
// the replacement (▁), which is prepended per the prepend scheme; with
// split, the piece is cut before each replacement. For "first", a piece
// starts the text when it starts at byte 0 of it and of every split
// above it; the Rust crate's alignments would also say it does not when
// the normalizer removed the text's first chars (not tracked here).
type metaspace struct {
	replacement rune
	repl        string
	prepend     prependScheme
	splitOn     bool
}

// parseMetaspace reads both forms of Metaspace: the old add_prefix_space
// (true: prepend always, false: never; str_rep is ignored as the Rust
// crate ignores it) and the newer prepend_scheme ("always", "first",
// "never") with split.
func parseMetaspace(o *jobj) (*metaspace, error) {
	r, err := o.char("replacement", -1)
	if err != nil {
		return nil, err
	}
	if r < 0 {
		return nil, o.errorf("replacement is missing")
	}
	m := &metaspace{replacement: r, repl: string(r), prepend: prependAlways}
	scheme, err := o.optStr("prepend_scheme")
	if err != nil {
		return nil, err
	}
	if scheme != nil {
		switch *scheme {
		case "always":
			m.prepend = prependAlways
		case "first":
			m.prepend = prependFirst
		case "never":
			m.prepend = prependNever
		default:
			return nil, o.errorf("prepend_scheme %q is not always, first or never", *scheme)
		}
	}
	add, err := o.optBool("add_prefix_space")
	if err != nil {
		return nil, err
	}
	if add != nil && !*add {
		if m.prepend != prependNever && scheme != nil {
			return nil, o.errorf("add_prefix_space false does not match prepend_scheme %q", *scheme)
		}
		m.prepend = prependNever
	}
	if m.splitOn, err = o.boolean("split", true); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metaspace) split(p piece, yield func(piece) error) error {
	s := strings.ReplaceAll(p.s, " ", m.repl)
	if !strings.HasPrefix(s, m.repl) && (m.prepend == prependAlways || m.prepend == prependFirst && p.first) {
		s = m.repl + s
	}
	if !m.splitOn {
		return yield(piece{s: s, first: p.first})
	}
	// Cut before each replacement (MergedWithNext): of a run of them,
	// only the last goes with the text after it.
	start := 0
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], m.repl)
		if k < 0 {
			break
		}
		k += i
		if k > start {
			if err := yield(piece{s: s[start:k], first: p.first && start == 0}); err != nil {
				return err
			}
			start = k
		}
		i = k + len(m.repl)
	}
	if start < len(s) {
		return yield(piece{s: s[start:], first: p.first && start == 0})
	}
	return nil
}

// fixedLengthPreTokenizer is FixedLength: pieces of n chars (the last
// shorter).
type fixedLengthPreTokenizer int

func (n fixedLengthPreTokenizer) split(p piece, yield func(piece) error) error {
	start, count := 0, 0
	for i := range p.s {
		if count == int(n) {
			if err := yield(piece{s: p.s[start:i], first: p.first && start == 0}); err != nil {
				return err
			}
			start, count = i, 0
		}
		count++
	}
	if start < len(p.s) {
		return yield(piece{s: p.s[start:], first: p.first && start == 0})
	}
	return nil
}

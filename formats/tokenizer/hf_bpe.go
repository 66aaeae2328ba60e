package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// bpe is the BPE model: each char of the pre-token is a symbol (its
// vocabulary id; else its byte tokens <0xNN> with byte_fallback; else
// unk_token, consecutive ones fused into one with fuse_unk; else
// nothing), then the pair with the lowest merge rank is merged, the
// leftmost first, until no pair has a merge (tokenizers'
// models/bpe/word.rs merge_all, whose priority queue this reproduces,
// stale entries and all). dropout is ignored: encoding is deterministic.
type bpe struct {
	*vocabTable
	merges       map[uint64]bpeMerge // (left id << 32 | right id) -> merge
	unk          string
	unkID        int // -1 if no unk_token or it is not in the vocabulary
	hasUnk       bool
	prefix       string // continuing_subword_prefix, before non-first chars
	suffix       string // end_of_word_suffix, after the last char
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int
	// splitBefore, if not "", is a token no merge can join to a different
	// char before it (no entry has it after another char): a word is
	// encoded in independent chunks cut before it (where the char before
	// differs), which gives the same ids and lets long words without a
	// pre-tokenizer (SentencePiece-style files) use the cache.
	splitBefore string
	cache       wordCache // by word
	rawCache    wordCache // by byte-level piece before mapping
}

// A byteLevelModel encodes ByteLevel pieces before their byte-level
// mapping (see piece).
type byteLevelModel interface {
	tokenizeByteLevel(dst []int, raw string) ([]int, error)
}

type bpeMerge struct {
	rank, id int32
}

func parseBPE(o *jobj) (*bpe, error) {
	v, err := parseVocabObject(o)
	if err != nil {
		return nil, err
	}
	m := &bpe{vocabTable: v, unkID: -1}
	unk, err := o.optStr("unk_token")
	if err != nil {
		return nil, err
	}
	if unk != nil {
		m.unk, m.hasUnk = *unk, true
		if id, ok := v.id(*unk); ok {
			m.unkID = id
		}
	}
	prefix, err := o.optStr("continuing_subword_prefix")
	if err != nil {
		return nil, err
	}
	if prefix != nil {
		m.prefix = *prefix
	}
	suffix, err := o.optStr("end_of_word_suffix")
	if err != nil {
		return nil, err
	}
	if suffix != nil {
		m.suffix = *suffix
	}
	if m.fuseUnk, err = o.boolean("fuse_unk", false); err != nil {
		return nil, err
	}
	if m.byteFallback, err = o.boolean("byte_fallback", false); err != nil {
		return nil, err
	}
	if m.ignoreMerges, err = o.boolean("ignore_merges", false); err != nil {
		return nil, err
	}
	if _, ok := o.get("dropout"); ok {
		var p float64
		if err := o.decode("dropout", &p, "a number"); err != nil {
			return nil, err
		}
		if p < 0 || p > 1 {
			return nil, o.errorf("dropout %v is outside [0, 1]", p)
		}
	}
	pairs, err := parseMerges(o)
	if err != nil {
		return nil, err
	}
	m.merges = make(map[uint64]bpeMerge, len(pairs))
	for rank, p := range pairs {
		a, ok := v.id(p[0])
		if !ok {
			return nil, o.errorf("merges[%d]: %q is not in the vocabulary", rank, p[0])
		}
		b, ok := v.id(p[1])
		if !ok {
			return nil, o.errorf("merges[%d]: %q is not in the vocabulary", rank, p[1])
		}
		if !strings.HasPrefix(p[1], m.prefix) {
			return nil, o.errorf("merges[%d]: %q does not start with the continuing_subword_prefix %q", rank, p[1], m.prefix)
		}
		merged := p[0] + p[1][len(m.prefix):]
		id, ok := v.id(merged)
		if !ok {
			return nil, o.errorf("merges[%d]: the merge %q is not in the vocabulary", rank, merged)
		}
		// A repeated pair keeps its last rank, as the Rust crate's map does.
		m.merges[uint64(a)<<32|uint64(b)] = bpeMerge{rank: int32(rank), id: int32(id)}
	}
	if m.byteFallback {
		m.byteIDs = byteTokenIDs(v.id)
	}
	if m.prefix == "" && m.suffix == "" && !m.ignoreMerges {
		m.splitBefore = chunkChar(v)
	}
	return m, nil
}

// chunkChar returns the first of ▁ (SentencePiece's space), space and Ġ
// (byte-level space) that is a vocabulary entry and occurs in no entry
// right after another char; "" if none does.
func chunkChar(v *vocabTable) string {
	for _, c := range []string{"\u2581", " ", "\u0120"} {
		if _, ok := v.ids[c]; !ok {
			continue
		}
		ok := true
		for tok := range v.ids {
			for i := 1; ok && i < len(tok); {
				k := strings.Index(tok[i:], c)
				if k < 0 {
					break
				}
				k += i
				if !strings.HasSuffix(tok[:k], c) {
					ok = false
				}
				i = k + len(c)
			}
			if !ok {
				break
			}
		}
		if ok {
			return c
		}
	}
	return ""
}

// parseMerges reads "merges": a list of "a b" strings (the older
// format; lines starting with "#version" are skipped) or of ["a", "b"]
// pairs (tokenizers 0.20 and later).
func parseMerges(o *jobj) ([][2]string, error) {
	raw, ok := o.get("merges")
	if !ok {
		return nil, o.errorf("merges is missing")
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err == nil {
		pairs := make([][2]string, 0, len(lines))
		for _, line := range lines {
			if strings.HasPrefix(line, "#version") {
				continue
			}
			a, b, ok := strings.Cut(line, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, o.errorf("merges[%d]: %q is not two tokens separated by a space", len(pairs), line)
			}
			pairs = append(pairs, [2]string{a, b})
		}
		return pairs, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, o.errorf(`merges is neither a list of "a b" strings nor of ["a", "b"] pairs`)
	}
	return pairs, nil
}

func (m *bpe) tokenize(dst []int, s string) ([]int, error) {
	if m.ignoreMerges {
		if id, ok := m.ids[s]; ok {
			return append(dst, id), nil
		}
	}
	if m.splitBefore == "" {
		return m.tokenizeWord(dst, s)
	}
	start := 0
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], m.splitBefore)
		if k < 0 {
			break
		}
		k += i
		if k > start && !strings.HasSuffix(s[:k], m.splitBefore) {
			var err error
			if dst, err = m.tokenizeWord(dst, s[start:k]); err != nil {
				return dst, err
			}
			start = k
		}
		i = k + len(m.splitBefore)
	}
	return m.tokenizeWord(dst, s[start:])
}

func (m *bpe) tokenizeWord(dst []int, s string) ([]int, error) {
	if ids, ok := m.cache.get(s); ok {
		return append(dst, ids...), nil
	}
	ids, err := m.mergeWord(s)
	if err != nil {
		return dst, err
	}
	m.cache.put(s, ids)
	return append(dst, ids...), nil
}

func (m *bpe) tokenizeByteLevel(dst []int, raw string) ([]int, error) {
	if ids, ok := m.rawCache.get(raw); ok {
		return append(dst, ids...), nil
	}
	n := len(dst)
	dst, err := m.tokenize(dst, byteLevelString(raw))
	if err == nil {
		m.rawCache.put(raw, slices.Clone(dst[n:]))
	}
	return dst, err
}

// bpeSymbol is a symbol of a word being merged: a linked list over the
// initial symbols; n == 0 marks a symbol merged into its left neighbour.
type bpeSymbol struct {
	id         int32
	prev, next int32
	n          int32 // bytes covered
}

// bpeCand is a queued merge of the symbol at pos with its next symbol.
type bpeCand struct {
	rank, pos, id int32
}

func (m *bpe) mergeWord(w string) ([]int, error) {
	syms := make([]bpeSymbol, 0, len(w))
	add := func(id, n int) {
		k := int32(len(syms))
		if k > 0 {
			syms[k-1].next = k
		}
		syms = append(syms, bpeSymbol{id: int32(id), prev: k - 1, next: -1, n: int32(n)})
	}
	unkID, unkLen := -1, 0 // a pending unk_token symbol
	var buf []byte
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+n]
		if (i > 0 && m.prefix != "") || (i+n == len(w) && m.suffix != "") {
			buf = buf[:0]
			if i > 0 {
				buf = append(buf, m.prefix...)
			}
			buf = append(buf, s...)
			if i+n == len(w) {
				buf = append(buf, m.suffix...)
			}
			s = string(buf)
		}
		i += n
		if id, ok := m.ids[s]; ok {
			if unkID >= 0 {
				add(unkID, unkLen)
				unkID = -1
			}
			add(id, n)
			continue
		}
		if m.byteFallback {
			ok := true
			for k := 0; k < len(s); k++ {
				ok = ok && m.byteIDs[s[k]] >= 0
			}
			if ok {
				for k := 0; k < len(s); k++ {
					add(m.byteIDs[s[k]], 1)
				}
				continue
			}
		}
		if m.hasUnk {
			if m.unkID < 0 {
				return nil, fmt.Errorf("tokenizer: the unk_token %q is not in the vocabulary", m.unk)
			}
			switch {
			case unkID >= 0 && m.fuseUnk:
				unkLen += n
			case unkID >= 0:
				add(unkID, unkLen)
				unkLen = n
			default:
				unkID, unkLen = m.unkID, n
			}
		}
	}
	if unkID >= 0 {
		add(unkID, unkLen)
	}
	m.mergeAll(syms)
	ids := make([]int, 0, len(syms))
	for _, s := range syms {
		if s.n != 0 {
			ids = append(ids, int(s.id))
		}
	}
	return ids, nil
}

// mergeAll is word.rs merge_all: a min-heap of candidate merges by
// (rank, pos); an entry is stale when its symbol was merged away, is now
// last, or its pair now merges into another id.
func (m *bpe) mergeAll(syms []bpeSymbol) {
	h := make(bpeHeap, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[uint64(uint32(syms[i].id))<<32|uint64(uint32(syms[i+1].id))]; ok {
			h = append(h, bpeCand{mg.rank, int32(i), mg.id})
		}
	}
	h.init()
	for len(h) > 0 {
		top := h.pop()
		cur := &syms[top.pos]
		if cur.n == 0 || cur.next < 0 {
			continue
		}
		next := cur.next
		right := syms[next]
		if mg, ok := m.merges[uint64(uint32(cur.id))<<32|uint64(uint32(right.id))]; !ok || mg.id != top.id {
			continue
		}
		cur.id, cur.n, cur.next = top.id, cur.n+right.n, right.next
		syms[next].n = 0
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg, ok := m.merges[uint64(uint32(syms[cur.prev].id))<<32|uint64(uint32(cur.id))]; ok {
				h.push(bpeCand{mg.rank, cur.prev, mg.id})
			}
		}
		if cur.next >= 0 {
			if mg, ok := m.merges[uint64(uint32(cur.id))<<32|uint64(uint32(syms[cur.next].id))]; ok {
				h.push(bpeCand{mg.rank, top.pos, mg.id})
			}
		}
	}
}

// bpeHeap is a binary min-heap of merges by (rank, pos).
type bpeHeap []bpeCand

func (h bpeHeap) less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}

func (h bpeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h bpeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func (h *bpeHeap) push(c bpeCand) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *bpeHeap) pop() bpeCand {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// unigram is the Unigram model (SentencePiece's): the segmentation of
// the pre-token into vocabulary pieces with the highest total score
// (Viterbi, as tokenizers' encode_optimized does), a char no piece
// starts with costing min score - 10 as unk_id; consecutive unknown
// pieces fuse into one, which becomes its byte tokens <0xNN> with
// byte_fallback, else unk_id.
type unigram struct {
	pieces       []string
	scores       []float64
	ids          map[string]int
	trie         byteTrie
	minScore     float64
	unkID        int // -1: none
	byteFallback bool
	byteIDs      [256]int
	cache        wordCache
}

// unkPenalty is tokenizers' K_UNK_PENALTY (SentencePiece's
// kUnkPenalty): an unknown char scores the lowest piece score minus 10.
const unkPenalty = 10.0

func parseUnigram(o *jobj) (*unigram, error) {
	if _, ok := o.get("vocab"); !ok {
		return nil, o.errorf("vocab is missing")
	}
	var entries []json.RawMessage
	if err := o.decode("vocab", &entries, "a list of [piece, score] pairs"); err != nil {
		return nil, err
	}
	if len(entries) > maxHFID {
		return nil, o.errorf("vocab has %d pieces, more than %d", len(entries), maxHFID)
	}
	m := &unigram{
		pieces: make([]string, len(entries)),
		scores: make([]float64, len(entries)),
		ids:    make(map[string]int, len(entries)),
		unkID:  -1,
	}
	m.minScore = math.Inf(1)
	for i, raw := range entries {
		var pair []json.RawMessage
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, o.errorf("vocab[%d] is not a [piece, score] pair", i)
		}
		if err := json.Unmarshal(pair[0], &m.pieces[i]); err != nil {
			return nil, o.errorf("vocab[%d]: the piece is not a string", i)
		}
		if err := json.Unmarshal(pair[1], &m.scores[i]); err != nil {
			return nil, o.errorf("vocab[%d]: the score is not a number", i)
		}
		m.ids[m.pieces[i]] = i // a repeated piece keeps its last id
		m.minScore = min(m.minScore, m.scores[i])
	}
	for p, id := range m.ids {
		m.trie.insert(p, int32(id))
	}
	unk, err := o.count("unk_id", -1)
	if err != nil {
		return nil, err
	}
	if unk >= 0 {
		if len(entries) == 0 {
			return nil, o.errorf("unk_id %d with an empty vocabulary", unk)
		}
		if unk >= len(entries) {
			return nil, o.errorf("unk_id %d is not below the %d pieces", unk, len(entries))
		}
		m.unkID = unk
	}
	if m.byteFallback, err = o.boolean("byte_fallback", false); err != nil {
		return nil, err
	}
	if m.byteFallback {
		m.byteIDs = byteTokenIDs(m.id)
	}
	return m, nil
}

func (m *unigram) id(token string) (int, bool) {
	id, ok := m.ids[token]
	return id, ok
}

func (m *unigram) token(id int) (string, bool) {
	if id < 0 || id >= len(m.pieces) {
		return "", false
	}
	return m.pieces[id], true
}

func (m *unigram) size() int  { return len(m.pieces) }
func (m *unigram) maxID() int { return len(m.pieces) - 1 }

func (m *unigram) tokenize(dst []int, s string) ([]int, error) {
	if ids, ok := m.cache.get(s); ok {
		return append(dst, ids...), nil
	}
	pieces, err := m.viterbi(s)
	if err != nil {
		return dst, err
	}
	ids := make([]int, 0, len(pieces))
	for _, p := range pieces {
		if id, ok := m.ids[p]; ok {
			ids = append(ids, id)
			continue
		}
		if m.byteFallback {
			ok := true
			for k := 0; k < len(p); k++ {
				ok = ok && m.byteIDs[p[k]] >= 0
			}
			if ok {
				for k := 0; k < len(p); k++ {
					ids = append(ids, m.byteIDs[p[k]])
				}
				continue
			}
		}
		if m.unkID < 0 {
			return dst, fmt.Errorf("tokenizer: %q needs the unknown piece, and the Unigram model has no unk_id", p)
		}
		ids = append(ids, m.unkID)
	}
	m.cache.put(s, ids)
	return append(dst, ids...), nil
}

// viterbi returns the best segmentation of s into piece strings, the
// unknown ones fused.
func (m *unigram) viterbi(s string) ([]string, error) {
	type node struct {
		id    int
		score float64
		start int // -1: not reached yet
	}
	best := make([]node, len(s)+1)
	for i := range best {
		best[i].start = -1
	}
	unkScore := m.minScore - unkPenalty
	for start := 0; start < len(s); {
		here := best[start].score
		_, mblen := utf8.DecodeRuneInString(s[start:])
		single := false
		m.trie.prefixes(s[start:], func(n int, id int32) {
			t := &best[start+n]
			if score := m.scores[id] + here; t.start < 0 || score > t.score {
				t.score, t.start, t.id = score, start, int(id)
			}
			if n == mblen {
				single = true
			}
		})
		if !single {
			t := &best[start+mblen]
			if score := unkScore + here; t.start < 0 || score > t.score {
				if m.unkID < 0 {
					return nil, fmt.Errorf("tokenizer: %q is not in the Unigram vocabulary, which has no unk_id", s[start:start+mblen])
				}
				t.score, t.start, t.id = score, start, m.unkID
			}
		}
		start += mblen
	}
	var out []string
	unkEnd := -1 // end of the run of unknown pieces being fused
	for end := len(s); end > 0; {
		nd := best[end]
		if nd.id == m.unkID {
			if unkEnd < 0 {
				unkEnd = end
			}
		} else {
			if unkEnd >= 0 {
				out = append(out, s[end:unkEnd])
				unkEnd = -1
			}
			out = append(out, s[nd.start:end])
		}
		end = nd.start
	}
	if unkEnd >= 0 {
		out = append(out, s[:unkEnd])
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// byteTrie is a trie of byte strings with an id at the nodes that end
// one: the pieces of a Unigram model (Viterbi's common-prefix search) and
// the added tokens (their leftmost-longest matching).
type byteTrie struct {
	root  [256]int32       // child of the root by byte, 0: none
	edges map[uint64]int32 // (node << 8 | byte) -> child, for deeper nodes
	ids   []int32          // id of the string ending at node, -1: none
}

func (t *byteTrie) insert(s string, id int32) {
	if s == "" {
		return
	}
	if t.ids == nil {
		t.ids = []int32{-1} // node 0 is the root
		t.edges = map[uint64]int32{}
	}
	node := int32(0)
	for i := 0; i < len(s); i++ {
		var child int32
		if node == 0 {
			child = t.root[s[i]]
		} else {
			child = t.edges[uint64(node)<<8|uint64(s[i])]
		}
		if child == 0 {
			child = int32(len(t.ids))
			t.ids = append(t.ids, -1)
			if node == 0 {
				t.root[s[i]] = child
			} else {
				t.edges[uint64(node)<<8|uint64(s[i])] = child
			}
		}
		node = child
	}
	t.ids[node] = id
}

// prefixes calls f with the length and id of each string in the trie
// that is a prefix of s, shortest first.
func (t *byteTrie) prefixes(s string, f func(n int, id int32)) {
	if t.ids == nil || s == "" {
		return
	}
	node := t.root[s[0]]
	for i := 1; node != 0; i++ {
		if id := t.ids[node]; id >= 0 {
			f(i, id)
		}
		if i == len(s) {
			return
		}
		node = t.edges[uint64(node)<<8|uint64(s[i])]
	}
}

// longest returns the length and id of the longest string in the trie
// that is a prefix of s; 0 and -1 if there is none.
func (t *byteTrie) longest(s string) (int, int32) {
	n, id := 0, int32(-1)
	if t.ids == nil || s == "" {
		return n, id
	}
	node := t.root[s[0]]
	for i := 1; node != 0; i++ {
		if x := t.ids[node]; x >= 0 {
			n, id = i, x
		}
		if i == len(s) {
			break
		}
		node = t.edges[uint64(node)<<8|uint64(s[i])]
	}
	return n, id
}

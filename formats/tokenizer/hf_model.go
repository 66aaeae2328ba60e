package tokenizer

import (
	"fmt"
	"strings"
	"sync"
)

// An hfModel turns one pre-token into ids (a tokenizer.json "model").
type hfModel interface {
	// tokenize appends the ids of the non-empty pre-token s to dst.
	tokenize(dst []int, s string) ([]int, error)
	// id returns the id of a vocabulary entry.
	id(token string) (int, bool)
	// token returns the vocabulary entry of id.
	token(id int) (string, bool)
	// size is the number of vocabulary entries (the Rust crate's
	// get_vocab_size: ids are usually 0..size-1, but may have holes).
	size() int
	// maxID is the largest id, -1 for an empty vocabulary.
	maxID() int
}

// maxHFID bounds the ids of a tokenizer.json, so that a corrupt file
// cannot make the loader allocate for billions of ids. The largest real
// vocabularies have about 2^18 entries.
const maxHFID = 1<<24 - 1

// vocabTable maps tokens to ids and back.
type vocabTable struct {
	ids    map[string]int
	tokens []string       // by id when dense
	sparse map[int]string // by id when the ids have big holes
	has    []bool         // whether tokens[id] is an entry (dense)
	max    int
}

// newVocabTable builds the table of vocab (token -> id), checking the ids.
// When two tokens share an id, the id decodes to the smaller token.
func newVocabTable(o *jobj, vocab map[string]int) (*vocabTable, error) {
	v := &vocabTable{ids: vocab, max: -1}
	for tok, id := range vocab {
		if id < 0 || id > maxHFID {
			return nil, o.errorf("vocab: %q has id %d, outside 0..%d", tok, id, maxHFID)
		}
		v.max = max(v.max, id)
	}
	if v.max+1 > 2*len(vocab)+1024 {
		v.sparse = make(map[int]string, len(vocab))
		for tok, id := range vocab {
			if old, dup := v.sparse[id]; !dup || tok < old {
				v.sparse[id] = tok
			}
		}
		return v, nil
	}
	v.tokens = make([]string, v.max+1)
	v.has = make([]bool, v.max+1)
	for tok, id := range vocab {
		if !v.has[id] || tok < v.tokens[id] {
			v.tokens[id], v.has[id] = tok, true
		}
	}
	return v, nil
}

func (v *vocabTable) id(token string) (int, bool) {
	id, ok := v.ids[token]
	return id, ok
}

func (v *vocabTable) token(id int) (string, bool) {
	if v.sparse != nil {
		s, ok := v.sparse[id]
		return s, ok
	}
	if id < 0 || id >= len(v.tokens) || !v.has[id] {
		return "", false
	}
	return v.tokens[id], true
}

func (v *vocabTable) size() int  { return len(v.ids) }
func (v *vocabTable) maxID() int { return v.max }

// byteTokenIDs returns the ids of the byte-fallback tokens "<0x00>" ..
// "<0xFF>" (-1 where absent).
func byteTokenIDs(id func(string) (int, bool)) (ids [256]int) {
	for b := range ids {
		ids[b] = -1
		if i, ok := id(byteToken(byte(b))); ok {
			ids[b] = i
		}
	}
	return ids
}

// byteToken is the byte-fallback token of b: "<0x0A>" for '\n'.
func byteToken(b byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})
}

// parseModel reads the "model" object. Without a "type" (the old
// format) the kind is inferred as the Rust crate's untagged
// deserialization does, trying in turn: BPE (vocab object and merges),
// WordPiece (vocab object, unk_token, continuing_subword_prefix and
// max_input_chars_per_word), WordLevel (vocab object and unk_token),
// Unigram (vocab list).
func parseModel(o *jobj) (hfModel, error) {
	if o == nil {
		return nil, fmt.Errorf("%w: model is missing", ErrFormat)
	}
	typ := ""
	if _, ok := o.get("type"); ok {
		var err error
		if typ, err = o.typ(); err != nil {
			return nil, err
		}
	} else {
		raw, _ := o.get("vocab")
		isObject := len(raw) > 0 && strings.TrimSpace(string(raw[:min(len(raw), 16)]))[0] == '{'
		_, hasMerges := o.get("merges")
		_, hasUnk := o.get("unk_token")
		_, hasPrefix := o.get("continuing_subword_prefix")
		_, hasMax := o.get("max_input_chars_per_word")
		switch {
		case len(raw) == 0:
			return nil, o.errorf("no vocab")
		case isObject && hasMerges:
			typ = "BPE"
		case isObject && hasUnk && hasPrefix && hasMax:
			typ = "WordPiece"
		case isObject && hasUnk:
			typ = "WordLevel"
		case !isObject:
			typ = "Unigram"
		default:
			return nil, o.errorf("no type, and the fields fit no model (BPE needs merges, WordPiece and WordLevel unk_token)")
		}
	}
	switch typ {
	case "BPE":
		return parseBPE(o)
	case "WordPiece":
		return parseWordPiece(o)
	case "WordLevel":
		return parseWordLevel(o)
	case "Unigram":
		return parseUnigram(o)
	}
	return nil, o.errorf("unknown model type %q", typ)
}

func parseVocabObject(o *jobj) (*vocabTable, error) {
	if _, ok := o.get("vocab"); !ok {
		return nil, o.errorf("vocab is missing")
	}
	var vocab map[string]int
	if err := o.decode("vocab", &vocab, "an object of token ids"); err != nil {
		return nil, err
	}
	return newVocabTable(o, vocab)
}

// wordCache caches the ids of pre-tokens shorter than maxCachedWord
// bytes, up to cacheCapacity entries (then it stops growing), like the
// Rust crate's BPE and Unigram caches. It is safe for concurrent use.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	maxCachedWord = 256
	cacheCapacity = 1 << 16
)

func (c *wordCache) get(s string) ([]int, bool) {
	if len(s) >= maxCachedWord {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[s]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(s string, ids []int) {
	if len(s) >= maxCachedWord {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string][]int{}
	}
	if len(c.m) < cacheCapacity {
		c.m[strings.Clone(s)] = ids
	}
	c.mu.Unlock()
}

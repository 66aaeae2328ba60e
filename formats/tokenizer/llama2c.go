package tokenizer

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Llama2c is a llama2.c tokenizer.bin: int32 max_token_length, then per
// id a float32 score, an int32 length and that many bytes of piece.
// Ids 0, 1, 2 are <unk>, BOS and EOS; pieces "<0xNN>" stand for the byte
// NN; SentencePiece's ▁ is stored as a plain space.
type Llama2c struct {
	pieces  []string
	scores  []float32
	lookup  map[string]int
	byteIDs [256]int // id of the piece "<0xNN>", -1 if absent
	maxLen  int
}

// The special ids of the llama2.c format.
const (
	llamaUnk = 0
	llamaBOS = 1
	llamaEOS = 2
)

// ParseLlama2c reads a llama2.c tokenizer.bin.
func ParseLlama2c(data []byte) (*Llama2c, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a llama2.c tokenizer.bin", ErrFormat, len(data))
	}
	t := &Llama2c{lookup: map[string]int{}, maxLen: int(int32(binary.LittleEndian.Uint32(data)))}
	if t.maxLen < 1 || t.maxLen > 1<<16 {
		return nil, fmt.Errorf("%w: max_token_length %d is not that of a llama2.c tokenizer.bin", ErrFormat, t.maxLen)
	}
	for i := range t.byteIDs {
		t.byteIDs[i] = -1
	}
	for off := 4; off < len(data); {
		if len(data)-off < 8 {
			return nil, fmt.Errorf("%w: truncated entry for id %d at byte %d", ErrFormat, len(t.pieces), off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int(int32(binary.LittleEndian.Uint32(data[off+4:])))
		off += 8
		if n < 0 || n > t.maxLen || n > len(data)-off {
			return nil, fmt.Errorf("%w: id %d has a piece of %d bytes (max_token_length %d, %d bytes left)", ErrFormat, len(t.pieces), n, t.maxLen, len(data)-off)
		}
		if math.IsNaN(float64(score)) {
			return nil, fmt.Errorf("%w: id %d has a NaN score", ErrFormat, len(t.pieces))
		}
		piece := string(data[off : off+n])
		off += n
		id := len(t.pieces)
		t.pieces = append(t.pieces, piece)
		t.scores = append(t.scores, score)
		if _, dup := t.lookup[piece]; !dup {
			t.lookup[piece] = id
		}
		if len(piece) == 6 && strings.HasPrefix(piece, "<0x") && piece[5] == '>' {
			if b, err := strconv.ParseUint(piece[3:5], 16, 8); err == nil && t.byteIDs[b] < 0 {
				t.byteIDs[b] = id
			}
		}
	}
	if len(t.pieces) < 3 {
		return nil, fmt.Errorf("%w: %d pieces; a llama2.c tokenizer has <unk>, BOS and EOS first", ErrFormat, len(t.pieces))
	}
	return t, nil
}

// VocabSize implements Tokenizer.
func (t *Llama2c) VocabSize() int { return len(t.pieces) }

// Special implements Tokenizer: bos 1, eos 2, unk 0.
func (t *Llama2c) Special(role string) (int, bool) {
	switch role {
	case "bos":
		return llamaBOS, true
	case "eos":
		return llamaEOS, true
	case "unk":
		return llamaUnk, true
	}
	return 0, false
}

// Piece returns the stored piece of id.
func (t *Llama2c) Piece(id int) string { return t.pieces[id] }

// Encode implements Tokenizer with llama2.c run.c's algorithm: BOS when
// addSpecial, then (for non-empty text) the dummy prefix " ", then the id
// of each UTF-8 character that is a piece, or the ids of its bytes
// (byte + 3, run.c's byte fallback), then repeatedly the merge of the
// adjacent pair whose concatenation is the piece with the highest score,
// the leftmost on ties, until none is left. run.c scans all pairs per
// merge (quadratic); here a heap of candidate pairs gives the same merges
// in O(n log n). It never fails.
func (t *Llama2c) Encode(text string, addSpecial bool) ([]int, error) {
	var ids []int
	if addSpecial {
		ids = append(ids, llamaBOS)
	}
	if text != "" {
		if sp, ok := t.lookup[" "]; ok {
			ids = append(ids, sp)
		}
	}
	// run.c reads a character as a leading byte and up to 3 continuation
	// bytes (str_len < 4), whatever the bytes are.
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			ids = append(ids, id)
		} else {
			for k := i; k < j; k++ {
				ids = append(ids, int(text[k])+3)
			}
		}
		i = j
	}
	return t.merge(ids), nil
}

// mergeNode is a token in the doubly linked list merge works on; pos is
// its index before any merge (list order), so it breaks ties leftmost.
type mergeNode struct {
	id         int
	prev, next int // indices into the node slice, -1 at the ends
	alive      bool
	gen        int // bumped when id changes
}

type mergeCand struct {
	score       float32
	left, right int // node indices
	lgen, rgen  int
	id          int // the merged piece
}

type mergeHeap []mergeCand

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge applies run.c's merges to ids.
func (t *Llama2c) merge(ids []int) []int {
	if len(ids) < 2 {
		return ids
	}
	nodes := make([]mergeNode, len(ids))
	for i, id := range ids {
		nodes[i] = mergeNode{id: id, prev: i - 1, next: i + 1, alive: true}
	}
	nodes[len(nodes)-1].next = -1
	h := &mergeHeap{}
	push := func(l int) {
		r := nodes[l].next
		if r < 0 {
			return
		}
		if id, ok := t.lookup[t.pieces[nodes[l].id]+t.pieces[nodes[r].id]]; ok {
			heap.Push(h, mergeCand{score: t.scores[id], left: l, right: r, lgen: nodes[l].gen, rgen: nodes[r].gen, id: id})
		}
	}
	for i := range nodes {
		push(i)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(mergeCand)
		l, r := &nodes[c.left], &nodes[c.right]
		if !l.alive || !r.alive || l.next != c.right || l.gen != c.lgen || r.gen != c.rgen {
			continue // stale
		}
		l.id, l.gen = c.id, l.gen+1
		r.alive = false
		l.next = r.next
		if r.next >= 0 {
			nodes[r.next].prev = c.left
		}
		if l.prev >= 0 {
			push(l.prev)
		}
		push(c.left)
	}
	out := ids[:0]
	for i := 0; i >= 0; i = nodes[i].next {
		out = append(out, nodes[i].id)
	}
	return out
}

// Decode implements Tokenizer as run.c's decode does, piece by piece: the
// leading space of a piece that follows BOS (or starts the ids) is
// dropped, and "<0xNN>" pieces become the byte NN. Special ids (0, 1, 2)
// decode as "<unk>", "<s>", "</s>", or to nothing with skipSpecial. Ids
// outside the vocabulary decode to nothing.
func (t *Llama2c) Decode(ids []int, skipSpecial bool) string {
	var b strings.Builder
	prev := llamaBOS
	for _, id := range ids {
		if id < 0 || id >= len(t.pieces) {
			continue
		}
		switch id {
		case llamaUnk, llamaBOS, llamaEOS:
			if !skipSpecial {
				b.WriteString([...]string{"<unk>", "<s>", "</s>"}[id])
			}
			prev = id
			continue
		}
		piece := t.pieces[id]
		if prev == llamaBOS && strings.HasPrefix(piece, " ") {
			piece = piece[1:]
		}
		if len(piece) == 6 && strings.HasPrefix(piece, "<0x") && piece[5] == '>' {
			if v, err := strconv.ParseUint(piece[3:5], 16, 8); err == nil {
				b.WriteByte(byte(v))
				prev = id
				continue
			}
		}
		b.WriteString(piece)
		prev = id
	}
	return b.String()
}

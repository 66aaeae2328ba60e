package train

import (
	"fmt"
	"math"

	"github.com/distill-ml/distill/internal/fastmath"
	"gonum.org/v1/gonum/blas"
)

// Decoder runs a Transformer for inference one call at a time over a
// batch of sequences, keeping each layer's keys (after RoPE) and values of
// every token fed so far: the KV cache. A call feeds s new tokens to each
// of the B rows and returns their next-token logits, so generating costs
// one token's forward pass per step instead of the whole prefix's.
//
// It computes exactly Transformer.Forward's function (see Transformer),
// row by row, with the attention of query t of row b over the cached
// slots j of that row restricted by a mask:
//
//	S_tj = q̃_t·k̃_j / √HeadDim  for j ≤ past + t and mask[b, j] = 1
//	P_t· = softmax over those j (all zero when there is none: a pad query
//	       with no key gets context 0, finite and meaningless)
//	O_t  = Σ_j P_tj v_j
//
// where q̃ and k̃ are rotated at the positions given (RoPE), or the learned
// table P[pos] is added to the embedding (PosLearned). With an all-ones
// mask and positions past..past+s−1 a prefill followed by single tokens
// gives Forward's rows (Forward is causal) up to float32 rounding.
//
// Positions must be below Cfg.T: the RoPE tables and the learned table
// have T rows, and the model was trained on no further position. The cache
// itself grows as needed (padding counts as cache slots). Every matrix
// product goes through sgemm. A Decoder has its own norm and activation
// layers over the model's parameters, so decoding leaves Forward's and
// Backward's state alone and several Decoders of one model may run at once
// (each by one goroutine at a time); the weights must not change meanwhile.
type Decoder struct {
	m    *Transformer
	B    int
	past int
	cap  int         // cache slots per row
	k, v [][]float32 // per layer [B][cap][KVHeads·HeadDim]

	attnNorm, mlpNorm []Normalizer
	norm              Normalizer
	glu               *SwiGLU
	act               *GELUTanh

	h, a, qkv, ctx, mid, mm, gu, s, hn, logits Mat
	sc                                         []float32 // attention scores, [B·KVHeads][decodeBlock·keys]
	pos                                        []int64
	mask                                       []int64

	layer, n, keys int // the attention call's layer, new tokens per row and keys per row
	attnFn         func(lo, hi int)
}

// decodeBlock is the number of query rows of one attention product: a
// prefill's scores take decodeBlock × keys values per row and KV head.
const decodeBlock = 64

// attnGrainWork is about the multiply-adds of attention worth a thread of
// their own.
const attnGrainWork = 1 << 15

// NewDecoder returns a decoder of m for batch rows with nothing fed yet.
func NewDecoder(m *Transformer, batch int) (*Decoder, error) {
	if batch < 1 {
		return nil, fmt.Errorf("train: decoder batch %d: want at least 1", batch)
	}
	c := m.Cfg
	d := &Decoder{m: m, B: batch, k: make([][]float32, c.Layers), v: make([][]float32, c.Layers), norm: cloneNorm(m.Norm)}
	for _, b := range m.Blocks {
		d.attnNorm = append(d.attnNorm, cloneNorm(b.AttnNorm))
		d.mlpNorm = append(d.mlpNorm, cloneNorm(b.MLPNorm))
	}
	if c.MLP == MLPGELU {
		d.act = NewGELUTanh(c.FFN)
	} else {
		d.glu = NewSwiGLU(c.FFN)
	}
	d.attnFn = d.attendGroups
	return d, nil
}

// cloneNorm returns a norm layer of n's kind over n's parameters.
func cloneNorm(n Normalizer) Normalizer {
	switch n := n.(type) {
	case *RMSNorm:
		c := NewRMSNorm("", n.Size)
		c.Gamma = n.Gamma
		return c
	case *LayerNorm:
		c := NewLayerNorm("", n.Size, n.Act)
		c.Gamma, c.Beta = n.Gamma, n.Beta
		return c
	}
	panic(fmt.Sprintf("train: Decoder: norm %T", n))
}

// Past returns the number of tokens fed to each row so far, padding
// included.
func (d *Decoder) Past() int { return d.past }

// Reset forgets every token fed, keeping the cache's storage.
func (d *Decoder) Reset() { d.past = 0 }

// Step feeds s new tokens to each row and returns their logits
// [B, s, Vocab], valid until the next Step (lm.Session.Step's contract):
// ids [B, s], mask [B, past+s] (1 attend, 0 padding) and positions pos
// [B, s], each in [0, Cfg.T). On an error nothing is fed.
func (d *Decoder) Step(ids []int64, s int, mask, pos []int64) ([]float32, error) {
	c, B := d.m.Cfg, d.B
	total := d.past + s
	switch {
	case s < 1:
		return nil, fmt.Errorf("train: decoder step of %d tokens: want at least 1", s)
	case len(ids) != B*s || len(pos) != B*s:
		return nil, fmt.Errorf("train: decoder step: %d ids and %d positions for %d rows of %d tokens", len(ids), len(pos), B, s)
	case len(mask) != B*total:
		return nil, fmt.Errorf("train: decoder step: a mask of %d values for %d rows of %d tokens (%d fed before, %d new)", len(mask), B, total, d.past, s)
	}
	for i, id := range ids {
		if id < 0 || id >= int64(c.Vocab) {
			return nil, fmt.Errorf("train: decoder step: token id %d (row %d) out of range [0, %d)", id, i/s, c.Vocab)
		}
		if p := pos[i]; p < 0 || p >= int64(c.T) {
			return nil, fmt.Errorf("train: decoder step: position %d (row %d) out of range [0, %d): the model has %d positions", p, i/s, c.T, c.T)
		}
	}
	for i, v := range mask {
		if v != 0 && v != 1 {
			return nil, fmt.Errorf("train: decoder step: mask value %d (row %d): want 0 or 1", v, i/total)
		}
	}
	d.reserve(total)
	n, D, hd, F := B*s, c.Dim, c.HeadDim(), c.FFN
	qw, kw := c.Heads*hd, c.KVHeads*hd
	W := qw + 2*kw
	d.n, d.keys, d.mask, d.pos = s, total, mask, pos
	d.h, d.a, d.qkv, d.ctx = mat(d.h, n, D), mat(d.a, n, D), mat(d.qkv, n, W), mat(d.ctx, n, qw)
	d.mid, d.mm, d.s = mat(d.mid, n, D), mat(d.mm, n, D), mat(d.s, n, F)
	m := d.m
	for r, id := range ids {
		h := d.h.Data[r*D : (r+1)*D]
		copy(h, m.Embed.Data[int(id)*D:(int(id)+1)*D])
		if m.Pos != nil {
			p := int(pos[r])
			for j, v := range m.Pos.Data[p*D : (p+1)*D] {
				h[j] += v
			}
		}
	}
	for l, b := range m.Blocks {
		d.attnNorm[l].Forward(d.a, d.h)
		b.qkvForward(d.qkv.Data, d.a.Data, n, D, qw, kw)
		if m.Pos == nil {
			rope := b.Attn.RoPE
			rope.rotateAt(d.qkv.Data, n, W, c.Heads, pos)
			rope.rotateAt(d.qkv.Data[qw:], n, W, c.KVHeads, pos)
		}
		for r := range n { // append this call's keys and values to the cache
			slot := (r/s)*d.cap + d.past + r%s
			row := d.qkv.Data[r*W : (r+1)*W]
			copy(d.k[l][slot*kw:(slot+1)*kw], row[qw:qw+kw])
			copy(d.v[l][slot*kw:(slot+1)*kw], row[qw+kw:])
		}
		d.layer = l
		d.sc = grow(d.sc, B*c.KVHeads*scoreRows(s, c.Heads/c.KVHeads)*total)
		// Tasks of little work (a few cached keys) run on one thread: a
		// hand-off to another costs more than they do.
		work := s * total * hd * 2 * (c.Heads / c.KVHeads)
		par().run(B*c.KVHeads, max(1, attnGrainWork/max(work, 1)), d.attnFn)
		copy(d.mid.Data, d.h.Data[:n*D])
		sgemm(blas.NoTrans, blas.Trans, n, D, qw, 1, d.ctx.Data, qw, b.Wo.Data, qw, 1, d.mid.Data, D)
		d.mlpNorm[l].Forward(d.mm, d.mid)
		d.gu = b.mlpForward(d.s, d.gu, d.mm, d.glu, d.act, n, D, F)
		copy(d.h.Data, d.mid.Data[:n*D])
		sgemm(blas.NoTrans, blas.Trans, n, D, F, 1, d.s.Data, F, b.Wd.Data, F, 1, d.h.Data, D)
	}
	d.hn, d.logits = mat(d.hn, n, D), mat(d.logits, n, c.Vocab)
	d.norm.Forward(d.hn, d.h)
	sgemm(blas.NoTrans, blas.Trans, n, c.Vocab, D, 1, d.hn.Data, D, m.Head.Data, D, 0, d.logits.Data, c.Vocab)
	d.past = total
	d.mask, d.pos = nil, nil
	return d.logits.Data[:n*c.Vocab], nil
}

// reserve makes room for total slots per row in every layer's cache,
// keeping what is cached (capacity doubles, so growing one token at a
// time copies each slot O(1) times on average).
func (d *Decoder) reserve(total int) {
	if total <= d.cap {
		return
	}
	kw := d.m.Cfg.KVHeads * d.m.Cfg.HeadDim()
	nc := max(total, 2*d.cap, 16)
	for l := range d.k {
		for _, cache := range []*[]float32{&d.k[l], &d.v[l]} {
			next := make([]float32, d.B*nc*kw)
			for b := range d.B {
				copy(next[b*nc*kw:], (*cache)[b*d.cap*kw:(b*d.cap+d.past)*kw])
			}
			*cache = next
		}
	}
	d.cap = nc
}

// attendGroups runs tasks [lo, hi) of a Step's attention for layer
// d.layer: row b = task / KVHeads, KV group g = task mod KVHeads; each task
// writes only its own scores and context columns.
func (d *Decoder) attendGroups(lo, hi int) {
	c := d.m.Cfg
	hd, s, total, past := c.HeadDim(), d.n, d.keys, d.keys-d.n
	qw, kw := c.Heads*hd, c.KVHeads*hd
	W := qw + 2*kw
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := c.Heads / c.KVHeads
	// The query rows of one product: a block of a head's tokens, or for a
	// single token the group's heads (one product for the group, the keys
	// packed once).
	heads, ldq, ldo := 1, W, qw
	if s == 1 {
		heads, ldq, ldo = group, hd, hd
	}
	per := scoreRows(s, group)
	for task := lo; task < hi; task++ {
		b, g := task/c.KVHeads, task%c.KVHeads
		k := d.k[d.layer][b*d.cap*kw+g*hd:]
		v := d.v[d.layer][b*d.cap*kw+g*hd:]
		mask := d.mask[b*total : (b+1)*total]
		sc := d.sc[task*per*total : (task+1)*per*total]
		for h := g * group; h < (g+1)*group; h += heads {
			q := d.qkv.Data[b*s*W+h*hd:]
			out := d.ctx.Data[b*s*qw+h*hd:]
			// Query tokens [t0, t1) read keys [0, past + t1) only.
			for t0 := 0; t0 < s; t0 += decodeBlock {
				t1 := min(t0+decodeBlock, s)
				keys, rows := past+t1, (t1-t0)*heads
				sgemm(blas.NoTrans, blas.Trans, rows, keys, hd, scale, q[t0*ldq:], ldq, k, kw, 0, sc, keys)
				for r := range rows {
					t := t0 + r/heads
					row := sc[r*keys : (r+1)*keys]
					maskedSoftmax(row[:past+t+1], mask[:past+t+1])
					clear(row[past+t+1:])
				}
				sgemm(blas.NoTrans, blas.NoTrans, rows, hd, keys, 1, sc, keys, v, kw, 0, out[t0*ldo:], ldo)
			}
		}
	}
}

// scoreRows is the number of query rows of one attention product of s
// new tokens per row and group query heads per KV head (attendGroups).
func scoreRows(s, group int) int {
	if s == 1 {
		return group
	}
	return min(s, decodeBlock)
}

// maskedSoftmax replaces x by the softmax of its values where mask is 1,
// and 0 where it is 0 (all 0 when mask has no 1). A mask of zeros then
// ones (no padding, or left padding) takes softmaxInPlace over the ones,
// exactly as Attention's unmasked rows; any other mask a float32 loop
// with fastmath.Exp32.
func maskedSoftmax(x []float32, mask []int64) {
	f := 0
	for f < len(mask) && mask[f] == 0 {
		f++
	}
	if f == len(mask) {
		clear(x)
		return
	}
	suffix := true
	for _, v := range mask[f:] {
		suffix = suffix && v == 1
	}
	if suffix {
		clear(x[:f])
		softmaxInPlace(x[f:])
		return
	}
	m := float32(math.Inf(-1))
	for j, v := range x {
		if mask[j] == 1 {
			m = max(m, v)
		}
	}
	var sum float32
	for j, v := range x {
		if mask[j] == 1 {
			x[j] = fastmath.Exp32(v - m)
			sum += x[j]
		} else {
			x[j] = 0
		}
	}
	fastmath.Scale(x, 1/sum)
}

// rotateAt rotates in place, in rows of stride values, the first
// heads·HeadDim values of each of rows rows of x by the angles of position
// pos[row] (RoPE's forward, with the position given instead of row mod T;
// every position below T).
func (r *RoPE) rotateAt(x []float32, rows, stride, heads int, pos []int64) {
	for row := range rows {
		r.rotateRow(x, x, row*stride, heads, int(pos[row]), 1)
	}
}

package train

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// TransformerConfig describes a decoder-only transformer: Llama-style by
// default, with GPT-2's choices as options (Norm, MLP, Pos; the zero value
// of each is Llama's).
type TransformerConfig struct {
	Vocab, Dim, Layers int
	Heads, KVHeads     int // query and key/value heads; Dim a multiple of Heads, Heads of KVHeads
	FFN                int // MLP hidden size
	T                  int // tokens per sequence (RoPE positions, or rows of the learned table)
	RoPETheta          float64
	Untied             bool   // a separate lm_head; by default the classifier is the embedding
	Norm               string // NormRMS ("" too) or NormLayer
	MLP                string // MLPSwiGLU ("" too) or MLPGELU
	Pos                string // PosRoPE ("" too) or PosLearned
}

// The options of TransformerConfig: Llama's (the defaults) and GPT-2's.
const (
	NormRMS    = "rmsnorm"   // RMSNorm, a gain only (Llama)
	NormLayer  = "layernorm" // LayerNorm, gain and bias, ε = LayerNormEps (GPT-2)
	MLPSwiGLU  = "swiglu"    // down(silu(gate(x))·up(x)) (Llama)
	MLPGELU    = "gelu"      // down(GELUTanh(up(x))) (GPT-2's MLP without its biases)
	PosRoPE    = "rope"      // rotary queries and keys (Llama)
	PosLearned = "learned"   // a learned [T, Dim] table added to the token embedding (GPT-2's wpe)
)

// HeadDim is Dim / Heads.
func (c TransformerConfig) HeadDim() int { return c.Dim / c.Heads }

// withDefaults returns c with the empty options and RoPETheta set to
// their defaults.
func (c TransformerConfig) withDefaults() TransformerConfig {
	if c.RoPETheta == 0 {
		c.RoPETheta = RoPETheta
	}
	c.Norm = cmp.Or(c.Norm, NormRMS)
	c.MLP = cmp.Or(c.MLP, MLPSwiGLU)
	c.Pos = cmp.Or(c.Pos, PosRoPE)
	return c
}

// Llama reports whether c is a Llama (RMSNorm, SwiGLU, RoPE; tied or
// not), which Hugging Face's LlamaForCausalLM computes.
func (c TransformerConfig) Llama() bool {
	c = c.withDefaults()
	return c.Norm == NormRMS && c.MLP == MLPSwiGLU && c.Pos == PosRoPE
}

// Variant names c's options, e.g. "norm layernorm, mlp gelu, pos learned".
func (c TransformerConfig) Variant() string {
	c = c.withDefaults()
	return fmt.Sprintf("norm %s, mlp %s, pos %s", c.Norm, c.MLP, c.Pos)
}

func (c TransformerConfig) check() error {
	c = c.withDefaults()
	switch {
	case c.Norm != NormRMS && c.Norm != NormLayer:
		return fmt.Errorf("train: transformer norm %q: want %s or %s", c.Norm, NormRMS, NormLayer)
	case c.MLP != MLPSwiGLU && c.MLP != MLPGELU:
		return fmt.Errorf("train: transformer mlp %q: want %s or %s", c.MLP, MLPSwiGLU, MLPGELU)
	case c.Pos != PosRoPE && c.Pos != PosLearned:
		return fmt.Errorf("train: transformer position embedding %q: want %s or %s", c.Pos, PosRoPE, PosLearned)
	}
	if c.Vocab < 2 || c.Dim < 1 || c.Layers < 1 || c.Heads < 1 || c.KVHeads < 1 || c.FFN < 1 || c.T < 1 ||
		c.Dim%c.Heads != 0 || c.Heads%c.KVHeads != 0 || (c.Pos == PosRoPE && c.HeadDim()%2 != 0) {
		return fmt.Errorf("train: transformer %+v: want vocab ≥ 2, dim a multiple of heads (with an even head size for RoPE), heads a multiple of KV heads, all ≥ 1", c)
	}
	return nil
}

// Normalizer is a Transformer's per-token normalization: *RMSNorm or
// *LayerNorm (with Identity).
type Normalizer interface {
	Forward(dst, x Mat)
	Backward(dx, dy Mat)
	Init()
	Params() []*Param
}

// newNorm returns the normalization of kind over size values, its
// parameters named name.weight (and name.bias for LayerNorm).
func newNorm(kind, name string, size int) Normalizer {
	if kind == NormLayer {
		return NewLayerNorm(name, size, Identity)
	}
	return NewRMSNorm(name, size)
}

// Transformer is a decoder with its parameters under Hugging Face's names.
// By default it is a Llama (Hugging Face's LlamaForCausalLM):
//
//	h⁰ = E[ids]                                          model.embed_tokens.weight [V, D]
//	for each layer l:                                    model.layers.l.
//	  a = RMSNorm(hˡ)                                    input_layernorm.weight
//	  [q|k|v] = a·[W_q; W_k; W_v]ᵀ                       self_attn.{q,k,v}_proj.weight
//	  m̃ = hˡ + Attention([q|k|v])·W_oᵀ                  self_attn.o_proj.weight
//	  hˡ⁺¹ = m̃ + SwiGLU(RMSNorm(m̃)·[W_g; W_u]ᵀ)·W_dᵀ  post_attention_layernorm, mlp.{gate,up,down}_proj
//	logits = RMSNorm(hᴸ)·Eᵀ                              model.norm.weight; lm_head.weight [V, D] when Untied
//
// with RoPE on q and k inside Attention. GPT-2's choices replace, each on
// its own:
//
//   - Norm NormLayer: every RMSNorm by a LayerNorm (ε 1e-5) with gain and
//     bias, the bias named NAME.bias (e.g. model.layers.l.input_layernorm.bias);
//   - MLP MLPGELU: the SwiGLU MLP by GELUTanh(m·W_uᵀ)·W_dᵀ, FFN hidden
//     units, mlp.{up,down}_proj.weight, no gate and no biases;
//   - Pos PosLearned: RoPE by a learned table P, h⁰ = E[ids] + P[pos],
//     model.embed_positions.weight [T, D].
//
// The projections have no biases. Backward runs the same steps in reverse,
// each product's gradients through sgemm next to the forward's
// (dX = dY·W, dW = dYᵀ·X); the tied embedding sums its classifier and
// lookup gradients, and the position table's gradient is the sum of the
// embedding gradients at its position.
type Transformer struct {
	Cfg    TransformerConfig
	Embed  *Param
	Pos    *Param // PosLearned's [T, Dim] table, else nil
	Head   *Param // == Embed unless Cfg.Untied
	Norm   Normalizer
	Blocks []*Block

	ids              []int32
	rows             int
	hs               []Mat // residual stream entering each block, and after the last
	hn, dh, dhn, tmp Mat
}

// Block is one transformer layer. Wg and GLU are nil in a GELU MLP, Act
// in a SwiGLU one.
type Block struct {
	AttnNorm, MLPNorm  Normalizer
	Wq, Wk, Wv, Wo     *Param
	Wg, Wu, Wd         *Param
	Attn               *Attention
	GLU                *SwiGLU
	Act                *GELUTanh
	a, qkv, ctx, mid   Mat
	m, gu, s           Mat
	dqkv, dctx, dgu    Mat
	ds, dmid, da, dtmp Mat
}

// params lists the block's parameters in Hugging Face's state_dict order.
func (b *Block) params() []*Param {
	ps := append(b.AttnNorm.Params(), b.Wq, b.Wk, b.Wv, b.Wo)
	ps = append(ps, b.MLPNorm.Params()...)
	if b.Wg != nil {
		ps = append(ps, b.Wg)
	}
	return append(ps, b.Wu, b.Wd)
}

// NewTransformer returns a transformer of cfg with unassigned parameters
// (NewParams(t.Params()...) then Init). Its Cfg has the defaults filled in.
func NewTransformer(cfg TransformerConfig) (*Transformer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	D, hd, V, F := cfg.Dim, cfg.HeadDim(), cfg.Vocab, cfg.FFN
	t := &Transformer{Cfg: cfg, Embed: &Param{Name: "model.embed_tokens.weight", Shape: []int{V, D}}, Norm: newNorm(cfg.Norm, "model.norm", D)}
	t.Head = t.Embed
	if cfg.Untied {
		t.Head = &Param{Name: "lm_head.weight", Shape: []int{V, D}}
	}
	var rope *RoPE
	if cfg.Pos == PosLearned {
		t.Pos = &Param{Name: "model.embed_positions.weight", Shape: []int{cfg.T, D}}
	} else {
		rope = NewRoPE(cfg.T, cfg.Heads, hd, cfg.RoPETheta)
	}
	w := func(name string, out, in int) *Param { return &Param{Name: name, Shape: []int{out, in}} }
	for l := range cfg.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		b := &Block{
			AttnNorm: newNorm(cfg.Norm, p+"input_layernorm", D), MLPNorm: newNorm(cfg.Norm, p+"post_attention_layernorm", D),
			Wq: w(p+"self_attn.q_proj.weight", cfg.Heads*hd, D), Wk: w(p+"self_attn.k_proj.weight", cfg.KVHeads*hd, D),
			Wv: w(p+"self_attn.v_proj.weight", cfg.KVHeads*hd, D), Wo: w(p+"self_attn.o_proj.weight", D, cfg.Heads*hd),
			Wu: w(p+"mlp.up_proj.weight", F, D), Wd: w(p+"mlp.down_proj.weight", D, F),
			Attn: NewAttention(cfg.T, cfg.Heads, cfg.KVHeads, hd, rope),
		}
		if cfg.MLP == MLPGELU {
			b.Act = NewGELUTanh(F)
		} else {
			b.Wg, b.GLU = w(p+"mlp.gate_proj.weight", F, D), NewSwiGLU(F)
		}
		t.Blocks = append(t.Blocks, b)
	}
	return t, nil
}

// Params lists every parameter once, in Hugging Face's state_dict order
// (the position table after the token embedding, as GPT-2's wpe after wte).
func (t *Transformer) Params() []*Param {
	ps := []*Param{t.Embed}
	if t.Pos != nil {
		ps = append(ps, t.Pos)
	}
	for _, b := range t.Blocks {
		ps = append(ps, b.params()...)
	}
	ps = append(ps, t.Norm.Params()...)
	if t.Cfg.Untied {
		ps = append(ps, t.Head)
	}
	return ps
}

// Init draws every weight from N(0, 0.02²) (GPT-2's and Llama's
// initializer_range; the position table too, as Hugging Face's GPT-2
// initializes wpe), the residual output projections o_proj and
// down_proj from N(0, (0.02/√(2·Layers))²) (GPT-2's scaling, so the
// residual stream's variance does not grow with depth), and sets the
// norms' gains to 1 and LayerNorm's biases to 0.
func (t *Transformer) Init(rng *rand.Rand) {
	normal := func(p *Param, std float64) {
		for i := range p.Data {
			p.Data[i] = float32(rng.NormFloat64() * std)
		}
	}
	const std = 0.02
	res := std / math.Sqrt(2*float64(t.Cfg.Layers))
	normal(t.Embed, std)
	if t.Cfg.Untied {
		normal(t.Head, std)
	}
	if t.Pos != nil {
		normal(t.Pos, std)
	}
	for _, b := range t.Blocks {
		b.AttnNorm.Init()
		b.MLPNorm.Init()
		for _, p := range []*Param{b.Wq, b.Wk, b.Wv, b.Wg, b.Wu} {
			if p != nil {
				normal(p, std)
			}
		}
		normal(b.Wo, res)
		normal(b.Wd, res)
	}
	t.Norm.Init()
}

// mat returns m resized to rows×cols, reusing its storage.
func mat(m Mat, rows, cols int) Mat {
	return Mat{Rows: rows, Cols: cols, Data: grow(m.Data, rows*cols)}
}

// Forward computes the logits [len(ids), Vocab] of whole sequences of T
// token ids into dst and keeps what Backward needs.
func (t *Transformer) Forward(dst Mat, ids []int32) {
	c := t.Cfg
	if len(ids)%c.T != 0 || dst.Rows != len(ids) || dst.Cols != c.Vocab || len(dst.Data) < len(ids)*c.Vocab {
		panic(fmt.Sprintf("train: Transformer: %d ids (sequences of %d) → %d×%d logits", len(ids), c.T, dst.Rows, dst.Cols))
	}
	n, D, hd, F := len(ids), c.Dim, c.HeadDim(), c.FFN
	qw, kw := c.Heads*hd, c.KVHeads*hd
	W := qw + 2*kw
	t.ids, t.rows = ids, n
	if len(t.hs) != c.Layers+1 {
		t.hs = make([]Mat, c.Layers+1)
	}
	for i := range t.hs {
		t.hs[i] = mat(t.hs[i], n, D)
	}
	for r, id := range ids {
		if id < 0 || int(id) >= c.Vocab {
			panic(fmt.Sprintf("train: Transformer: token id %d out of range [0, %d)", id, c.Vocab))
		}
		h := t.hs[0].Data[r*D : (r+1)*D]
		copy(h, t.Embed.Data[int(id)*D:(int(id)+1)*D])
		if t.Pos != nil {
			p := r % c.T // the row's position in its sequence
			for j, v := range t.Pos.Data[p*D : (p+1)*D] {
				h[j] += v
			}
		}
	}
	for l, b := range t.Blocks {
		h := t.hs[l]
		b.a, b.qkv, b.ctx, b.mid = mat(b.a, n, D), mat(b.qkv, n, W), mat(b.ctx, n, qw), mat(b.mid, n, D)
		b.m, b.s = mat(b.m, n, D), mat(b.s, n, F)
		b.AttnNorm.Forward(b.a, h)
		b.qkvForward(b.qkv.Data, b.a.Data, n, D, qw, kw)
		b.Attn.Forward(b.ctx, b.qkv)
		copy(b.mid.Data, h.Data[:n*D])
		sgemm(blas.NoTrans, blas.Trans, n, D, qw, 1, b.ctx.Data, qw, b.Wo.Data, qw, 1, b.mid.Data, D)
		b.MLPNorm.Forward(b.m, b.mid)
		b.gu = b.mlpForward(b.s, b.gu, b.m, b.GLU, b.Act, n, D, F)
		out := t.hs[l+1]
		copy(out.Data, b.mid.Data[:n*D])
		sgemm(blas.NoTrans, blas.Trans, n, D, F, 1, b.s.Data, F, b.Wd.Data, F, 1, out.Data, D)
	}
	t.hn = mat(t.hn, n, D)
	t.Norm.Forward(t.hn, t.hs[c.Layers])
	sgemm(blas.NoTrans, blas.Trans, n, c.Vocab, D, 1, t.hn.Data, D, t.Head.Data, D, 0, dst.Data, c.Vocab)
}

// Hidden returns the residual stream of the last Forward after block l
// (1..Layers), or the token embeddings for l = 0: Hugging Face's
// hidden_states[l] (before the final norm), [tokens, Dim]. The storage is
// reused by the next Forward.
func (t *Transformer) Hidden(l int) Mat { return t.hs[l] }

// Backward computes every parameter's gradient (overwriting Grad) from
// dlogits, the loss gradient of the logits of the last Forward, plus, for
// each l with dHidden[l].Data set (hidden-state distillation), a loss
// gradient on Hidden(l). dHidden may be nil or shorter than Layers + 1.
func (t *Transformer) Backward(dlogits Mat, dHidden []Mat) {
	c := t.Cfg
	n, D, hd, F, V := t.rows, c.Dim, c.HeadDim(), c.FFN, c.Vocab
	if dlogits.Rows != n || dlogits.Cols != V {
		panic("train: Transformer: Backward shapes do not match Forward")
	}
	qw, kw := c.Heads*hd, c.KVHeads*hd
	W := qw + 2*kw
	t.dhn, t.dh, t.tmp = mat(t.dhn, n, D), mat(t.dh, n, D), mat(t.tmp, n, D)
	// logits = hn·Headᵀ
	sgemm(blas.NoTrans, blas.NoTrans, n, D, V, 1, dlogits.Data, V, t.Head.Data, D, 0, t.dhn.Data, D)
	sgemm(blas.Trans, blas.NoTrans, V, D, n, 1, dlogits.Data, V, t.hn.Data, D, 0, t.Head.Grad, D)
	t.Norm.Backward(t.dh, t.dhn)
	addHidden := func(l int) {
		if l < len(dHidden) && dHidden[l].Data != nil {
			for i, v := range dHidden[l].Data[:n*D] {
				t.dh.Data[i] += v
			}
		}
	}
	for l := c.Layers - 1; l >= 0; l-- {
		addHidden(l + 1)
		b := t.Blocks[l]
		b.ds, b.dmid = mat(b.ds, n, F), mat(b.dmid, n, D)
		b.dctx, b.dqkv, b.da, b.dtmp = mat(b.dctx, n, qw), mat(b.dqkv, n, W), mat(b.da, n, D), mat(b.dtmp, n, D)
		dh := t.dh
		// out = mid + s·W_dᵀ
		sgemm(blas.NoTrans, blas.NoTrans, n, F, D, 1, dh.Data, D, b.Wd.Data, F, 0, b.ds.Data, F)
		sgemm(blas.Trans, blas.NoTrans, D, F, n, 1, dh.Data, D, b.s.Data, F, 0, b.Wd.Grad, F)
		b.mlpBackward(n, D, F)
		b.MLPNorm.Backward(b.dtmp, b.da)
		for i := range b.dmid.Data {
			b.dmid.Data[i] = dh.Data[i] + b.dtmp.Data[i]
		}
		// mid = h + ctx·W_oᵀ
		sgemm(blas.NoTrans, blas.NoTrans, n, qw, D, 1, b.dmid.Data, D, b.Wo.Data, qw, 0, b.dctx.Data, qw)
		sgemm(blas.Trans, blas.NoTrans, D, qw, n, 1, b.dmid.Data, D, b.ctx.Data, qw, 0, b.Wo.Grad, qw)
		b.Attn.Backward(b.dqkv, b.dctx)
		// [q|k|v] = a·[W_q; W_k; W_v]ᵀ
		if w, g, ok := contiguous(b.Wq, b.Wk, b.Wv); ok {
			sgemm(blas.NoTrans, blas.NoTrans, n, D, W, 1, b.dqkv.Data, W, w, D, 0, b.da.Data, D)
			sgemm(blas.Trans, blas.NoTrans, W, D, n, 1, b.dqkv.Data, W, b.a.Data, D, 0, g, D)
		} else {
			sgemm(blas.NoTrans, blas.NoTrans, n, D, qw, 1, b.dqkv.Data, W, b.Wq.Data, D, 0, b.da.Data, D)
			sgemm(blas.NoTrans, blas.NoTrans, n, D, kw, 1, b.dqkv.Data[qw:], W, b.Wk.Data, D, 1, b.da.Data, D)
			sgemm(blas.NoTrans, blas.NoTrans, n, D, kw, 1, b.dqkv.Data[qw+kw:], W, b.Wv.Data, D, 1, b.da.Data, D)
			sgemm(blas.Trans, blas.NoTrans, qw, D, n, 1, b.dqkv.Data, W, b.a.Data, D, 0, b.Wq.Grad, D)
			sgemm(blas.Trans, blas.NoTrans, kw, D, n, 1, b.dqkv.Data[qw:], W, b.a.Data, D, 0, b.Wk.Grad, D)
			sgemm(blas.Trans, blas.NoTrans, kw, D, n, 1, b.dqkv.Data[qw+kw:], W, b.a.Data, D, 0, b.Wv.Grad, D)
		}
		b.AttnNorm.Backward(b.dtmp, b.da)
		for i := range dh.Data {
			dh.Data[i] = b.dmid.Data[i] + b.dtmp.Data[i]
		}
	}
	addHidden(0)
	// h⁰ = E[ids] (+ P[pos]): the lookup's gradient, added to the
	// classifier's when tied; the table's, summed over its positions.
	if c.Untied {
		clear(t.Embed.Grad)
	}
	if t.Pos != nil {
		clear(t.Pos.Grad)
	}
	for r, id := range t.ids {
		dh := t.dh.Data[r*D : (r+1)*D]
		g := t.Embed.Grad[int(id)*D : (int(id)+1)*D]
		for j, v := range dh {
			g[j] += v
		}
		if t.Pos != nil {
			p := r % c.T
			g := t.Pos.Grad[p*D : (p+1)*D]
			for j, v := range dh {
				g[j] += v
			}
		}
	}
}

// contiguous returns the Data and Grad of parameters that NewParams laid
// out one after another in one Params (Params()' order makes q, k, v and
// gate, up neighbours), so that their products run as one, with A packed
// once; ok is false otherwise (storage assigned another way), and the
// caller runs them one by one.
func contiguous(ps ...*Param) (data, grad []float32, ok bool) {
	set, off, n := ps[0].set, ps[0].off, 0
	for _, p := range ps {
		if set == nil || p.set != set || p.off != off+n || len(p.Data) != p.Size() ||
			&p.Data[0] != &set.Data[p.off] || &p.Grad[0] != &set.Grad[p.off] {
			return nil, nil, false
		}
		n += p.Size()
	}
	return set.Data[off : off+n], set.Grad[off : off+n], true
}

// qkvForward computes the fused projection [q|k|v] = a·[W_q; W_k; W_v]ᵀ
// [n, qw + 2·kw] into dst from the normalized input a [n, D].
func (b *Block) qkvForward(dst, a []float32, n, D, qw, kw int) {
	W := qw + 2*kw
	if w, _, ok := contiguous(b.Wq, b.Wk, b.Wv); ok { // one product, A packed once
		sgemm(blas.NoTrans, blas.Trans, n, W, D, 1, a, D, w, D, 0, dst, W)
		return
	}
	sgemm(blas.NoTrans, blas.Trans, n, qw, D, 1, a, D, b.Wq.Data, D, 0, dst, W)
	sgemm(blas.NoTrans, blas.Trans, n, kw, D, 1, a, D, b.Wk.Data, D, 0, dst[qw:], W)
	sgemm(blas.NoTrans, blas.Trans, n, kw, D, 1, a, D, b.Wv.Data, D, 0, dst[qw+kw:], W)
}

// mlpForward computes the MLP's hidden activations s [n, F] from its
// normalized input m [n, D]: SwiGLU (glu) of gu = m·[W_g; W_u]ᵀ [n, 2F],
// or GELUTanh (act) of gu = m·W_uᵀ [n, F]. It returns gu, resized from
// the storage given. Forward passes the block's own layers, the Decoder
// its own (so that decoding leaves what Backward reads alone).
func (b *Block) mlpForward(s, gu, m Mat, glu *SwiGLU, act *GELUTanh, n, D, F int) Mat {
	if glu == nil {
		gu = mat(gu, n, F)
		sgemm(blas.NoTrans, blas.Trans, n, F, D, 1, m.Data, D, b.Wu.Data, D, 0, gu.Data, F)
		act.Forward(s, gu)
		return gu
	}
	gu = mat(gu, n, 2*F)
	if w, _, ok := contiguous(b.Wg, b.Wu); ok { // one product, m packed once
		sgemm(blas.NoTrans, blas.Trans, n, 2*F, D, 1, m.Data, D, w, D, 0, gu.Data, 2*F)
	} else {
		sgemm(blas.NoTrans, blas.Trans, n, F, D, 1, m.Data, D, b.Wg.Data, D, 0, gu.Data, 2*F)
		sgemm(blas.NoTrans, blas.Trans, n, F, D, 1, m.Data, D, b.Wu.Data, D, 0, gu.Data[F:], 2*F)
	}
	glu.Forward(s, gu)
	return gu
}

// mlpBackward is mlpForward's backward: from ds [n, F] it computes the
// gradient da [n, D] of m and those of W_u (and W_g).
func (b *Block) mlpBackward(n, D, F int) {
	if b.GLU == nil {
		// gu = m·W_uᵀ, s = GELUTanh(gu)
		b.dgu = mat(b.dgu, n, F)
		b.Act.Backward(b.dgu, b.ds)
		sgemm(blas.NoTrans, blas.NoTrans, n, D, F, 1, b.dgu.Data, F, b.Wu.Data, D, 0, b.da.Data, D)
		sgemm(blas.Trans, blas.NoTrans, F, D, n, 1, b.dgu.Data, F, b.m.Data, D, 0, b.Wu.Grad, D)
		return
	}
	// gu = m·[W_g; W_u]ᵀ, s = SwiGLU(gu)
	b.dgu = mat(b.dgu, n, 2*F)
	b.GLU.Backward(b.dgu, b.ds)
	if w, g, ok := contiguous(b.Wg, b.Wu); ok {
		sgemm(blas.NoTrans, blas.NoTrans, n, D, 2*F, 1, b.dgu.Data, 2*F, w, D, 0, b.da.Data, D)
		sgemm(blas.Trans, blas.NoTrans, 2*F, D, n, 1, b.dgu.Data, 2*F, b.m.Data, D, 0, g, D)
		return
	}
	sgemm(blas.NoTrans, blas.NoTrans, n, D, F, 1, b.dgu.Data, 2*F, b.Wg.Data, D, 0, b.da.Data, D)
	sgemm(blas.NoTrans, blas.NoTrans, n, D, F, 1, b.dgu.Data[F:], 2*F, b.Wu.Data, D, 1, b.da.Data, D)
	sgemm(blas.Trans, blas.NoTrans, F, D, n, 1, b.dgu.Data, 2*F, b.m.Data, D, 0, b.Wg.Grad, D)
	sgemm(blas.Trans, blas.NoTrans, F, D, n, 1, b.dgu.Data[F:], 2*F, b.m.Data, D, 0, b.Wu.Grad, D)
}

package train

import (
	"fmt"
	"math"

	"github.com/distill-ml/distill/internal/fastmath"
	"gonum.org/v1/gonum/blas"
)

// Attention is causal multi-head self-attention with grouped-query KV
// heads and rotary positions (Hugging Face's LlamaAttention between its
// projections). An input row is one token of a sequence of T (sequences
// follow each other) holding, as a fused q/k/v projection gives them,
//
//	[ q: Heads·HeadDim | k: KVHeads·HeadDim | v: KVHeads·HeadDim ]
//
// and its output row is the context, Heads·HeadDim values (o_proj's
// input). Query head h reads KV head h / (Heads/KVHeads) (repeat_kv). With
// q̃, k̃ the rotated queries and keys (RoPE; none when RoPE is nil), for
// each sequence and head:
//
//	S = q̃ k̃ᵀ / √HeadDim,  P_ts = softmax_{s ≤ t}(S_t·)  (0 for s > t)
//	O = P v
//
// Backward (softmax Jacobian, per row t):
//
//	dv = Pᵀ dO,  dP = dO vᵀ,  dS_ts = P_ts·(dP_ts − Σ_s' P_ts' dP_ts')
//	dq̃ = dS k̃ / √HeadDim,  dk̃ = dSᵀ q̃ / √HeadDim
//
// and dq, dk rotate dq̃, dk̃ back. dv and dk sum over the query heads of a
// group. Every product goes through sgemm, a block of query rows at a
// time against the keys up to its last row (the blocks above the
// diagonal are all masked and skipped). P of the last Forward stays
// readable (Probs) for attention distillation.
type Attention struct {
	T, Heads, KVHeads, HeadDim int
	RoPE                       *RoPE
	block                      int // query rows per block (attnBlock; tests set less)
	// DProbs, when not nil, is a loss gradient on the probabilities of
	// the last Forward (Probs' layout; attention distillation, see
	// AttentionKL), added to dP = dO vᵀ by Backward.
	DProbs []float32

	xr     []float32 // the input with q and k rotated
	p      []float32 // [sequences][Heads][T][T]
	dp     []float32 // [sequences·KVHeads][T][T] scratch
	rows   int
	out    Mat // Forward's dst
	dx, dy Mat // Backward's
	fwd    func(lo, hi int)
	bwd    func(lo, hi int)
}

// NewAttention returns causal attention over sequences of T tokens with
// heads query heads and kvHeads key/value heads (heads a multiple of
// kvHeads) of headDim values, rotated by rope when not nil (its T,
// HeadDim must match).
func NewAttention(T, heads, kvHeads, headDim int, rope *RoPE) *Attention {
	if T < 1 || headDim < 1 || kvHeads < 1 || heads < kvHeads || heads%kvHeads != 0 ||
		(rope != nil && (rope.T != T || rope.HeadDim != headDim)) {
		panic(fmt.Sprintf("train: Attention: T %d, %d heads, %d KV heads of %d, RoPE %+v", T, heads, kvHeads, headDim, rope))
	}
	a := &Attention{T: T, Heads: heads, KVHeads: kvHeads, HeadDim: headDim, RoPE: rope, block: attnBlock}
	a.fwd, a.bwd = a.forwardGroups, a.backwardGroups
	return a
}

func (a *Attention) InSize() int      { return (a.Heads + 2*a.KVHeads) * a.HeadDim }
func (a *Attention) OutSize() int     { return a.Heads * a.HeadDim }
func (a *Attention) Params() []*Param { return nil }

// Probs returns the attention probabilities of the last Forward,
// [sequence][head][t][s], zero for s > t. The slice is reused.
func (a *Attention) Probs() []float32 { return a.p }

// Forward computes dst = attention(x); dst must not be x.
func (a *Attention) Forward(dst, x Mat) {
	checkShapes("Attention", dst, x, a.InSize(), a.OutSize())
	if x.Rows%a.T != 0 {
		panic(fmt.Sprintf("train: Attention: %d rows are not whole sequences of %d", x.Rows, a.T))
	}
	T, hd, W := a.T, a.HeadDim, a.InSize()
	a.rows = x.Rows
	a.xr = grow(a.xr, x.Rows*W)
	copy(a.xr, x.Data[:x.Rows*W])
	if a.RoPE != nil {
		a.RoPE.rotateBlock(a.xr, a.xr, x.Rows, W, a.Heads, 1)
		a.RoPE.rotateBlock(a.xr[a.Heads*hd:], a.xr[a.Heads*hd:], x.Rows, W, a.KVHeads, 1)
	}
	seqs := x.Rows / T
	a.p = grow(a.p, seqs*a.Heads*T*T)
	a.out = dst
	// One task per sequence and KV group: the heads of a group share k
	// and v, and each task writes only its own P blocks and output
	// columns, so the result does not depend on the thread count.
	par().run(seqs*a.KVHeads, 1, a.fwd)
}

// forwardGroups runs tasks [lo, hi) of Forward: sequence b = task / KVHeads,
// KV group g = task mod KVHeads.
func (a *Attention) forwardGroups(lo, hi int) {
	T, hd, W, Wo := a.T, a.HeadDim, a.InSize(), a.OutSize()
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := a.Heads / a.KVHeads
	for task := lo; task < hi; task++ {
		b, g := task/a.KVHeads, task%a.KVHeads
		base := b * T * W
		k := a.xr[base+(a.Heads+g)*hd:]
		v := a.xr[base+(a.Heads+a.KVHeads+g)*hd:]
		for h := g * group; h < (g+1)*group; h++ {
			q := a.xr[base+h*hd:]
			p := a.p[(b*a.Heads+h)*T*T : (b*a.Heads+h+1)*T*T]
			out := a.out.Data[b*T*Wo+h*hd:]
			// Query rows [i0, i1) read keys [0, i1) only: the blocks
			// above the diagonal are all masked.
			for i0 := 0; i0 < T; i0 += a.block {
				i1 := min(i0+a.block, T)
				sgemm(blas.NoTrans, blas.Trans, i1-i0, i1, hd, scale, q[i0*W:], W, k, W, 0, p[i0*T:], T)
				for t := i0; t < i1; t++ {
					row := p[t*T : (t+1)*T]
					softmaxInPlace(row[:t+1])
					clear(row[t+1:])
				}
				sgemm(blas.NoTrans, blas.NoTrans, i1-i0, hd, i1, 1, p[i0*T:], T, v, W, 0, out[i0*Wo:], Wo)
			}
		}
	}
}

// attnBlock is the number of query rows Attention handles at a time:
// each block's products skip the keys after its last row (all masked),
// which saves 1/2 − 1/(2·blocks) of the work.
const attnBlock = 64

// Backward computes dx from dy (Attention has no parameters; with
// dx.Data nil it does nothing).
func (a *Attention) Backward(dx, dy Mat) {
	if dx.Data == nil {
		return
	}
	if dy.Rows != a.rows || dy.Cols != a.OutSize() || dx.Rows != a.rows || dx.Cols != a.InSize() {
		panic("train: Attention: Backward shapes do not match Forward")
	}
	T, hd, W := a.T, a.HeadDim, a.InSize()
	clear(dx.Data[:a.rows*W])
	seqs := a.rows / T
	a.dp = grow(a.dp, seqs*a.KVHeads*T*T)
	a.dx, a.dy = dx, dy
	// Per sequence and KV group, as Forward: dk and dv sum over the heads
	// of a group, in head order, within one task.
	par().run(seqs*a.KVHeads, 1, a.bwd)
	if a.RoPE != nil {
		a.RoPE.rotateBlock(dx.Data, dx.Data, a.rows, W, a.Heads, -1)
		a.RoPE.rotateBlock(dx.Data[a.Heads*hd:], dx.Data[a.Heads*hd:], a.rows, W, a.KVHeads, -1)
	}
}

// backwardGroups runs tasks [lo, hi) of Backward (see forwardGroups).
func (a *Attention) backwardGroups(lo, hi int) {
	T, hd, W, Wo := a.T, a.HeadDim, a.InSize(), a.OutSize()
	scale := float32(1 / math.Sqrt(float64(hd)))
	group := a.Heads / a.KVHeads
	for task := lo; task < hi; task++ {
		b, g := task/a.KVHeads, task%a.KVHeads
		base := b * T * W
		dp := a.dp[task*T*T : (task+1)*T*T]
		k, v := a.xr[base+(a.Heads+g)*hd:], a.xr[base+(a.Heads+a.KVHeads+g)*hd:]
		dk, dv := a.dx.Data[base+(a.Heads+g)*hd:], a.dx.Data[base+(a.Heads+a.KVHeads+g)*hd:]
		for h := g * group; h < (g+1)*group; h++ {
			q, dq := a.xr[base+h*hd:], a.dx.Data[base+h*hd:]
			do := a.dy.Data[b*T*Wo+h*hd:]
			p := a.p[(b*a.Heads+h)*T*T : (b*a.Heads+h+1)*T*T]
			var dprobs []float32
			if a.DProbs != nil {
				dprobs = a.DProbs[(b*a.Heads+h)*T*T : (b*a.Heads+h+1)*T*T]
			}
			for i0 := 0; i0 < T; i0 += a.block { // as in Forward
				i1, rows := min(i0+a.block, T), min(a.block, T-i0)
				pb, dpb := p[i0*T:], dp[i0*T:]
				sgemm(blas.Trans, blas.NoTrans, i1, hd, rows, 1, pb, T, do[i0*Wo:], Wo, 1, dv, W)
				sgemm(blas.NoTrans, blas.Trans, rows, i1, hd, 1, do[i0*Wo:], Wo, v, W, 0, dpb, T)
				for t := i0; t < i1; t++ { // dS in place of dP
					pr, dr := p[t*T:t*T+t+1], dp[t*T:t*T+t+1]
					if dprobs != nil {
						for j, gr := range dprobs[t*T : t*T+t+1] {
							dr[j] += gr
						}
					}
					fastmath.SoftmaxBack(dr, pr)
					clear(dp[t*T+t+1 : t*T+i1])
				}
				sgemm(blas.NoTrans, blas.NoTrans, rows, hd, i1, scale, dpb, T, k, W, 0, dq[i0*W:], W)
				sgemm(blas.Trans, blas.NoTrans, i1, hd, rows, scale, dpb, T, q[i0*W:], W, 1, dk, W)
			}
		}
	}
}

// softmaxInPlace replaces x by softmax(x), computed as exp(x − max) / Σ
// with fastmath.ExpSum (within 2 ulp, a float32 sum in eight lanes).
func softmaxInPlace(x []float32) {
	m := fastmath.Max(x)
	s := fastmath.ExpSum(x, x, 1, -m)
	fastmath.Scale(x, 1/s)
}

package train

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// featureHead is the path of one feature pair (Options.Features) from the
// student output it reads, x [n, In], to the pair's weighted loss against
// the cached teacher state h [n, D] (flattened), and back to dL/dx:
//
//   - a flat student output [W] (an mlp's hidden block; a cnn's after
//     flatten, gap or fc), any teacher state: P = x·Aᵀ + b, a Linear
//     "feature.J" W→D, and MSE or Cosine between P and h (FitNets' regressor,
//     Romero et al. 2015, https://arxiv.org/abs/1412.6550);
//   - a student map [Cs, Hs, Ws] and a teacher map [Ct, Ht, Wt]: the larger
//     map is first average-pooled with an r×r window and stride r (r =
//     Hs/Ht or Ht/Hs, which must be an integer and the same for the width),
//     so both are H×W; then MSE or Cosine between P = Conv2d "feature.J"
//     (1×1, Cs→Ct, with bias: the FitNets regressor of a convolutional
//     hint) of the student map and the teacher map, flattened to Ct·H·W;
//     or AT between the two maps themselves (attentionTransfer; no
//     projection and no parameters, any Cs and Ct).
//
// The teacher's map is pooled once per batch without a gradient; the
// student's pooling and projection are differentiated (Pool2d, Conv2d,
// Linear Backward). Buffers are sized by alloc for the batch size.
type featureHead struct {
	loss  FeatureLoss
	In, D int // student values per sample, teacher values per sample

	lin   *Linear // flat student output; nil for maps
	pool  *Pool2d // student map pooling; nil: none
	tpool *Pool2d // teacher map pooling; nil: none
	proj  *Conv2d // the 1×1 regressor of maps (mse, cosine); nil for at
	hw    int     // positions per map after pooling

	px, dpx, pt, pred, dpred []float32
	at                       []float64 // attentionTransfer scratch
}

// newFeatureHead returns the path of pair "feature.j" (j 0-based) from a
// student output of per-sample shape student ([W] or [C, H, W]) to a
// teacher state of shape teacher, with loss fl. Its error says why the
// two cannot be paired and what would fit.
func newFeatureHead(j int, student []int, teacher []int64, fl FeatureLoss) (*featureHead, error) {
	name := fmt.Sprintf("feature.%d", j)
	h := &featureHead{loss: fl, In: prod(student), D: 1}
	for _, d := range teacher {
		h.D *= int(d)
	}
	if len(student) != 3 {
		if fl == AT {
			return nil, fmt.Errorf("--feature-loss at compares [C,H,W] maps and the student layer gives %v values; choose a layer before flatten, gap or fc", student)
		}
		h.lin = NewLinear(name, h.In, h.D, Identity)
		return h, nil
	}
	if len(teacher) != 3 {
		return nil, fmt.Errorf("the teacher state has shape %v, not a [C,H,W] map like the student layer's %v; pair a map with a map, or a flat student layer (after flatten, gap or fc) with it", teacher, student)
	}
	cs, hs, ws := student[0], student[1], student[2]
	ct, ht, wt := int(teacher[0]), int(teacher[1]), int(teacher[2])
	var err error
	switch {
	case hs == ht && ws == wt:
	case hs > ht && hs%ht == 0 && ws == wt*(hs/ht):
		h.pool, err = NewPool2d(false, cs, hs, ws, hs/ht, hs/ht)
	case ht > hs && ht%hs == 0 && wt == ws*(ht/hs):
		h.tpool, err = NewPool2d(false, ct, ht, wt, ht/hs, ht/hs)
	default:
		return nil, fmt.Errorf("the student map %v and the teacher map %v differ in size, and not by the same integer factor in height and width (average pooling the larger one matches them); choose a student layer of another resolution", student, teacher)
	}
	if err != nil {
		return nil, err
	}
	H, W := min(hs, ht), min(ws, wt)
	h.hw = H * W
	if fl != AT {
		if h.proj, err = NewConv2d(name, cs, H, W, ct, 1, 1, 1, 0, 1, 1); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Params returns the projection's parameters (none for AT).
func (h *featureHead) Params() []*Param {
	switch {
	case h.lin != nil:
		return h.lin.Params()
	case h.proj != nil:
		return h.proj.Params()
	}
	return nil
}

// Init draws the projection as torch initializes a Linear or Conv2d.
func (h *featureHead) Init(rng *rand.Rand) {
	switch {
	case h.lin != nil:
		h.lin.Init(rng)
	case h.proj != nil:
		h.proj.Init(rng)
	}
}

// alloc sizes the buffers for batches of up to b rows.
func (h *featureHead) alloc(b int) {
	if h.lin != nil {
		h.pred, h.dpred = make([]float32, b*h.D), make([]float32, b*h.D)
		return
	}
	if h.pool != nil {
		h.px, h.dpx = make([]float32, b*h.pool.OutSize()), make([]float32, b*h.pool.OutSize())
	}
	if h.tpool != nil {
		h.pt = make([]float32, b*h.tpool.OutSize())
	}
	if h.proj != nil {
		h.pred, h.dpred = make([]float32, b*h.proj.OutSize()), make([]float32, b*h.proj.OutSize())
	}
	h.at = make([]float64, 2*h.hw)
}

// step returns the pair's weighted loss for student output x [n, In] and
// teacher state target [n, D], writes its gradient dL/dx into dx [n, In]
// (overwritten), sets the projection's parameter gradients, and adds
// each row's share to rowLoss (see FeatureLoss.Loss).
func (h *featureHead) step(dx, x, target Mat, weight float64, rowLoss []float64) float64 {
	n := x.Rows
	if h.lin != nil {
		pred := Mat{Rows: n, Cols: h.D, Data: h.pred}
		dpred := Mat{Rows: n, Cols: h.D, Data: h.dpred}
		h.lin.Forward(pred, x)
		loss := h.loss.Loss(dpred, pred, target, weight, rowLoss)
		h.lin.Backward(dx, dpred)
		return loss
	}
	xs, dxs := x, dx
	if h.pool != nil {
		xs = Mat{Rows: n, Cols: h.pool.OutSize(), Data: h.px}
		dxs = Mat{Rows: n, Cols: h.pool.OutSize(), Data: h.dpx}
		h.pool.Forward(xs, x)
	}
	t := target
	if h.tpool != nil {
		t = Mat{Rows: n, Cols: h.tpool.OutSize(), Data: h.pt}
		h.tpool.Forward(t, target)
	}
	var loss float64
	if h.proj == nil {
		loss = attentionTransfer(dxs, xs, t, h.hw, weight, rowLoss, h.at)
	} else {
		pred := Mat{Rows: n, Cols: h.proj.OutSize(), Data: h.pred}
		dpred := Mat{Rows: n, Cols: h.proj.OutSize(), Data: h.dpred}
		h.proj.Forward(pred, xs)
		loss = h.loss.Loss(dpred, pred, t, weight, rowLoss)
		h.proj.Backward(dxs, dpred)
	}
	if h.pool != nil {
		h.pool.Backward(dx, dxs)
	}
	return loss
}

// atEps is torch.nn.functional.normalize's ε, which the reference
// implementation's attention map uses.
const atEps = 1e-12

// attentionTransfer returns weight·L_AT for student maps s [n, Cs·hw] and
// teacher maps t [n, Ct·hw] (hw positions each; channel-major, as a
// [C, H, W] sample is flattened), writes weight·dL/ds into grad
// [n, Cs·hw], and adds each row's weight·‖a_s − a_t‖² to rowLoss (if not
// nil), so that mean(rowLoss) sums the terms. buf is scratch for 2·hw
// values. Per sample (Zagoruyko & Komodakis 2017, eq. 2 with p = 2, as
// their at(x) = F.normalize(x.pow(2).mean(1).view(n, -1)); the mean over
// channels there is a constant factor that the normalization removes):
//
//	q_k = Σ_c A_ck²,  N = ‖q‖₂,  a = q/max(N, ε)           (a_t likewise from T)
//	L   = weight/n · Σ_r ‖a_s − a_t‖₂²
//	g   = dL/da_s = 2·weight/n · (a_s − a_t)
//	dL/dq = (g − a_s·(a_sᵀg))/N   (N ≥ ε; else g/ε)
//	dL/dA_ck = 2·A_ck · dL/dq_k
//
// It panics on a shape mismatch.
func attentionTransfer(grad, s, t Mat, hw int, weight float64, rowLoss []float64, buf []float64) float64 {
	n := s.Rows
	if hw < 1 || s.Cols%hw != 0 || t.Cols%hw != 0 || t.Rows != n || grad.Rows != n || grad.Cols != s.Cols || len(buf) < 2*hw {
		panic(fmt.Sprintf("train: attention transfer: student %d×%d, teacher %d×%d, grad %d×%d, %d positions, scratch %d", n, s.Cols, t.Rows, t.Cols, grad.Rows, grad.Cols, hw, len(buf)))
	}
	as, at := buf[:hw], buf[hw:2*hw]
	c := 2 * weight / float64(n)
	var total float64
	for r := range n {
		ns := attentionMap(as, s.Row(r), hw)
		attentionMap(at, t.Row(r), hw)
		var e, ag float64
		for k, a := range as {
			d := a - at[k]
			e += d * d
			at[k] = c * d // g
			ag += a * at[k]
		}
		total += e
		if rowLoss != nil {
			rowLoss[r] += weight * e
		}
		dq := at
		if ns >= atEps {
			for k, a := range as {
				dq[k] = (dq[k] - a*ag) / ns
			}
		} else {
			for k := range dq {
				dq[k] /= atEps
			}
		}
		sr, gr := s.Row(r), grad.Row(r)
		for ch := 0; ch < len(sr); ch += hw {
			for k, v := range sr[ch : ch+hw] {
				gr[ch+k] = float32(2 * float64(v) * dq[k])
			}
		}
	}
	return weight * total / float64(n)
}

// attentionMap sets a to the normalized attention map q/max(‖q‖₂, ε),
// q_k = Σ_c m_ck², of one sample m [C·hw], and returns ‖q‖₂.
func attentionMap(a []float64, m []float32, hw int) float64 {
	clear(a)
	for ch := 0; ch < len(m); ch += hw {
		for k, v := range m[ch : ch+hw] {
			a[k] += float64(v) * float64(v)
		}
	}
	var nn float64
	for _, v := range a {
		nn += v * v
	}
	norm := math.Sqrt(nn)
	inv := 1 / max(norm, atEps)
	for k := range a {
		a[k] *= inv
	}
	return norm
}

package train

import (
	"fmt"
	"math"

	"github.com/distill-ml/distill/internal/fastmath"
)

// Targets are the teacher outputs and dataset labels of a batch of n rows,
// as the cache stores them (formats.Batch): either full teacher scores or
// the top-k scores with the logsumexp of all of them.
type Targets struct {
	Labels    []int64   // [n] class ids; needed when Alpha < 1
	Logits    []float32 // [n, C] raw teacher scores (TopK == 0)
	TopK      int       // k > 0: TopKIndex, TopKLogit and LogSumExp are used instead of Logits
	TopKIndex []int32   // [n, k] class ids of the k largest teacher scores
	TopKLogit []float32 // [n, k] those scores
	LogSumExp []float32 // [n] log Σ_c exp(t_c) over all C teacher scores (temperature 1)
	// SampleCount, for a sampled cache, holds the draws of each top-k
	// slot (formats.Batch: the drawn ids, then count-0 padding), drawn
	// from softmax(t/SampleTemperature); KD then uses the Sparse Logit
	// Sampling estimate of the teacher's distribution (see KD).
	SampleCount       []int32 // [n, k]
	SampleTemperature float64 // τ of the draws; 0 means 1
}

// KD is the distillation loss of a student's logits s against the teacher's
// scores t and the label y, per row (Hinton et al. 2015,
// https://arxiv.org/abs/1503.02531):
//
//	L = α·T²·KL(p ‖ q) + (1−α)·CE(s, y)
//	p = softmax(t/T), q = softmax(s/T)
//	KL(p ‖ q) = Σ_c p_c·(log p_c − log q_c)      (teacher to student; 0·log 0 = 0)
//	CE(s, y) = −log softmax(s)_y
//
// and the batch loss is the mean over rows. Its gradient, for one row of a
// batch of n:
//
//	dL/ds_c = (α·T·(q_c − p_c) + (1−α)·(softmax(s)_c − [c = y])) / n
//
// α = 0 is the hard-label baseline (no teacher needed); α = 1 needs no
// labels.
//
// # Top-k teachers
//
// With a top-k cache the KL runs over k + 1 buckets: the k cached classes
// and one "rest" bucket holding the other m = C − k. The student's rest
// probability is Σ_{c ∉ top-k} q_c; its gradient is, for c in the rest,
// α·T·q_c·(1 − p_rest/q_rest), for cached c as above. The teacher's side at
// T = 1 is exact from the cached logsumexp LSE:
//
//	p_j = exp(t_j − LSE),  p_rest = 1 − Σ_j p_j  (clamped at 0)
//
// At T ≠ 1 the tempered rest mass Σ_{c ∉ top-k} exp(t_c/T) depends on how
// the uncached scores are spread, which the cache does not record; only
// their sum R = exp(LSE)·p_rest and the bound t_c <= t_k (the smallest
// cached score) are known. KD assumes they are equal (maximum entropy):
// each rest class has score log(R/m), so
//
//	rest logit at T:  a = log m + log(R/m)/T
//	p_j = exp(t_j/T − Z),  p_rest = exp(a − Z),  Z = logsumexp(t_1/T … t_k/T, a)
//
// which is exact at T = 1 and whenever the uncached scores are equal. The
// true tempered rest sum S_T lies between (R/e^{t_k})·e^{t_k/T} (as
// concentrated as the bound allows) and m·(R/m)^{1/T} (spread evenly) —
// for T > 1 the assumption takes the upper end, so it overstates the rest
// bucket's tempered mass by at most that ratio; for T < 1 it takes the
// lower end. Since LSE is stored as float32, p_rest is known only to about
// 1e-7 absolute, which T > 1 amplifies (p_rest ∝ R^{1/T}).
//
// # Sampled teachers
//
// A sampled cache (Anshumann et al. 2025, "Sparse Logit Sampling:
// Accelerating Knowledge Distillation in LLMs", ACL, Random Sampling KD)
// holds, per row, S draws from the proposal softmax(t/τ): the drawn ids
// c, their counts n_c and their scores t_c. KD replaces p by the
// importance-weighted estimate over the drawn ids
//
//	p̂_c = w_c / Σ_c' w_c',  w_c = n_c·exp(t_c·(1/T − 1/τ))   (p̂_c = 0 if not drawn)
//
// and takes KL(p̂ ‖ q) with the gradient α·T·(q_c − p̂_c) (p̂ sums to 1).
// When T = τ, w_c = n_c and p̂_c = n_c/S with E[n_c/S] = softmax(t/T)_c
// = p_c: the estimate is unbiased, and so is the gradient, which is
// linear in p̂ (the paper's result). For T ≠ τ the exact weights
// p_c/q_c = exp(t_c·(1/T − 1/τ))·Z_τ/Z_T need the proposal's normalizer
// Z_τ, which the cache does not hold; normalizing the weights over the
// draws (self-normalized importance sampling) is consistent, with a bias
// of order 1/S. So draw at the temperature you train at.
//
// # Divergences
//
// D is the forward KL by default. Divergence = ReverseKL takes
// KL(q ‖ p) = Σ_u q_u·(log q_u − log p_u) (mode-seeking: the student
// may drop teacher modes instead of covering them; MiniLLM, Gu et al.
// 2024, https://arxiv.org/abs/2306.08543), and JSD the generalized
// Jensen–Shannon divergence of GKD (Agarwal et al. 2024, "On-Policy
// Distillation of Language Models", https://arxiv.org/abs/2306.13649):
//
//	JSD_β(p ‖ q) = β·KL(p ‖ m) + (1−β)·KL(q ‖ m),  m = β·p + (1−β)·q
//
// The units u are the classes, or for a top-k teacher the cached classes
// and the rest bucket. With g_u = ∂D/∂q_u,
//
//	reverse KL:  g_u = log q_u − log p_u + 1
//	JSD:         g_u = (1−β)·log(q_u/m_u)   (the p terms' derivatives cancel)
//
// and through q = softmax(s/T), a rest class taking its bucket's g,
//
//	∂D/∂s_c = (1/T)·q_c·(g_c − Σ_u q_u·g_u)
//
// (for the forward KL, g_u = −p_u/q_u gives (q_c − p_c)/T). Reverse KL
// needs p_u > 0 wherever q_u > 0, so it refuses sampled targets, whose
// estimate is 0 off the drawn ids.
//
// A KD holds scratch space; it is not safe for concurrent use.
type KD struct {
	Temperature float64 // T > 0
	Alpha       float64 // α in [0, 1]

	// Divergence is D of the KD term: ForwardKL (the default, also ""),
	// ReverseKL or JSD with Beta (see "Divergences").
	Divergence Divergence
	Beta       float64 // JSD's β in (0, 1)

	q, q1, p []float64 // per-class scratch: softmax(s/T), softmax(s), teacher p
	e        []float32 // per-class scratch: softmaxInto's exponentials
	dq       []float64 // per-class scratch: T·∂D/∂s_c (ReverseKL, JSD)
	stamp    []uint32  // top-k membership: stamp[c] == gen for cached c
	gen      uint32
	// Loss over threads: a KD per part of the rows, the rows' losses
	// and the parts' errors.
	workers []*KD
	losses  []float64
	errs    []error
	call    kdCall
	self    *KD              // the KD parts was bound to
	parts   func(lo, hi int) // self.lossParts
}

// Divergence names the D of KD's α·T²·D(p ‖ q) term.
type Divergence string

// The divergences KD takes.
const (
	ForwardKL Divergence = "kl"         // KL(p ‖ q): mean-seeking (Hinton et al. 2015)
	ReverseKL Divergence = "reverse-kl" // KL(q ‖ p): mode-seeking (MiniLLM, Gu et al. 2024)
	JSD       Divergence = "jsd"        // generalized Jensen–Shannon of GKD (Agarwal et al. 2024), weight Beta
)

// divergence computes D(p ‖ q) of k.Divergence over the row's units (the
// classes; for a top-k teacher the cached classes and the rest bucket,
// p_rest and q_rest) and writes T·∂D/∂s_c into k.dq (see "Divergences").
func (k *KD) divergence(q, p []float64, topK bool, pRest, qRest float64) (float64, error) {
	C := len(q)
	k.dq = growF64(k.dq, C)
	cached := func(c int) bool { return !topK || k.stamp[c] == k.gen }
	// g(p_u, q_u) = ∂D/∂q_u and the unit's term of D.
	beta := k.Beta
	term := func(pu, qu float64) (d, g float64) {
		switch k.Divergence {
		case ReverseKL:
			if qu == 0 {
				return 0, 0
			}
			return qu * (math.Log(qu) - math.Log(pu)), math.Log(qu) - math.Log(pu) + 1
		default: // JSD
			m := beta*pu + (1-beta)*qu
			if m == 0 {
				return 0, 0
			}
			if pu > 0 {
				d += beta * pu * math.Log(pu/m)
			}
			if qu > 0 {
				d += (1 - beta) * qu * math.Log(qu/m)
				g = (1 - beta) * math.Log(qu/m)
			}
			return d, g
		}
	}
	if k.Divergence != ReverseKL && k.Divergence != JSD {
		return 0, fmt.Errorf("train: divergence %q, want %s, %s or %s", k.Divergence, ForwardKL, ReverseKL, JSD)
	}
	if k.Divergence == JSD && !(beta > 0 && beta < 1) {
		return 0, fmt.Errorf("train: JSD beta %v, want 0 < β < 1", beta)
	}
	var D, mean float64 // mean = Σ_u q_u·g_u
	for c := range C {
		if cached(c) {
			d, g := term(p[c], q[c])
			D, mean, k.dq[c] = D+d, mean+q[c]*g, g
		}
	}
	var gRest float64
	if topK {
		var d float64
		d, gRest = term(pRest, qRest)
		D, mean = D+d, mean+qRest*gRest
	}
	// ∂D/∂s_c = (1/T)·q_c·(g_c − Σ_u q_u g_u), g_c = g_rest for a rest
	// class (∂q_rest/∂q_c = 1); k.dq holds T times it over T², as the
	// loss's α·T² and the caller's kdw = α·T·scale expect.
	for c := range C {
		g := gRest
		if cached(c) {
			g = k.dq[c]
		}
		k.dq[c] = q[c] * (g - mean)
	}
	return D, nil
}

// Loss computes the mean loss over the n rows of the student logits s
// [n, C], writes its gradient dL/ds into grad [n, C] (may be s), and, if
// rowLoss is not nil, each row's loss into rowLoss[:n]. It returns an error
// for a label or top-k class id out of range or a repeated top-k id; the
// loss is NaN or ±Inf when inputs are not finite (callers check).
func (k *KD) Loss(grad, s Mat, t *Targets, rowLoss []float64) (float64, error) {
	n := s.Rows
	// Rows split into parts contiguous ranges, each with a KD of its own
	// (the scratch); the losses are summed in row order afterwards, so
	// the result does not depend on the split. One part (a small batch)
	// runs on the calling goroutine.
	parts := max(1, min(par().n, n*s.Cols/kdGrain))
	for len(k.workers) < parts {
		k.workers = append(k.workers, &KD{})
	}
	k.losses = growF64(k.losses, n)
	if cap(k.errs) < parts {
		k.errs = make([]error, parts)
	}
	errs := k.errs[:parts]
	clear(errs)
	k.call = kdCall{grad: grad, s: s, t: t, parts: parts}
	if k.self != k { // bound once per KD (and again in a copy), so a step allocates nothing
		k.self, k.parts = k, k.lossParts
	}
	par().run(parts, 1, k.parts)
	k.call = kdCall{}
	for _, err := range errs { // the first failing row's error, as serially
		if err != nil {
			return 0, err
		}
	}
	var sum float64
	for r, l := range k.losses[:n] {
		if rowLoss != nil {
			rowLoss[r] = l
		}
		sum += l
	}
	return sum / float64(max(n, 1)), nil
}

// lossParts computes the row losses of parts [lo, hi) of Loss's call.
func (k *KD) lossParts(lo, hi int) {
	c, n := &k.call, k.call.s.Rows
	for part := lo; part < hi; part++ {
		w := k.workers[part]
		w.Temperature, w.Alpha, w.Divergence, w.Beta = k.Temperature, k.Alpha, k.Divergence, k.Beta
		for r := part * n / c.parts; r < (part+1)*n/c.parts; r++ {
			l, err := w.rowLoss(c.grad, c.s, r, c.t)
			if err != nil {
				k.errs[part] = err
				break
			}
			k.losses[r] = l
		}
	}
}

// kdCall holds the arguments of a Loss call for lossParts.
type kdCall struct {
	grad, s Mat
	t       *Targets
	parts   int
}

// kdGrain is the number of scores (rows × classes) below which Loss does
// not split its rows over threads.
const kdGrain = 1 << 14

// rowLoss returns row r's loss α·T²·KL + (1−α)·CE and writes its
// gradient, over a batch of s.Rows rows, into grad's row r.
func (k *KD) rowLoss(grad, s Mat, r int, t *Targets) (float64, error) {
	kl, ce, err := k.row(grad.Row(r), s.Row(r), r, t, 1/float64(s.Rows))
	return k.Alpha*k.Temperature*k.Temperature*kl + (1-k.Alpha)*ce, err
}

// KL returns KL(p ‖ q) of row r at the KD's temperature (the top-k bucket
// form for a top-k teacher), without a gradient.
func (k *KD) KL(s []float32, r int, t *Targets) (float64, error) {
	a := k.Alpha
	k.Alpha = 1
	kl, _, err := k.row(nil, s, r, t, 0)
	k.Alpha = a
	return kl, err
}

func growF64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// softmaxInto writes softmax(s/T) to q and returns log Σ_c exp((s_c−m)/T),
// m = max s, so that log q_c = (s_c − m)/T − the result. The
// exponentials are float32 (fastmath.ExpSum into e, within 2 ulp; the
// argument s_c/T + b with b = float32(−m/T) rounds once), normalized and
// logged in float64; the result corrects for b's rounding, so q and the
// logs agree to float32's precision.
func softmaxInto(q []float64, e, s []float32, m, invT float64) float64 {
	b := float32(-m * invT)
	z := float64(fastmath.ExpSum(e, s, float32(invT), b))
	inv := 1 / z
	for c, v := range e[:len(s)] {
		q[c] = float64(v) * inv
	}
	// z = Σ exp(s_c/T + b), so log Σ exp((s_c − m)/T) = log z − b − m/T.
	return math.Log(z) - (float64(b) + m*invT)
}

// row computes KL and CE of row r and, if grad is not nil, writes
// scale·dL/ds into grad.
func (k *KD) row(grad, s []float32, r int, t *Targets, scale float64) (kl, ce float64, err error) {
	C := len(s)
	T, a := k.Temperature, k.Alpha
	invT := 1 / T
	k.q, k.q1, k.p = growF64(k.q, C), growF64(k.q1, C), growF64(k.p, C)
	k.e = grow(k.e, C)
	q, q1, p := k.q, k.q1, k.p
	ms := math.Inf(-1)
	for _, v := range s {
		ms = max(ms, float64(v))
	}
	var logZs float64
	if a > 0 {
		logZs = softmaxInto(q, k.e, s, ms, invT)
	}
	if a < 1 {
		y := t.Labels[r]
		if y < 0 || y >= int64(C) {
			return 0, 0, fmt.Errorf("train: label %d out of range [0, %d)", y, C)
		}
		logZ1 := logZs
		if a == 0 || T != 1 {
			logZ1 = softmaxInto(q1, k.e, s, ms, 1)
		} else {
			copy(q1, q)
		}
		ce = logZ1 - (float64(s[y]) - ms)
	}
	var restFactor float64 // top-k: 1 − p_rest/q_rest for rest classes
	var pRest, qRest float64
	if a > 0 {
		if t.TopK == 0 {
			kl = klFull(p, k.e, t.Logits[r*C:(r+1)*C], s, ms, logZs, invT)
		} else if t.SampleCount != nil {
			if kl, err = k.klSampled(p, s, r, t, ms, logZs, invT); err != nil {
				return 0, 0, err
			}
		} else {
			kl, restFactor, pRest, qRest, err = k.klTopK(p, q, s, r, t, ms, logZs, invT)
			if err != nil {
				return 0, 0, err
			}
		}
	}
	topK := t.TopK > 0 && t.SampleCount == nil
	if a > 0 && k.Divergence == ReverseKL && t.SampleCount != nil {
		return 0, 0, fmt.Errorf("train: reverse KL needs the teacher's probability of every class, which sampled targets estimate as 0 off the drawn ids: use the forward KL or JSD")
	}
	if a > 0 && k.Divergence != ForwardKL && k.Divergence != "" {
		if kl, err = k.divergence(q, p, topK, pRest, qRest); err != nil {
			return 0, 0, err
		}
	}
	if grad == nil {
		return kl, ce, nil
	}
	kdw, cew := a*T*scale, (1-a)*scale
	for c := range grad[:C] {
		var g float64
		if a > 0 {
			switch {
			case k.Divergence != ForwardKL && k.Divergence != "":
				g = kdw * k.dq[c]
			case topK && k.stamp[c] != k.gen:
				g = kdw * q[c] * restFactor
			default:
				g = kdw * (q[c] - p[c])
			}
		}
		if a < 1 {
			g += cew * q1[c]
		}
		grad[c] = float32(g)
	}
	if a < 1 {
		y := t.Labels[r]
		grad[y] = float32(float64(grad[y]) - cew)
	}
	return kl, ce, nil
}

// klFull writes p = softmax(t/T) and returns KL(p ‖ q) for full teacher
// scores t, with log q_c = (s_c − ms)/T − logZs.
func klFull(p []float64, e, t, s []float32, ms, logZs, invT float64) float64 {
	mt := math.Inf(-1)
	for _, v := range t {
		mt = max(mt, float64(v))
	}
	logZt := softmaxInto(p, e, t, mt, invT)
	var kl float64
	for c, pc := range p {
		if pc != 0 { // 0·log 0 = 0; NaN propagates
			logp := (float64(t[c])-mt)*invT - logZt
			logq := (float64(s[c])-ms)*invT - logZs
			kl += pc * (logp - logq)
		}
	}
	return kl
}

// klSampled writes p̂ (KD, "Sampled teachers") of row r into p, zero for
// the classes not drawn, and returns KL(p̂ ‖ q), log q_c = (s_c − ms)/T −
// logZs.
func (k *KD) klSampled(p []float64, s []float32, r int, t *Targets, ms, logZs, invT float64) (float64, error) {
	C, K := len(s), t.TopK
	idx, tl, cnt := t.TopKIndex[r*K:(r+1)*K], t.TopKLogit[r*K:(r+1)*K], t.SampleCount[r*K:(r+1)*K]
	tau := t.SampleTemperature
	if tau == 0 {
		tau = 1
	}
	if len(k.stamp) != C {
		k.stamp, k.gen = make([]uint32, C), 0
	}
	if k.gen++; k.gen == 0 {
		clear(k.stamp)
		k.gen = 1
	}
	// log w_c = log n_c + t_c·(1/T − 1/τ), normalized in log space.
	d := invT - 1/tau
	logW := func(j int) float64 { return math.Log(float64(cnt[j])) + float64(tl[j])*d }
	m := math.Inf(-1)
	for j, n := range cnt {
		if n == 0 {
			continue
		}
		c := idx[j]
		if n < 0 || c < 0 || int(c) >= C {
			return 0, fmt.Errorf("train: sampled slot %d: id %d, count %d (want an id in [0, %d) and a count ≥ 0)", j, c, n, C)
		}
		if k.stamp[c] == k.gen {
			return 0, fmt.Errorf("train: sampled id %d in two slots of a row", c)
		}
		k.stamp[c] = k.gen
		m = max(m, logW(j))
	}
	if math.IsInf(m, -1) {
		return 0, fmt.Errorf("train: a sampled row has no draws")
	}
	var z float64
	for j, n := range cnt {
		if n > 0 {
			z += math.Exp(logW(j) - m)
		}
	}
	logZ := m + math.Log(z)
	clear(p)
	var kl float64
	for j, n := range cnt {
		if n > 0 {
			c := idx[j]
			logp := logW(j) - logZ
			p[c] = math.Exp(logp)
			kl += p[c] * (logp - ((float64(s[c])-ms)*invT - logZs))
		}
	}
	return kl, nil
}

// klTopK writes the teacher's bucket probabilities into p (cached classes
// at their ids; p of rest classes is unused), marks the cached classes in
// k.stamp, and returns the k+1-bucket KL and the rest gradient factor
// 1 − p_rest/q_rest.
func (k *KD) klTopK(p, q []float64, s []float32, r int, t *Targets, ms, logZs, invT float64) (kl, restFactor, pRest, qRest float64, err error) {
	C, K := len(s), t.TopK
	idx := t.TopKIndex[r*K : (r+1)*K]
	tl := t.TopKLogit[r*K : (r+1)*K]
	lse := float64(t.LogSumExp[r])
	if len(k.stamp) != C {
		k.stamp, k.gen = make([]uint32, C), 0
	}
	k.gen++
	if k.gen == 0 { // wrapped: forget old stamps
		clear(k.stamp)
		k.gen = 1
	}
	for _, c := range idx {
		if c < 0 || int(c) >= C {
			return 0, 0, 0, 0, fmt.Errorf("train: top-k class id %d out of range [0, %d)", c, C)
		}
		if k.stamp[c] == k.gen {
			return 0, 0, 0, 0, fmt.Errorf("train: top-k class id %d repeated in a row", c)
		}
		k.stamp[c] = k.gen
	}
	// Student rest mass, summed directly for precision when it is small.
	for c := range C {
		if k.stamp[c] != k.gen {
			qRest += q[c]
		}
	}
	m := C - K
	if T := 1 / invT; T == 1 {
		sum := 0.0
		for j, c := range idx {
			p[c] = math.Exp(float64(tl[j]) - lse)
			sum += p[c]
		}
		if m > 0 {
			pRest = max(0, 1-sum)
		}
	} else {
		pRest1 := 1.0
		for _, v := range tl {
			pRest1 -= math.Exp(float64(v) - lse)
		}
		restLogit := math.Inf(-1) // a = log m + log(R/m)/T
		if m > 0 && pRest1 > 0 {
			logR := lse + math.Log(pRest1)
			lm := math.Log(float64(m))
			restLogit = lm + (logR-lm)*invT
		}
		z := restLogit
		for _, v := range tl {
			z = max(z, float64(v)*invT)
		}
		var sum float64
		for _, v := range tl {
			sum += math.Exp(float64(v)*invT - z)
		}
		sum += math.Exp(restLogit - z)
		logZ := z + math.Log(sum)
		for j, c := range idx {
			p[c] = math.Exp(float64(tl[j])*invT - logZ)
		}
		pRest = math.Exp(restLogit - logZ)
	}
	for _, c := range idx {
		if pc := p[c]; pc != 0 {
			logq := (float64(s[c])-ms)*invT - logZs
			kl += pc * (math.Log(pc) - logq)
		}
	}
	restFactor = 1
	if pRest != 0 {
		kl += pRest * (math.Log(pRest) - math.Log(qRest))
		restFactor = 1 - pRest/qRest
	}
	return kl, restFactor, pRest, qRest, nil
}

// FeatureLoss is the loss of a feature-distillation pair (FitNets, Romero
// et al. 2015, https://arxiv.org/abs/1412.6550): a learned projection P of
// a student hidden block's output h_s [n, W] onto the teacher hidden state
// h_t [n, D] (flattened), P = h_s·Aᵀ + b, A [D, W].
type FeatureLoss string

// Feature losses, each a mean over the batch:
//
//	MSE:    L = 1/(n·D) · Σ_r Σ_j (P_rj − h_rj)²     (torch.nn.functional.mse_loss)
//	        dL/dP = 2·(P − h)/(n·D)
//	Cosine: L = 1/n · Σ_r (1 − cos(P_r, h_r)),  cos = P·h/(max(‖P‖, ε)·max(‖h‖, ε)), ε = 1e-8
//	        dL/dP_r = −(h_r/(‖P_r‖‖h_r‖) − cos·P_r/‖P_r‖²)/n   (‖P_r‖ >= ε)
//	AT:     attention transfer between convolutional maps, with no
//	        projection (cnn student maps only; see FeaturePair):
//	        L = 1/n · Σ_r ‖a(A_r) − a(T_r)‖₂²,  a(A) = q/max(‖q‖₂, ε), q_k = Σ_c A_ck², ε = 1e-12
//	        (Zagoruyko & Komodakis 2017, https://arxiv.org/abs/1612.03928,
//	        with p = 2; the gradient is in attentionTransfer)
//
// MSE and Cosine compare a projection P of the student output with the
// teacher's h; AT compares the student map A [Cs, H, W] itself with the
// teacher's T [Ct, H, W] (any channel counts, the same H×W) through
// their normalized spatial maps. AT's weight convention: the pair's
// weight w multiplies the per-sample squared distance (in [0, 4]),
// averaged over the batch. The paper's code (szagoruyko/attention-transfer
// at_loss) takes β/2 times the mean over the batch and the H·W positions,
// with β = 1000: the same term for w = β/(2·H·W), about 10 on 7×7 maps
// and 2.5 on 14×14.
const (
	MSE    FeatureLoss = "mse"
	Cosine FeatureLoss = "cosine"
	AT     FeatureLoss = "at"
)

// ParseFeatureLoss returns the FeatureLoss named s; "" means MSE.
func ParseFeatureLoss(s string) (FeatureLoss, error) {
	switch f := FeatureLoss(s); f {
	case MSE, Cosine, AT:
		return f, nil
	case "":
		return MSE, nil
	}
	return "", fmt.Errorf("train: unknown feature loss %q, want mse, cosine or at", s)
}

const cosineEps = 1e-8

// Loss returns weight·L(pred, target) for MSE or Cosine, pred and target [n, D], writes
// weight·dL/dpred into grad [n, D], and adds each row's share of
// weight·n·L to rowLoss (if not nil), so that mean(rowLoss) sums the terms.
func (f FeatureLoss) Loss(grad, pred, target Mat, weight float64, rowLoss []float64) float64 {
	n, d := pred.Rows, pred.Cols
	if target.Cols != d || target.Rows != n || grad.Cols != d || grad.Rows != n {
		panic(fmt.Sprintf("train: feature loss: prediction %d×%d, target %d×%d, grad %d×%d", n, d, target.Rows, target.Cols, grad.Rows, grad.Cols))
	}
	var total float64
	switch f {
	case MSE, "":
		g := 2 * weight / float64(n*d)
		for r := range n {
			pr, hr, gr := pred.Row(r), target.Row(r), grad.Row(r)
			var s float64
			for j, v := range pr {
				e := float64(v) - float64(hr[j])
				s += e * e
				gr[j] = float32(g * e)
			}
			total += s
			if rowLoss != nil {
				rowLoss[r] += weight * s / float64(d)
			}
		}
		return weight * total / float64(n*d)
	case Cosine:
		for r := range n {
			pr, hr, gr := pred.Row(r), target.Row(r), grad.Row(r)
			var pp, hh, ph float64
			for j, v := range pr {
				a, b := float64(v), float64(hr[j])
				pp += a * a
				hh += b * b
				ph += a * b
			}
			np, nh := math.Sqrt(pp), math.Sqrt(hh)
			npc, nhc := max(np, cosineEps), max(nh, cosineEps)
			cos := ph / (npc * nhc)
			total += 1 - cos
			if rowLoss != nil {
				rowLoss[r] += weight * (1 - cos)
			}
			// d cos/dP = h/(npc·nhc) − [np >= ε]·cos·P/np²
			a := -weight / float64(n) / (npc * nhc)
			b := 0.0
			if np >= cosineEps {
				b = weight / float64(n) * cos / (np * np)
			}
			for j, v := range pr {
				gr[j] = float32(a*float64(hr[j]) + b*float64(v))
			}
		}
		return weight * total / float64(n)
	}
	panic("train: feature loss " + string(f) + " is not one of a projection (mse, cosine)")
}

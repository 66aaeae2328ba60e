package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttentionReference compares Attention with a float64 evaluation of
// Hugging Face Llama's attention on two sequences: RoPE (rotate_half) on
// q and k, repeat_kv (query head h reads KV head h / (H/KV)), scores
// q·k/√d with the causal mask, softmax, P·v. The probabilities must be 0
// above the diagonal and sum to 1 in each row. Query blocks of 2 rows
// (the last one short) give the same.
func TestAttentionReference(t *testing.T) {
	for _, block := range []int{attnBlock, 2} {
		testAttentionReference(t, block)
	}
}

func testAttentionReference(t *testing.T, block int) {
	const T, H, KV, d, seqs = 5, 4, 2, 6, 2
	a := NewAttention(T, H, KV, d, NewRoPE(T, H, d, RoPETheta))
	a.block = block
	rng := rand.New(rand.NewPCG(8, 9))
	x := randMat(rng, seqs*T, a.InSize(), 1)
	y := Mat{Rows: seqs * T, Cols: a.OutSize(), Data: make([]float32, seqs*T*a.OutSize())}
	a.Forward(y, x)
	W := a.InSize()
	rot := func(v []float32, pos int) []float64 { // rotate_half form
		out := make([]float64, d)
		for j := range d {
			ang := float64(pos) * math.Pow(RoPETheta, -2*float64(j%(d/2))/d)
			var r float64
			if j < d/2 {
				r = -float64(v[j+d/2])
			} else {
				r = float64(v[j-d/2])
			}
			out[j] = float64(v[j])*math.Cos(ang) + r*math.Sin(ang)
		}
		return out
	}
	for b := range seqs {
		for h := range H {
			g := h / (H / KV)
			for ti := range T {
				row := x.Data[(b*T+ti)*W:]
				q := rot(row[h*d:(h+1)*d], ti)
				sc := make([]float64, ti+1)
				m := math.Inf(-1)
				for s := 0; s <= ti; s++ {
					kr := x.Data[(b*T+s)*W:]
					k := rot(kr[(H+g)*d:(H+g+1)*d], s)
					for j := range d {
						sc[s] += q[j] * k[j]
					}
					sc[s] /= math.Sqrt(d)
					m = math.Max(m, sc[s])
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - m)
					z += sc[s]
				}
				probs := a.Probs()[((b*H+h)*T+ti)*T : ((b*H+h)*T+ti+1)*T]
				var sum float64
				for s := range T {
					want := 0.0
					if s <= ti {
						want = sc[s] / z
					}
					if math.Abs(float64(probs[s])-want) > 1e-6 {
						t.Fatalf("block %d seq %d head %d t %d: P[%d] = %v, want %v", block, b, h, ti, s, probs[s], want)
					}
					sum += float64(probs[s])
				}
				if math.Abs(sum-1) > 1e-6 {
					t.Fatalf("seq %d head %d t %d: P sums to %v", b, h, ti, sum)
				}
				for j := range d {
					var o float64
					for s := 0; s <= ti; s++ {
						o += sc[s] / z * float64(x.Data[(b*T+s)*W+(H+KV+g)*d+j])
					}
					if got := y.Data[(b*T+ti)*a.OutSize()+h*d+j]; math.Abs(float64(got)-o) > 1e-5 {
						t.Fatalf("block %d seq %d head %d t %d dim %d: %v, want %v", block, b, h, ti, j, got, o)
					}
				}
			}
		}
	}
}

// TestSwiGLUForward checks SwiGLU against LlamaMLP's act_fn(gate)·up in
// float64, act_fn = SiLU: g/(1 + e^−g)·u.
func TestSwiGLUForward(t *testing.T) {
	const d, n = 7, 3
	l := NewSwiGLU(d)
	x := randMat(rand.New(rand.NewPCG(1, 2)), n, 2*d, 3)
	y := Mat{Rows: n, Cols: d, Data: make([]float32, n*d)}
	l.Forward(y, x)
	for r := range n {
		for j := range d {
			g, u := float64(x.Data[r*2*d+j]), float64(x.Data[r*2*d+d+j])
			if want := g / (1 + math.Exp(-g)) * u; math.Abs(float64(y.Data[r*d+j])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("row %d dim %d: %v, want %v", r, j, y.Data[r*d+j], want)
			}
		}
	}
}

// TestAttentionThreads: Forward and Backward give the same bits on 1 and
// 3 threads (tasks per sequence and KV group write disjoint blocks).
func TestAttentionThreads(t *testing.T) {
	defer SetThreads(0)
	const T, seqs = 16, 3
	run := func(threads int) (y, dx []float32) {
		SetThreads(threads)
		a := NewAttention(T, 8, 4, 8, NewRoPE(T, 8, 8, RoPETheta))
		rng := rand.New(rand.NewPCG(5, 5))
		x := randMat(rng, seqs*T, a.InSize(), 1)
		dy := randMat(rng, seqs*T, a.OutSize(), 1)
		out := Mat{Rows: seqs * T, Cols: a.OutSize(), Data: make([]float32, seqs*T*a.OutSize())}
		a.Forward(out, x)
		d := Mat{Rows: seqs * T, Cols: a.InSize(), Data: make([]float32, seqs*T*a.InSize())}
		a.Backward(d, dy)
		return out.Data, d.Data
	}
	y1, d1 := run(1)
	y3, d3 := run(3)
	for i := range y1 {
		if y1[i] != y3[i] {
			t.Fatalf("output %d: %v on 1 thread, %v on 3", i, y1[i], y3[i])
		}
	}
	for i := range d1 {
		if d1[i] != d3[i] {
			t.Fatalf("input gradient %d: %v on 1 thread, %v on 3", i, d1[i], d3[i])
		}
	}
}
